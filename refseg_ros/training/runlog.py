"""Per-epoch metrics of a run: ``metrics.jsonl`` (one JSON object per epoch), ``metrics.csv`` and
``curves.png`` (loss and validation curves), all rewritten after every epoch."""
from __future__ import annotations

import csv
import json
from pathlib import Path


class RunLog:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.jsonl = self.run_dir / "metrics.jsonl"
        self.rows: list[dict] = []
        if self.jsonl.exists():  # resuming: keep earlier epochs
            self.rows = [json.loads(line) for line in self.jsonl.read_text().splitlines() if line.strip()]

    def truncate_after(self, epoch: int) -> None:
        """Forget epochs after ``epoch`` (a resumed run repeats them)."""
        self.rows = [r for r in self.rows if r.get("epoch", 0) <= epoch]
        self._write()

    def append(self, row: dict) -> None:
        self.rows.append(row)
        self._write()

    def _flat_rows(self) -> list[dict]:
        flat = []
        for r in self.rows:
            f = {k: v for k, v in r.items() if not isinstance(v, dict)}
            for k, v in r.items():
                if isinstance(v, dict):
                    f.update({f"{k}/{kk}": vv for kk, vv in v.items() if not isinstance(vv, dict)})
            flat.append(f)
        return flat

    def _write(self) -> None:
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in self.rows))
        flat = self._flat_rows()
        keys = sorted({k for r in flat for k in r}, key=lambda k: (k != "epoch", k))
        with open(self.run_dir / "metrics.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(flat)
        if flat:
            self._plot(flat)

    def _plot(self, flat: list[dict]) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        epochs = [r.get("epoch") for r in flat]
        fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 4))
        for key in ("train_loss", "train_loss_box", "train_loss_mask"):
            ys = [r.get(key) for r in flat]
            if any(y is not None for y in ys):
                ax_loss.plot(epochs, ys, marker="o", label=key)
        ax_loss.set_xlabel("epoch"); ax_loss.set_title("training loss"); ax_loss.legend()
        for key in ("val/rec_prec@0.5", "val/res_miou", "val/res_oiou"):
            ys = [r.get(key) for r in flat]
            if any(y is not None for y in ys):
                ax_val.plot(epochs, ys, marker="o", label=key.split("/", 1)[1])
        ax_val.set_xlabel("epoch"); ax_val.set_ylabel("%"); ax_val.set_title("validation"); ax_val.legend()
        fig.tight_layout()
        fig.savefig(self.run_dir / "curves.png", dpi=80)
        plt.close(fig)

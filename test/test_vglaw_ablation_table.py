"""tools/ablation_table.py builds the experiment's tables from the eval JSONs that exist."""
from __future__ import annotations

import json

from helpers.paths import load_tool as _load


def _metrics(prec: float, miou: float) -> dict:
    return {"n": 10, "rec_prec@0.5": prec, "res_miou": miou, "train_samples": 6000, "seed": 0,
            "train_config": {"batch_size": 8, "lr": 4e-4, "warmup_steps": 300, "gamma": 0.1,
                             "milestones": [0.75, 0.92]},
            "by_type": {"ordinal": {"n": 4, "rec_prec@0.5": prec - 10, "res_miou": miou - 10}}}


def test_tables_show_knock_out_drops_and_missing_arms(tmp_path, capsys):
    table = _load("ablation_table")
    for name, prec in [("hybrid_test_none", 80.0), ("hybrid_test_law", 79.5), ("hybrid_test_word_attention", 20.0),
                       ("pure_test_none", 40.0), ("pure_compositional_none", 35.0)]:
        (tmp_path / f"{name}.json").write_text(json.dumps(_metrics(prec, prec - 2)))
    assert table.main(["--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "6,000 training samples (batch 8" in out
    rows = [line for line in out.splitlines() if line.startswith("|")]
    assert any("word attention off | 20.0 | 18.0 | - | - | -60.0 |" in r for r in rows)
    assert any("Phi = 0 | 79.5 | 77.5 | - | - | -0.5 |" in r for r in rows)
    assert any(r.startswith("| static weights") and "| - | - | - | - |" in r for r in rows)
    assert "| ordinal | 30.0 / 28.0 | 70.0 / 68.0 | - | - | 4 |" in out  # static, pure_r64 missing


def test_no_jsons_is_reported(tmp_path, capsys):
    assert _load("ablation_table").main(["--dir", str(tmp_path)]) == 1
    assert "no eval JSONs" in capsys.readouterr().out


def test_eval_jobs_put_the_intact_test_score_first():
    ablation = _load("ablation")
    jobs = ablation.eval_jobs("hybrid")
    assert jobs[0] == ("test", ()) and jobs[1] == ("test", ("law",)) and len(jobs) == 8
    assert ablation.eval_json("pure", "test", ("law", "word_attention"), 0).name == "pure_test_law+word_attention.json"

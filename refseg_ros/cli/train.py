"""`refseg train`: train VG-LAW on tabletop scenes or a REFER dataset (DDP under torchrun)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import sys
from pathlib import Path

from refseg_ros.cli.common import (add_dataset_arguments, add_runtime_arguments, apply_threads, open_dataset,
                                   parse_overrides)

HELP = "train a model (AdamW, warm-up + step schedule, checkpoints every epoch, --resume, torchrun DDP)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-file", type=Path, default=None, metavar="YAML",
                        help="this command's options from a YAML file (e.g. config/train/stage11b.yaml: keys "
                             "as the options' names, a list repeats an option, true sets a flag); options on "
                             "the command line override it, and --mix/--set given there add to its lists")
    parser.add_argument("--preset", default="tabletop", help="model preset and training recipe (default tabletop)")
    add_dataset_arguments(parser, split_default="train")
    parser.add_argument("--mix", action="append", default=[], metavar="FORMAT:DIR[:TYPES]",
                        help="also train on this dataset's --split (repeatable), e.g. tabletop:data/tabletop "
                             "beside a v2 --data, so that a fine-tune keeps what the old data taught; each "
                             "dataset contributes all its expressions, so its share follows its size. "
                             "TYPES (comma-separated) keeps only those expression types: naming --data "
                             "again with a rare type adds its expressions once more (oversampling). FORMAT "
                             "tabletop-absent: two expressions per image of a v1 split for objects that are "
                             "not there (no-target samples for scenes whose generator has none)")
    parser.add_argument("--val-split", default="val", help="split validated after each epoch ('' = none)")
    parser.add_argument("--val-samples", type=int, default=600, help="expressions validated per epoch")
    parser.add_argument("--out", required=True, type=Path, help="run directory")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--epoch-samples", type=int, default=None,
                        help="samples per epoch (default: the whole split); shorter epochs checkpoint more often")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.*")
    parser.add_argument("--init", type=Path, default=None, metavar="CKPT",
                        help="fine-tune: start from this checkpoint's weights and options (a fresh optimizer "
                             "and schedule); --set with it may only add parts, e.g. presence_head=true")
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                        help="model option override, repeatable (e.g. --set law=false)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--cache-features", choices=("auto", "on", "off"), default=None)
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (online path)")
    parser.add_argument("--augment-variants", type=int, default=None,
                        help="camera variants (exposure, noise, blur, white balance, JPEG) cached per image on "
                             "the CPU path (0: none); a --resume must use the same value")
    parser.add_argument("--augment-clean-colour", type=float, default=None, metavar="P",
                        help="with --augment-variants: probability in [0, 1] that a sample whose expression says a "
                             "colour word takes the clean image (default: the preset's, as any sample; 1: always)")
    parser.add_argument("--train-only", action="append", default=None, metavar="PREFIX",
                        help="train only the parameters whose names start with PREFIX (repeatable; e.g. "
                             "head.presence: the found/not-found output alone, boxes and masks unchanged)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true")
    add_runtime_arguments(parser)


def _check_format(args: argparse.Namespace, model) -> None:
    # Without a presence output, a no-target expression could only teach an empty mask and a
    # meaningless box. `--format tabletop` reads a v2 split's single-target expressions.
    if args.format == "tabletop-v2" and model.head.presence is None:
        raise SystemExit("refseg train: --format tabletop-v2 holds expressions with no target, which need the "
                         "no-target output: add --set presence_head=true (also with --init), or train on a v2 "
                         "split's single-target expressions with --format tabletop (same --data)")


def run(args: argparse.Namespace) -> int:
    import torch

    from refseg_ros.model import build_model
    from refseg_ros.model.checkpoint import CheckpointError, extend_checkpoint, load_checkpoint
    from refseg_ros.training.config import load_train_config
    from refseg_ros.training.distributed import init_distributed, training_device
    from refseg_ros.training.trainer import Trainer

    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    apply_threads(args)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    try:
        device = training_device(args.device, local_rank)
    except ValueError as exc:
        raise SystemExit(f"refseg train: {exc}") from None
    dist = init_distributed(device)
    cfg = load_train_config(args.preset, batch_size=args.batch_size, lr=args.lr, cache_features=args.cache_features,
                            num_workers=args.workers, seed=args.seed, augment_variants=args.augment_variants,
                            augment_p_clean_colour=args.augment_clean_colour,
                            train_only=tuple(args.train_only) if args.train_only else None)
    torch.manual_seed(cfg.seed)
    run_dir: Path = args.out
    last = run_dir / "checkpoints" / "last.safetensors"
    if args.resume and last.exists():
        model = load_checkpoint(last)
        print(f"resuming from {last}", file=sys.stderr)
    else:
        if args.resume:
            print(f"--resume: no checkpoint at {last} yet, starting fresh", file=sys.stderr)
        if args.init is not None:
            try:
                if args.overrides:  # only options that add parts, e.g. presence_head=true
                    model, new = extend_checkpoint(args.init, **parse_overrides(args.overrides))
                    print(f"--init: {len(new)} new tensors ({', '.join(sorted({k.rsplit('.', 2)[0] for k in new}))})",
                          file=sys.stderr)
                else:
                    model = load_checkpoint(args.init)
            except (FileNotFoundError, CheckpointError) as exc:
                raise SystemExit(f"--init: {exc}") from None
            if model.preset != args.preset:
                raise SystemExit(f"--init {args.init} is a {model.preset!r} checkpoint, not {args.preset!r}")
            print(f"fine-tuning from {args.init}", file=sys.stderr)
        else:
            model = build_model(args.preset, **parse_overrides(args.overrides))
    _check_format(args, model)
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "run.json").write_text(json.dumps(
            {"argv": sys.argv, "run_file": _run_file_record(args.run_file), "preset": args.preset,
             "init": str(args.init) if args.init else None, "model_overrides": model.overrides,
             "train_config": cfg.to_dict(), "world_size": dist.world},
            indent=2, default=str))
    try:
        train_set = _training_set(args)
    except (OSError, ValueError, pickle.UnpicklingError) as exc:  # names the file (and ref) at fault
        raise SystemExit(f"refseg train: cannot open the training data: {exc}") from None
    val_set = None
    if args.val_split:
        try:
            val_set = open_dataset(args, split=args.val_split)
        except FileNotFoundError as exc:
            print(f"no validation: {exc}", file=sys.stderr)
    try:
        trainer = Trainer(model, train_set, cfg, run_dir, device, dist=dist, val_set=val_set,
                          val_samples=args.val_samples, epoch_samples=args.epoch_samples,
                          progress=not args.no_progress, meta=_init_meta(args.init))
    except ValueError as exc:  # options that do not fit this model or data
        raise SystemExit(f"refseg train: {exc}") from None
    if not trainer.cached:  # the online path augments samples as they are loaded
        from refseg_ros.data.augment import Augment

        train_set.augment = Augment(flip_prob=cfg.flip_prob, jitter=cfg.jitter, seed=cfg.seed)
    if args.resume and last.exists():
        trainer.load_optimizer_state(run_dir)
    trainer.fit(args.epochs)
    if dist.world > 1:
        _report_rank_agreement(trainer, run_dir, dist)
        torch.distributed.destroy_process_group()
    return 0


def _training_set(args: argparse.Namespace):
    """``--data``'s training split, mixed with every ``--mix`` dataset's."""
    main = open_dataset(args)
    if not args.mix:
        return main
    from refseg_ros.data.mixed import MixedDataset

    parts, names = [main], [f"{args.format}:{args.data}"]
    for item in args.mix:
        fmt, _, rest = item.partition(":")
        root, _, types = rest.partition(":")
        if fmt not in ("tabletop", "tabletop-v2", "refer", "tabletop-absent") or not root:
            raise ValueError(f"--mix expects FORMAT:DIR[:TYPES] with FORMAT tabletop, tabletop-v2, refer or "
                             f"tabletop-absent; got {item!r}")
        keep = [t.strip() for t in types.split(",") if t.strip()] or None
        if fmt == "tabletop-absent":
            if keep:
                raise ValueError(f"--mix {item}: tabletop-absent expressions have one type (no_target)")
            from refseg_ros.data.absent import AbsentObjectDataset
            from refseg_ros.data.dataset import TabletopRefDataset

            part = AbsentObjectDataset(TabletopRefDataset(root, args.split), seed=len(parts))
        else:
            part = open_dataset(argparse.Namespace(**{**vars(args), "format": fmt, "data": root}), types=keep)
        if not len(part):
            raise ValueError(f"--mix {item}: no expressions of types {keep} in {root}")
        parts.append(part)
        names.append(item)
    mixed = MixedDataset(parts, names)
    print("training on " + ", ".join(f"{n} ({len(p)} expressions)" for n, p in zip(names, parts)), file=sys.stderr)
    return mixed


def _run_file_record(path: Path | None) -> dict | None:
    """The --run-file as the run used it: its path and its text (the file may change later)."""
    if path is None:
        return None
    return {"path": str(path), "text": path.read_text(encoding="utf-8")}


def _init_meta(init: Path | None) -> dict:
    """What every checkpoint of a fine-tuning run records about where it started."""
    if init is None:
        return {}
    from refseg_ros.model.checkpoint import file_sha256, read_metadata

    start = read_metadata(init).get("extra") or {}
    return {"init": {"path": str(init), "sha256": file_sha256(init),
                     "epoch": start.get("epoch"), "global_step": start.get("global_step"),
                     "train_config": start.get("train_config"), "init": start.get("init")}}


def _report_rank_agreement(trainer, run_dir: Path, dist) -> None:
    """Gather a checksum of the trained weights from every rank; rank 0 writes ddp_check.json."""
    import torch

    vec = torch.cat([p.detach().double().flatten().cpu() for p in trainer.model.parameters() if p.requires_grad])
    local = torch.tensor([vec.sum().item(), (vec * vec).sum().item(), vec.abs().max().item()], dtype=torch.float64)
    gathered = [torch.zeros_like(local) for _ in range(dist.world)]
    torch.distributed.all_gather(gathered, local)
    if dist.main:
        sums = [g.tolist() for g in gathered]
        (run_dir / "ddp_check.json").write_text(json.dumps(
            {"world_size": dist.world, "checksums": sums, "identical": all(s == sums[0] for s in sums)}, indent=2))

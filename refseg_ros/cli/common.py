"""Argument helpers shared by the `refseg` subcommands (datasets, model overrides, threads)."""
from __future__ import annotations

import argparse
import os

import yaml


def add_dataset_arguments(parser: argparse.ArgumentParser, split_default: str) -> None:
    parser.add_argument("--data", required=True, help="dataset root: a `refseg data tabletop --out` "
                        "directory, or a REFER root (with --format refer)")
    parser.add_argument("--split", default=split_default, help=f"split to use (default {split_default})")
    parser.add_argument("--format", choices=("tabletop", "tabletop-v2", "refer"), default="tabletop",
                        help="on-disk format (default tabletop: single-target expressions, also of a "
                             "v2 split; tabletop-v2: every expression of a `refseg data tabletop-v2` "
                             "split, with zero, one or several targets)")
    parser.add_argument("--refer-dataset", default="refcoco",
                        help="REFER dataset name: refcoco, refcoco+, refcocog, refclef (with --format refer)")
    parser.add_argument("--refer-splitby", default=None,
                        help="REFER split scheme: unc, umd, google, berkeley (default: the dataset's usual one)")


def open_dataset(args: argparse.Namespace, split: str | None = None, augment=None, types=None):
    """The Dataset named by the --data/--format arguments, for ``split`` (default ``args.split``);
    ``types``: only expressions of these types (tabletop formats)."""
    split = split or args.split
    if args.format == "tabletop":
        from refseg_ros.data.dataset import TabletopRefDataset

        return TabletopRefDataset(args.data, split, types=types, augment=augment)
    if args.format == "tabletop-v2":
        from refseg_ros.data.v2.dataset import TabletopV2Dataset

        return TabletopV2Dataset(args.data, split, types=types, augment=augment)
    if types is not None:
        raise ValueError("expression types can only be chosen in tabletop data")
    from refseg_ros.data.refer import ReferDataset

    return ReferDataset(args.data, args.refer_dataset, split, split_by=args.refer_splitby, augment=augment)


def parse_overrides(items: list[str] | None) -> dict:
    """``["law=false", "depth=6"]`` -> ``{"law": False, "depth": 6}`` (values parsed as YAML)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto",
                        help="auto, cpu, cuda or cuda:N (default auto: cuda if a GPU is visible; "
                             "a GPU asked for and missing is an error)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: all cores)")


def apply_threads(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads or os.cpu_count() or 1)

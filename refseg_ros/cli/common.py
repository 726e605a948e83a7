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


RUN_FILE = "--run-file"


def expand_run_file(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``argv`` with the options of a ``--run-file FILE`` written out, for subcommands that take one.

    FILE is a YAML mapping of the subcommand's options, keys as the long option names with ``_``
    or ``-`` (``epoch_samples: 10000``); a list repeats its option (``mix:``), ``true`` sets a
    flag, ``false``/``null`` leaves it out. The file's options go right after the subcommand name,
    so every option on the command line overrides them (a repeatable one, such as ``--mix``, adds
    to the file's). ``--run-file FILE`` itself stays in ``argv`` so the command can record it.
    """
    if RUN_FILE not in argv and not any(a.startswith(RUN_FILE + "=") for a in argv):
        return argv
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    index = next((i for i, a in enumerate(argv) if sub is not None and a in sub.choices), None)
    if index is None or RUN_FILE not in sub.choices[argv[index]]._option_string_actions:
        return argv  # argparse names the unknown option
    command, options = argv[index], sub.choices[argv[index]]._option_string_actions
    paths = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == RUN_FILE] + \
        [a.split("=", 1)[1] for a in argv if a.startswith(RUN_FILE + "=")]
    if len(paths) != 1:
        raise SystemExit(f"refseg {command}: give {RUN_FILE} once (got {len(paths)})")
    path = paths[0]
    try:
        values = yaml.safe_load(open(path, encoding="utf-8").read())
    except OSError as exc:
        raise SystemExit(f"refseg {command}: {RUN_FILE} {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SystemExit(f"refseg {command}: {RUN_FILE} {path} is not valid YAML: {exc}") from None
    if not isinstance(values, dict):
        raise SystemExit(f"refseg {command}: {RUN_FILE} {path} must hold a mapping of options (key: value)")
    tokens: list[str] = []
    for key, value in values.items():
        option = "--" + str(key).replace("_", "-")
        action = options.get(option)
        if action is None or option in (RUN_FILE, "--help"):
            raise SystemExit(f"refseg {command}: {RUN_FILE} {path}: {key!r} is not an option of refseg {command} "
                             f"(see refseg {command} --help)")
        flag = action.nargs == 0  # store_true and the like
        for item in value if isinstance(value, list) else [value]:
            if item is None or item is False:
                continue
            if flag:
                if item is not True:
                    raise SystemExit(f"refseg {command}: {RUN_FILE} {path}: {key} is a flag: true or false")
                tokens.append(option)
            else:
                tokens += [option, str(item)]
    return argv[:index + 1] + tokens + argv[index + 1:]


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

"""`refseg data`: generate the tabletop referring-expression data (pybullet).

``refseg data tabletop --out DIR --scenes N --seed S [--split NAME] [--workers W]
[--width 320 --height 240]`` renders the missing scenes of one split and writes its index
``DIR/<split>.json`` (format: docs/data-format.md). Re-running resumes.

``refseg data check --format refer --data ROOT [--dataset refcoco] [--split-by unc]`` opens a
RefCOCO-family dataset as training would and lists every problem with its file and ref (exit 1
if there is one), before hours of training find the first one mid-epoch.

``refseg data tabletop-v2 --out DIR --scenes N --seed S --split NAME`` renders Tabletop v2
(textured objects, physical lenses, no/multi-target and negation expressions, noisy wording;
splits train, val, test, wording, categories, cameras, compositional).

``refseg data stats --data DIR --split NAME [--json] [--sheet out.png]`` summarises a split
(v1 or v2) and draws a contact sheet of 16 random scenes with one expression's targets outlined.
"""
from __future__ import annotations

import argparse
import json

HELP = "generate tabletop referring-expression data with pybullet (see docs/data-format.md)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="KIND")
    tab = sub.add_parser(
        "tabletop", help="render pybullet tabletop scenes with referring expressions",
        description="Render scenes 0..N-1 of a split (skipping those already written) and "
                    "write the COCO-style index DIR/<split>.json. Scene i is rendered from a "
                    "seed derived from (--seed, --split, i), so results do not depend on "
                    "--workers. The 'compositional' split holds the held-out colour-category "
                    "pairs that no other split contains.")
    tab.add_argument("--out", required=True, help="output directory")
    tab.add_argument("--scenes", type=int, required=True, help="number of scenes in the split")
    tab.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    tab.add_argument("--split", default="train",
                     help="split name: train, val, test, compositional (or any name; default "
                          "train)")
    tab.add_argument("--workers", type=int, default=2, help="rendering processes (default 2)")
    tab.add_argument("--width", type=int, default=320, help="image width (default 320)")
    tab.add_argument("--height", type=int, default=240, help="image height (default 240)")
    tab.add_argument("--no-progress", action="store_true", help="no progress bar")
    tab.add_argument("--json", action="store_true", help="print the summary as JSON")
    chk = sub.add_parser(
        "check", help="check a REFER-layout dataset (RefCOCO, RefCOCO+, RefCOCOg, ReferIt)",
        description="Open every split of a dataset's scheme as `refseg train --format refer` "
                    "would, decode every mask, and print counts and problems (exit 1 if any).")
    chk.add_argument("--format", choices=("refer",), default="refer", help="dataset layout (refer)")
    chk.add_argument("--data", required=True, help="REFER root (holds <dataset>/refs(<split_by>).p)")
    chk.add_argument("--dataset", default="refcoco",
                     help="refcoco, refcoco+, refcocog or refclef (default refcoco)")
    chk.add_argument("--split-by", default=None, help="split scheme (default: the dataset's usual one)")
    chk.add_argument("--image-dir", default=None, help="images folder (default: found under --data)")
    chk.add_argument("--json", action="store_true", help="print the report as JSON")
    v2 = sub.add_parser(
        "tabletop-v2", help="render Tabletop v2 scenes (textured objects, real lenses, 0..n targets)",
        description="Render scenes 0..N-1 of a v2 split (resuming) and write DIR/<split>.json "
                    "(format version 2, docs/data-format.md). Splits: train, val, test, wording, "
                    "categories, cameras, compositional (any other name behaves like train).")
    v2.add_argument("--out", required=True, help="output directory")
    v2.add_argument("--scenes", type=int, required=True, help="number of scenes in the split")
    v2.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    v2.add_argument("--split", default="train", help="split name (default train)")
    v2.add_argument("--workers", type=int, default=2, help="rendering processes (default 2)")
    v2.add_argument("--long-side", type=int, default=320,
                    help="image long side in pixels; aspect 4:3, 16:9 or 3:4 per scene (default 320)")
    v2.add_argument("--colour-variety", type=float, default=0.0, metavar="A",
                    help="in [0, 1]: painted objects take other shades their colour word still names "
                         "(hue +-7 deg, saturation -20 %%, value -10 %% at 1; default 0: the catalogue's "
                         "paint, as earlier versions rendered)")
    v2.add_argument("--no-progress", action="store_true", help="no progress bar")
    v2.add_argument("--json", action="store_true", help="print the summary as JSON")
    st = sub.add_parser("stats", help="summarise a generated split (v1 or v2)",
                        description="Scenes, expressions, categories, counts per expression type, "
                                    "camera ranges, aspects, textured share and asset sources.")
    st.add_argument("--data", required=True, help="the --out directory of the split")
    st.add_argument("--split", default="train", help="split name (default train)")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.add_argument("--sheet", default=None, help="write a contact sheet of 16 random scenes here")
    parser.set_defaults(_data_parser=parser)


def _tabletop_v2(args: argparse.Namespace) -> int:
    if args.scenes < 0 or args.workers < 1 or args.long_side < 64 or not 0 <= args.colour_variety <= 1:
        print("error: --scenes >= 0, --workers >= 1, --long-side >= 64, --colour-variety in [0, 1]")
        return 2
    from refseg_ros.data.v2.generate import generate_split_v2

    stats = generate_split_v2(args.out, args.split, args.scenes, args.seed, workers=args.workers,
                              long_side=args.long_side, progress=not args.no_progress,
                              colour_variety=args.colour_variety)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(f"{stats['split']}: {stats['rendered']} scenes rendered, {stats['skipped']} already "
          f"there, {stats['seconds']} s")
    print(f"index {stats['index']}: {stats['images']} images, {stats['annotations']} objects, "
          f"{stats['expressions']} expressions")
    for kind, n in stats["by_type"].items():
        print(f"  {kind}: {n}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    import os

    from refseg_ros.data.v2.stats import contact_sheet, load_index, split_stats

    if not os.path.exists(os.path.join(args.data, f"{args.split}.json")):
        print(f"error: {os.path.join(args.data, args.split + '.json')} not found")
        return 1
    index = load_index(args.data, args.split)
    stats = split_stats(index)
    if args.sheet:
        stats["sheet"] = contact_sheet(args.data, index, args.sheet)
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        for key, value in stats.items():
            print(f"{key}: {value}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from refseg_ros.data.refer import check_refer, format_check

    try:
        report = check_refer(args.data, args.dataset, args.split_by, args.image_dir)
    except (OSError, ValueError) as exc:  # no such dataset or scheme: the message names the file
        print(f"error: {exc}")
        return 1
    print(json.dumps(report, indent=2) if args.json else format_check(report))
    return 1 if report["problems"] else 0


def run(args: argparse.Namespace) -> int:
    if getattr(args, "data_command", None) == "check":
        return _check(args)
    if getattr(args, "data_command", None) == "tabletop-v2":
        return _tabletop_v2(args)
    if getattr(args, "data_command", None) == "stats":
        return _stats(args)
    if getattr(args, "data_command", None) != "tabletop":
        args._data_parser.print_help()
        return 2
    if args.scenes < 0 or args.workers < 1 or args.width < 32 or args.height < 32:
        print("error: --scenes >= 0, --workers >= 1, --width/--height >= 32")
        return 2
    from refseg_ros.data.generate import generate_split

    stats = generate_split(args.out, args.split, args.scenes, args.seed, workers=args.workers,
                           width=args.width, height=args.height, progress=not args.no_progress)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    rate = stats["scenes_per_second"]
    print(f"{stats['split']}: {stats['rendered']} scenes rendered, {stats['skipped']} already "
          f"there, {stats['seconds']} s" + (f" ({rate} scenes/s)" if rate else ""))
    print(f"index {stats['index']}: {stats['images']} images, {stats['annotations']} objects, "
          f"{stats['refs']} targets, {stats['sentences']} expressions")
    for kind, n in stats["sentences_per_type"].items():
        print(f"  {kind}: {n}")
    return 0

"""`refseg train --run-file`: a YAML of the command's options, overridden by the command line."""
from __future__ import annotations

from pathlib import Path

import pytest

from refseg_ros.cli.common import expand_run_file
from refseg_ros.cli.main import build_parser

REPO = Path(__file__).resolve().parents[1]


def _parse(argv):
    parser = build_parser()
    return parser.parse_args(expand_run_file(parser, argv))


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_file_options_and_command_line_overrides(tmp_path):
    run = _write(tmp_path, "format: tabletop-v2\ndata: d/v2\nmix: [tabletop:d/v1, 'tabletop-v2:d/v2:negation']\n"
                           "epoch-samples: 100\nlr: 2.0e-4\nno_progress: true\nresume: false\nseed: null\n"
                           "out: runs/a\nval_split: ''\n")
    args = _parse(["train", "--run-file", str(run), "--out", "runs/b", "--mix", "tabletop:d/extra", "--lr", "1e-3"])
    assert args.format == "tabletop-v2" and args.data == "d/v2" and args.epoch_samples == 100
    assert args.out == Path("runs/b") and args.lr == 1e-3  # the command line wins
    assert args.mix == ["tabletop:d/v1", "tabletop-v2:d/v2:negation", "tabletop:d/extra"]  # and adds to lists
    assert args.no_progress is True and args.resume is False and args.seed is None and args.val_split == ""
    assert args.run_file == run
    # the --opt=value form, and a command without a file is untouched
    assert _parse(["train", f"--run-file={run}"]).out == Path("runs/a")
    assert _parse(["train", "--data", "x", "--out", "y"]).run_file is None


@pytest.mark.parametrize("text, message", [
    ("data: d\nepochz: 3\n", "'epochz' is not an option of refseg train"),
    ("- data\n- d\n", "must hold a mapping"),
    ("data: [unclosed\n", "is not valid YAML"),
    ("data: d\nout: o\nresume: yes please\n", "resume is a flag"),
    ("data: d\nrun_file: other.yaml\n", "'run_file' is not an option"),
])
def test_bad_files_are_named_with_the_reason(tmp_path, text, message):
    run = _write(tmp_path, text)
    with pytest.raises(SystemExit) as exc:
        _parse(["train", "--run-file", str(run)])
    assert message in str(exc.value) and str(run) in str(exc.value)


def test_missing_file_and_commands_without_run_files(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _parse(["train", "--run-file", str(tmp_path / "nope.yaml")])
    assert "nope.yaml" in str(exc.value) and "No such file" in str(exc.value)
    with pytest.raises(SystemExit):  # given twice
        _parse(["train", "--run-file", "a.yaml", "--run-file", "b.yaml"])
    with pytest.raises(SystemExit) as exc:  # eval takes no run file: argparse's own error
        _parse(["eval", "--data", "d", "--run-file", str(_write(tmp_path, "data: d\n"))])
    assert exc.value.code == 2 and "--run-file" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted((REPO / "config" / "train").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_run_files_parse(path):
    args = _parse(["train", "--run-file", str(path)])
    assert args.format == "tabletop-v2" and args.out and args.init and args.mix
    for item in args.mix:  # FORMAT:DIR[:TYPES], as the trainer reads them
        fmt, _, rest = item.partition(":")
        assert fmt in ("tabletop", "tabletop-v2", "tabletop-absent") and rest

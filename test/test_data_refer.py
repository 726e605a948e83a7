"""REFER-layout datasets (RefCOCO, RefCOCO+, RefCOCOg, RefCLEF) read as the REFER toolkit and
pycocotools read them, on a fixture in the official layout (test/refer_fixture.py); the checks
run when a dataset is opened; and the restricted unpickler behind the ``refs`` files."""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import refer_fixture
from refseg_ros.data.refer import (ReferDataError, ReferDataset, UnsafePickleError, check_refer,
                                   format_check, load_refs, select_split)
from refseg_ros.data.refer_masks import refer_mask
from refseg_ros.data.safe_pickle import load_pickle

pycocotools_mask = pytest.importorskip("pycocotools.mask")
# pycocotools under numpy 2 (harmless; refer_masks silences it outside pytest), and the fixture's
# one Latin-1 sentence (tested on its own)
pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UnicodeWarning")]


@pytest.fixture(scope="module")
def refer(tmp_path_factory):
    root = tmp_path_factory.mktemp("refer")
    return root, refer_fixture.build(root)


def _open(root, dataset, split, scheme, **kw):
    return ReferDataset(root, dataset, split, split_by=scheme, **kw)


def official_split(rows, split):
    """The toolkit's documented ``getRefIds(split=...)`` rule, written from its description."""
    if split == "test":
        return [r for r in rows if "test" in r["split"]]
    if split in ("testA", "testB", "testC"):
        return [r for r in rows if split[-1] in r["split"]]
    return [r for r in rows if r["split"] == split]


def official_mask(seg, h, w):
    """The toolkit's ``getMask``: polygons through frPyObjects, RLE lists as they are; decode and
    sum the parts (non-zero = the object)."""
    M = pycocotools_mask
    if isinstance(seg, dict):  # getMask itself fails on a bare RLE dict; decode it as one part
        seg = [seg]
    if isinstance(seg[0], list):
        rle = M.frPyObjects(seg, h, w)
    else:  # ReferIt: a list of RLE dicts (list counts go through frPyObjects first)
        rle = [s if isinstance(s["counts"], str) else M.frPyObjects(s, h, w) for s in seg]
    return (M.decode(rle).sum(axis=2) > 0).astype(np.uint8)


CASES = [(d, s, split) for d, schemes in refer_fixture.SCHEMES.items() for s, (_, splits) in
         schemes.items() for split in sorted(set(splits) - {"testAB"}) +
         (["test"] if any(x.startswith("testA") for x in splits) else [])]


@pytest.mark.parametrize("dataset,scheme,split", CASES)
def test_agrees_with_the_reference_tools(refer, dataset, scheme, split):
    """Splits, sentence text, boxes, image paths and masks as the toolkit + pycocotools give."""
    root, truth = refer
    rows = official_split(truth[(dataset, scheme)], split)
    ds = _open(root, dataset, split, scheme)
    expected = [(r["ref_id"], t) for r in rows for t in r["texts"]]
    got = [(s[3], s[1]) for s in ds._samples]
    assert got == expected
    by_ref = {r["ref_id"]: r for r in rows}
    for i in range(len(ds)):
        sample = ds[i]
        row = by_ref[sample["ref_id"]]
        x, y, w, h = row["bbox"]
        np.testing.assert_allclose(sample["box"], [x, y, x + w, y + h], rtol=0, atol=1e-4)
        assert ds.image_paths[ds.image_index[i]] == row["path"]
        assert sample["image_id"] == row["image_id"] and sample["type"] == dataset
        assert sample["image"].shape[:2] == row["hw"]
        ref_mask = official_mask(row["segmentation"], *row["hw"])
        assert sample["mask"].dtype == np.uint8 and sample["mask"].max() <= 1
        assert np.array_equal(sample["mask"], ref_mask), (dataset, row["name"])


def test_test_means_every_test_split(refer):
    root, _ = refer
    a, b = _open(root, "refcoco", "testA", "unc"), _open(root, "refcoco", "testB", "unc")
    both = _open(root, "refcoco", "test", "unc")
    assert len(both) == len(a) + len(b) > 0
    clef = {s: _open(root, "refclef", s, "unc") for s in ("test", "testA", "testB", "testC")}
    # testAB belongs to testA and to testB, once to test
    assert {r["split"] for r in clef["test"].refs} == {"testA", "testB", "testC", "testAB"}
    assert "testAB" in {r["split"] for r in clef["testA"].refs} & {r["split"] for r in
                                                                  clef["testB"].refs}
    assert select_split([{"split": "train"}, {"split": "val"}], "train") == [{"split": "train"}]
    with pytest.raises(ValueError, match="unknown split"):
        select_split([], "dev")


def test_polygon_masks_are_pycocotools_masks():
    """The cases cv2.fillPoly got wrong: boundary pixels, slivers, overlapping and repeated parts."""
    h, w = refer_fixture.COCO_HW
    segs = refer_fixture.coco_segmentations(h, w, np.random.default_rng(3))
    areas = {}
    for name, seg in segs.items():
        mask = refer_mask(seg, h, w)
        ref = official_mask(seg, h, w)
        assert np.array_equal(mask, ref), name
        areas[name] = int(mask.sum())
    assert areas["square10"] == 100  # a pixel counts when its centre is inside: 10x10, not 11x11
    # overlapping parts keep their overlap; a repeated part is filled, not cancelled
    union = official_mask([segs["overlapping"][0]], h, w) | official_mask([segs["overlapping"][1]],
                                                                          h, w)
    assert areas["overlapping"] == int(union.sum())
    assert areas["repeated"] == int(official_mask([segs["repeated"][0]], h, w).sum()) > 0
    rng = np.random.default_rng(0)
    for radius in (5, 25, 100):
        for _ in range(20):
            seg = [refer_fixture.random_polygon(rng, rng.uniform(radius, 640 - radius),
                                                rng.uniform(radius, 480 - radius), radius)]
            assert np.array_equal(refer_mask(seg, 480, 640), official_mask(seg, 480, 640))


def test_referit_samples_load(refer):
    root, truth = refer
    for scheme in ("berkeley", "unc"):
        ds = _open(root, "referitgame", "train", scheme)
        assert ds.dataset == "refclef" and len(ds) > 0
        assert all(p.startswith(str(root / "images" / "saiapr_tc-12")) for p in ds.image_paths)
        for i in range(len(ds)):
            assert ds[i]["mask"].sum() > 0
    names = {r["name"] for r in truth[("refclef", "berkeley")]}
    assert {"clef_two_rles", "clef_list_counts"} <= names


def test_python2_strings_and_numpy_ids(refer):
    root, _ = refer
    with pytest.warns(UnicodeWarning, match="Latin-1.*caf") as record:
        refs = load_refs(str(root / "refcoco" / "refs(unc).p"))
    assert len([w for w in record if issubclass(w.category, UnicodeWarning)]) == 1
    texts = [s["sent"] for r in refs for s in r["sentences"]]
    assert "café sign" in texts and all(isinstance(t, str) for t in texts)
    assert all(isinstance(k, str) for r in refs for k in r)
    for path in ("refcoco/refs(google).p", "refcoco+/refs(unc).p", "refclef/refs(unc).p"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # pure UTF-8 files: no warning
            assert load_refs(str(root / path))
    assert (root / "refcoco+" / "refs(unc).p").read_bytes()[:2] == b"(l"  # protocol 0
    assert (root / "refcoco" / "refs(unc).p").read_bytes()[:2] == b"\x80\x02"
    numpy_refs = load_refs(str(root / "refcocog" / "refs(google).p"))
    assert all(type(r[k]) is int for r in numpy_refs for k in ("ref_id", "ann_id", "image_id"))


# --- checks when a dataset is opened ------------------------------------------------------------
def _copy(root, tmp_path, dataset="refcoco"):
    dst = tmp_path / "copy"
    shutil.copytree(root / dataset, dst / dataset)
    os.symlink(root / "images", dst / "images")
    return dst


def _edit_instances(root, dataset, edit):
    path = root / dataset / "instances.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["annotations"].pop(0), r"refs\(unc\).p ref 0: annotation \d+ is not in instances"),
    (lambda d: d["annotations"][0]["segmentation"][0].append(3.0),
     r"ref 0: annotation \d+: polygon 0 has an odd number of coordinates \(9\)"),
    (lambda d: d["annotations"][0].__setitem__("bbox", [1, 2, float("nan"), 4]),
     r"ref 0: annotation \d+ has bbox \[1, 2, nan, 4\]"),
    (lambda d: d["images"][0].__setitem__("file_name", "missing.jpg"),
     r"ref 0: image file .*missing.jpg not found"),
    (lambda d: d["annotations"][7]["segmentation"].__setitem__("size", [5, 5]),
     r"annotation \d+: RLE has size \[5, 5\], the image is \[96, 128\]"),
    (lambda d: d["annotations"][1]["segmentation"][0].__setitem__(2, float("inf")),
     r"polygon 0 has coordinates that are not finite"),
])
def test_problems_are_found_when_opened(refer, tmp_path, edit, message):
    root, _ = refer
    copy = _copy(root, tmp_path)
    _edit_instances(copy, "refcoco", edit)
    with pytest.raises(ReferDataError, match=message) as err:
        for split in ("train", "val", "test"):
            _open(copy, "refcoco", split, "unc")
    assert str(copy / "refcoco" / "refs(unc).p") in str(err.value)
    assert "refseg data check" in str(err.value)
    report = check_refer(copy, "refcoco", "unc")
    assert any(re.search(message, p) for p in report["problems"])


def test_damaged_files_name_the_path(refer, tmp_path):
    root, _ = refer
    copy = _copy(root, tmp_path)
    refs = copy / "refcoco" / "refs(unc).p"
    good = refs.read_bytes()
    refs.write_bytes(good[: len(good) // 2])
    with pytest.raises(ReferDataError, match=r"refs\(unc\).p.*(truncated|past the end|STOP)"):
        _open(copy, "refcoco", "train", "unc")
    refs.write_bytes(b"")
    with pytest.raises(ReferDataError, match=r"refs\(unc\).p"):
        _open(copy, "refcoco", "train", "unc")
    refs.write_bytes(good)
    inst = copy / "refcoco" / "instances.json"
    text = inst.read_text()
    inst.write_text(text[:100])
    with pytest.raises(ReferDataError, match=r"instances.json: not valid JSON"):
        _open(copy, "refcoco", "train", "unc")
    inst.write_text(json.dumps({"annotations": []}))
    with pytest.raises(ReferDataError, match=r"instances.json: no 'images' list"):
        _open(copy, "refcoco", "train", "unc")
    inst.write_text(text)
    refs.write_bytes(pickle.dumps({"not": "a list"}))
    with pytest.raises(ReferDataError, match=r"refs\(unc\).p: expected a list of ref dicts"):
        _open(copy, "refcoco", "train", "unc")
    refs.write_bytes(pickle.dumps([{"ref_id": 4, "split": "train"}]))
    with pytest.raises(ReferDataError, match=r"ref 4: no ann_id, image_id, sentences"):
        _open(copy, "refcoco", "train", "unc")


def test_split_and_scheme_errors(refer):
    root, _ = refer
    with pytest.raises(ValueError, match=r"no refs in split 'testA'.*'test', 'train', 'val'"):
        _open(root, "refcocog", "testA", "umd")
    with pytest.raises(ValueError, match="split schemes"):
        _open(root, "refcoco+", "val", "google")
    with pytest.raises(ValueError, match="unknown dataset"):
        _open(root, "flickr30k", "val", None)
    with pytest.raises(FileNotFoundError, match="image folder"):
        _open(root, "refcoco", "val", "unc", image_dir=str(root / "nowhere"))


def test_image_size_must_match_instances(refer, tmp_path):
    root, _ = refer
    copy = _copy(root, tmp_path)
    _edit_instances(copy, "refcoco", lambda d: d["images"][0].update(height=50))
    with pytest.raises(ReferDataError, match=r"is 128x96 but instances.json says 128x50"):
        ds = _open(copy, "refcoco", "train", "unc")
        for i in range(len(ds)):
            ds[i]


def test_check_summarises_every_split(refer):
    root, truth = refer
    report = check_refer(root, "refclef", "unc")
    assert report["problems"] == []
    rows = truth[("refclef", "unc")]
    assert {k: v["refs"] for k, v in report["splits"].items()} == \
        {s: sum(r["split"] == s for r in rows) for s in {r["split"] for r in rows}}
    assert report["rle_masks"] == 4 and report["polygon_masks"] == 0
    text = format_check(report)
    assert "testAB" in text and "problems: 0 (ok)" in text
    coco = check_refer(root, "refcoco")
    assert coco["split_by"] == "unc" and coco["polygon_masks"] == 7 and coco["rle_masks"] == 2


# --- the unpickler ------------------------------------------------------------------------------
class _Call:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


PAYLOADS = {
    "os.system": _Call(os.system, "touch pwned"),
    "builtins.eval": _Call(eval, "open('pwned', 'w')"),
    "builtins.exec": _Call(exec, "open('pwned', 'w')"),
    "builtins.getattr": _Call(getattr, 1, "real"),
    "builtins.__import__": _Call(__import__, "os"),
    "subprocess.Popen": _Call(subprocess.Popen, ["touch", "pwned"]),
    "builtins.open": _Call(open, "pwned", "w"),
    "shutil.rmtree": _Call(shutil.rmtree, "nothing-here"),
}


@pytest.mark.parametrize("name", sorted(PAYLOADS))
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_code_execution_is_refused(tmp_path, monkeypatch, name, protocol):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([{"ref_id": 0, "x": PAYLOADS[name]}], protocol=protocol))
    with pytest.raises(UnsafePickleError, match="refusing to unpickle global"):
        load_refs(str(path))
    assert not (tmp_path / "pwned").exists()


def test_old_style_instance_opcodes_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for data in (b"(S'touch pwned'\nios\nsystem\n.",            # INST
                 b"\x80\x02(cos\nsystem\nS'touch pwned'\no."):  # OBJ
        with pytest.raises(UnsafePickleError):
            load_pickle(data)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("data,message,unsafe", [
    # 35 bytes asking for 200 MB, through a size argument
    (b"\x80\x02c__builtin__\nbytearray\nJ\x00\xc2\xeb\x0b\x85R.", "bytearray", True),
    (b"\x80\x03cbuiltins\nbytes\nJ\x00\xc2\xeb\x0b\x85R.", "bytes", True),
    # a memo slot number sizes the C unpickler's memo table: 9 bytes asking for 1.6 GB
    (b"\x80\x02Nr" + struct.pack("<I", 100_000_000) + b".", "memo slot", True),
    (b"(lp0\nI1\nap99999999\n.", "memo slot", True),
    # a length field larger than the file, or negative: a damaged file
    (b"\x80\x04\x8e" + struct.pack("<Q", 10 ** 12) + b".", "past the end", False),
    (b"\x80\x02T" + struct.pack("<i", -5) + b".", "negative length", False),
    (b"\x80\x02]q\x00", "no STOP", False),
])
def test_sizes_are_bounded_by_the_file(data, message, unsafe):
    with pytest.raises(pickle.UnpicklingError, match=message) as err:
        load_pickle(data)
    assert isinstance(err.value, UnsafePickleError) == unsafe


@pytest.mark.parametrize("protocol", range(6))
def test_numpy_scalars_become_numbers(protocol):
    data = pickle.dumps([{"ref_id": np.int64(7), "ann_id": np.uint32(4_000_000_000),
                          "image_id": np.int32(-3), "score": np.float32(0.5), "ok": np.bool_(True),
                          "area": np.float64(2.25), "small": np.int8(-2)}], protocol=protocol)
    refs = load_pickle(data)
    assert refs == [{"ref_id": 7, "ann_id": 4_000_000_000, "image_id": -3, "score": 0.5,
                     "ok": True, "area": 2.25, "small": -2}]
    assert all(type(v) in (int, float, bool) for v in refs[0].values())


def test_numpy_arrays_and_objects_are_refused_clearly():
    with pytest.raises(UnsafePickleError, match=r"numpy arrays are not read.*tolist"):
        load_pickle(pickle.dumps([np.arange(3)], protocol=2))
    with pytest.raises(UnsafePickleError, match="only integer, float and bool"):
        load_pickle(pickle.dumps([np.datetime64("2020-01-01")], protocol=2))


def test_plain_containers_still_load():
    import collections

    data = [collections.OrderedDict(a=1), {1, 2}, frozenset({3}), (1.5, "x"), b"raw", None,
            bytearray(b"ab"), 2 ** 80, complex(1, 2)]
    for protocol in range(6):
        assert load_pickle(pickle.dumps(data, protocol=protocol)) == data
    with pytest.raises(UnsafePickleError, match="Counter"):
        load_pickle(pickle.dumps([collections.Counter(a=1)]))


def test_python2_pickles_decode_like_the_original_data():
    obj = [{refer_fixture.Py2Str(b"sent"): refer_fixture.Py2Str("naïve".encode("utf-8")),
            refer_fixture.Py2Str(b"raw"): refer_fixture.Py2Str(b"na\xefve"),
            refer_fixture.Py2Str(b"u"): "ünï", refer_fixture.Py2Str(b"set"): (1, 2)}]
    for protocol in (0, 2):
        with pytest.warns(UnicodeWarning, match="1 Python 2 string"):
            assert load_pickle(refer_fixture.py2_pickle(obj, protocol)) == \
                [{"sent": "naïve", "raw": "naïve", "u": "ünï", "set": (1, 2)}]
    # the Python 2 global names of builtins resolve too
    data = (b"\x80\x02]q\x00}q\x01(U\x05splitq\x02U\x05trainq\x03U\x03setq\x04c__builtin__\nset\n"
            b"q\x05]q\x06K\x01a\x85q\x07Rq\x08ua.")
    assert load_pickle(data) == [{"split": "train", "set": {1}}]


def test_deep_nesting_is_bounded():
    data = b"\x80\x02" + b"]" * 5000 + b"U\x01\xff" + b"a" * 5000 + b"."
    with pytest.raises(UnsafePickleError, match="nested"):
        load_pickle(data)


# --- end to end ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_train_and_eval_paper_preset_on_refer(refer, tmp_path):
    """A few `refseg train --preset paper --format refer` steps and `refseg eval --format refer`
    (random weights, CPU)."""
    root, truth = refer
    refseg = str(Path(sys.executable).parent / "refseg")
    common = ["--format", "refer", "--data", str(root), "--refer-dataset", "refcoco",
              "--no-progress", "--threads", "1", "--device", "cpu"]
    run = tmp_path / "run"
    out = subprocess.run([refseg, "train", "--preset", "paper", *common, "--out", str(run),
                          "--epochs", "1", "--epoch-samples", "4", "--batch-size", "2",
                          "--val-samples", "2", "--workers", "0"],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 2 and np.isfinite(rows[0]["train_loss"])
    assert rows[0]["val"]["n"] == 2
    out = subprocess.run([refseg, "eval", "--checkpoint", str(run / "checkpoints" /
                                                             "last.safetensors"),
                          *common, "--split", "test", "--max-samples", "4", "--batch-size", "2",
                          "--json", str(tmp_path / "eval.json")],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert metrics["n"] == 4 and 0 <= metrics["res_miou"] <= 100
    assert set(metrics["by_type"]) == {"refcoco"}


def test_data_check_command(refer, tmp_path, capsys):
    from refseg_ros.cli.main import main

    root, _ = refer

    assert main(["data", "check", "--format", "refer", "--data", str(root), "--dataset", "refcoco",
                 "--split-by", "unc"]) == 0
    out = capsys.readouterr().out
    assert "testA" in out and "problems: 0 (ok)" in out
    copy = _copy(root, tmp_path)
    _edit_instances(copy, "refcoco", lambda d: d["annotations"].pop(0))
    assert main(["data", "check", "--format", "refer", "--data", str(copy), "--dataset", "refcoco",
                 "--split-by", "unc"]) == 1
    assert "is not in instances.json" in capsys.readouterr().out
    assert main(["data", "check", "--data", str(tmp_path / "nowhere"), "--dataset", "refcoco"]) == 1
    assert "not found" in capsys.readouterr().out

"""Untrusted checkpoint files: a seeded fuzz over ``load_checkpoint`` (no ROS).

A checkpoint is two files copied between machines, so both are attacker- or accident-controlled.
Every case below either loads (a model whose weights came from the file) or raises the documented
:class:`CheckpointError`; any other exception, a hang or a crash fails the test. Cases where the
sidecar's sha256 is rewritten to match the damaged weights get past the checksum, so the
safetensors parser and the model rebuild are exercised too, not only the hash.
"""
from __future__ import annotations

import collections
import json
import random

import pytest
import torch

from refseg_ros.model.build import build_model
from refseg_ros.model.checkpoint import (CheckpointError, file_sha256, load_checkpoint, save_checkpoint,
                                         sidecar_path)

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:checkpoint was trained with")  # mutated package versions

# Values a hand-edited or damaged sidecar may hold where the loader expects something else.
NASTY = [None, True, False, 0, -1, 2**63, -(2**70), 1e308, float("nan"), 0.5, "", "x" * 5000, "../../etc/passwd",
         "paper\x00", "\u202etabletop", [], [1, 2], [[[]]], {}, {"a": 1}, {"sha256": None}]
# Plausible-looking but wrong override values, per option (type right, value absurd, or the reverse).
OVERRIDES = {
    "embed_dim": [0, -192, 10**6, 191, "192", 192.0], "depth": [0, -1, 10**5, 4.5], "num_heads": [0, -6, 7, 10**9],
    "input_size": [[0, 0], [320], [10**9, 10**9], [320, 240, 3], ["a", "b"], [float("inf"), 240]],
    "mask_threshold": [0.0, 1.0, 2.0, -0.5], "box_head": ["warp_drive", 3, None],
    "text_encoder": ["/etc", "/nonexistent/encoder", ""], "law_groups": [0, 10**7], "law_rank": [0, -3, 10**8],
    "mlp_ratio": [0.0, -4.0, 1e30], "max_tokens": [0, 2, 10**7], "global_blocks": [[99], [-1], "x"],
    "vit_checkpoint": ["/etc/passwd"], "patch_size": [0, 10**6], "law": ["yes", 1],
    "no_such_option": [1], "__class__": ["x"],
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fuzz_ckpt") / "ref.safetensors"
    save_checkpoint(build_model("tabletop"), path)
    return path


@pytest.fixture(autouse=True)
def built_once(monkeypatch):
    """The real builder, run once per distinct (preset, overrides): most mutations leave the model
    description alone, and rebuilding the same model hundreds of times would only cost CPU."""
    import refseg_ros.model.checkpoint as ckpt

    cache: dict[str, object] = {}

    def build(preset, **overrides):
        key = json.dumps([preset, overrides], sort_keys=True, default=repr)
        if key not in cache:
            cache[key] = build_model(preset, **overrides)
        return cache[key]

    monkeypatch.setattr(ckpt, "build_model", build)
    return cache


class Outcomes:
    """Counts loads and CheckpointError reasons; anything else is collected as a failure."""

    def __init__(self):
        self.counts: collections.Counter = collections.Counter()
        self.failures: list[str] = []

    def load(self, label: str, path) -> None:
        try:
            model = load_checkpoint(path)
        except CheckpointError as exc:
            text = str(exc)
            assert text and path.name in text or "sidecar" in text, f"{label}: error does not name the file: {text}"
            self.counts["CheckpointError: " + _reason(text)] += 1
        except Exception as exc:  # noqa: BLE001 - the point of the test
            self.failures.append(f"{label}: {type(exc).__name__}: {str(exc)[:300]}")
        else:
            assert model.checkpoint_meta is not None
            self.counts["loaded"] += 1

    def check(self) -> None:
        print("\n" + "\n".join(f"  {n:4d}  {k}" for k, n in sorted(self.counts.items(), key=lambda kv: -kv[1])))
        assert not self.failures, f"{len(self.failures)} cases raised something else:\n" + "\n".join(self.failures)


def _reason(text: str) -> str:
    for words in ("sha256", "not a readable safetensors", "not valid JSON", "format version", "lacks",
                  "is not one of", "overrides must be", "weights.sha256", "must be an object of strings",
                  "unknown model option", "wrong type", "cannot rebuild", "implausibly large", "sizes must be",
                  "does not match preset", "NaN or infinite", "nests too deeply", "not a refseg_ros", "bytes (a sidecar"):
        if words in text:
            return words
    return text[:60]


def _write(path, data: bytes, meta: dict, fix_sha: bool) -> None:
    path.write_bytes(data)
    if fix_sha:
        meta = json.loads(json.dumps(meta))
        meta["weights"]["sha256"] = file_sha256(path)
        meta["weights"]["bytes"] = len(data)
    sidecar_path(path).write_text(json.dumps(meta))


def test_damaged_weight_files_give_checkpoint_error(saved, tmp_path):
    rng = random.Random(10)
    data = saved.read_bytes()
    meta = json.loads(sidecar_path(saved).read_text())
    header_len = int.from_bytes(data[:8], "little")
    out = Outcomes()
    path = tmp_path / "w.safetensors"
    cases: list[tuple[str, bytes]] = []
    for n in (0, 1, 7, 8, 9, 64, 4096, 100_000):
        cases.append((f"random {n} bytes", rng.randbytes(n)))
    cases.append(("huge header length", (2**63).to_bytes(8, "little") + data[8:]))
    cases.append(("header length past the end", (len(data)).to_bytes(8, "little") + data[8:]))
    cases.append(("zero header length", bytes(8) + data[8:]))
    for cut in sorted({4, 8, 9, 8 + header_len // 2, 8 + header_len - 1, 8 + header_len, 8 + header_len + 1,
                       len(data) // 2, len(data) - 4, len(data) - 1}):
        cases.append((f"truncated at {cut}", data[:cut]))
    cases.append(("appended garbage", data + rng.randbytes(100)))
    for i in range(15):  # byte flips inside the JSON header (dtype, shape, offsets, names)
        b = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(8, 8 + header_len)] = rng.randrange(256)
        cases.append((f"header flip {i}", bytes(b)))
    header = json.loads(data[8:8 + header_len])
    some = next(k for k in header if k != "__metadata__")
    for label, edit in (("dtype F64", {"dtype": "F64"}), ("dtype I64", {"dtype": "I64"}), ("dtype junk", {"dtype": "Q7"}),
                        ("shape huge", {"shape": [2**40, 2**40]}), ("shape negative", {"shape": [-1]}),
                        ("offsets reversed", {"data_offsets": header[some]["data_offsets"][::-1]}),
                        ("offsets past end", {"data_offsets": [0, 2**62]})):
        h = json.loads(json.dumps(header))
        h[some].update(edit)
        raw = json.dumps(h).encode()
        cases.append((f"crafted header: {label}", len(raw).to_bytes(8, "little") + raw + data[8 + header_len:]))
    for i in range(5):  # flips in the tensor data: loads, unless a NaN/inf is produced
        b = bytearray(data)
        for _ in range(rng.randint(1, 50)):
            b[rng.randrange(8 + header_len, len(data))] = rng.randrange(256)
        cases.append((f"data flip {i}", bytes(b)))
    nan = bytearray(data)
    start = header[some]["data_offsets"][0] + 8 + header_len
    nan[start:start + 4] = bytes.fromhex("0000c07f")  # float32 NaN in the first element
    cases.append(("NaN weight", bytes(nan)))
    for label, blob in cases:
        _write(path, blob, meta, fix_sha=False)
        out.load(label + " (sidecar sha)", path)
        _write(path, blob, meta, fix_sha=True)
        out.load(label + " (matching sha)", path)
    out.check()
    assert out.counts["CheckpointError: sha256"] >= len(cases) - 1  # the hash catches every change first
    assert out.counts["CheckpointError: NaN or infinite"] >= 1


def test_mutated_sidecars_give_checkpoint_error(saved, tmp_path):
    rng = random.Random(11)
    meta = json.loads(sidecar_path(saved).read_text())
    out = Outcomes()
    path = tmp_path / "s.safetensors"
    path.write_bytes(saved.read_bytes())
    side = sidecar_path(path)

    def run(label: str, m) -> None:
        side.write_text(m if isinstance(m, str) else json.dumps(m))
        out.load(label, path)

    def paths(obj, prefix=()):
        for k, v in obj.items():
            yield prefix + (k,)
            if isinstance(v, dict):
                yield from paths(v, prefix + (k,))

    keys = list(paths(meta))
    for key in keys:  # every field deleted, and every field replaced by every nasty value
        m = json.loads(json.dumps(meta))
        parent = m
        for k in key[:-1]:
            parent = parent[k]
        del parent[key[-1]]
        run(f"delete {'.'.join(key)}", m)
        for value in rng.sample(NASTY, 5):  # a different sample per field; all of them over the fields
            m = json.loads(json.dumps(meta))
            parent = m
            for k in key[:-1]:
                parent = parent[k]
            parent[key[-1]] = value
            run(f"{'.'.join(key)} = {str(value)[:30]!r}", m)
    for name, values in OVERRIDES.items():
        for value in values:
            run(f"override {name}={str(value)[:30]}", {**meta, "overrides": {name: value}})
    for label, text in (("empty", ""), ("not an object", "[1, 2, 3]"), ("a string", '"tabletop"'),
                        ("deep nesting", "[" * 100_000 + "]" * 100_000), ("NUL bytes", "\x00" * 100),
                        ("BOM", "\ufeff" + json.dumps(meta)), ("huge", json.dumps({**meta, "extra": "x" * (2 << 20)}))):
        run(f"sidecar {label}", text)
    text = json.dumps(meta)
    for i in range(15):  # character-level damage to the JSON text
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            op, at = rng.randrange(3), rng.randrange(len(chars))
            if op == 0:
                del chars[at]
            elif op == 1:
                chars.insert(at, rng.choice('{}[]":,0-e\\\x00\u00e9'))
            else:
                chars[at] = rng.choice('{}[]":,0-e')
        run(f"text damage {i}", "".join(chars))
    run("version 0", {**meta, "format_version": 0})
    run("version 2", {**meta, "format_version": 2})
    run("version '1'", {**meta, "format_version": "1"})
    run("other format", {**meta, "format": "timm"})
    run("intact", meta)  # the control: the untouched sidecar loads
    out.check()
    assert out.counts["loaded"] >= 1
    assert out.counts["CheckpointError: format version"] >= 3
    assert out.counts["CheckpointError: is not one of"] >= 1  # a path as preset is refused, not opened
    assert out.counts["CheckpointError: implausibly large"] >= 3


def _rewrite_tensor(saved, path, key_pick, make):
    """``saved`` with one tensor replaced by ``make(tensor)`` and the sidecar's sha256 made to match
    (so the loader's own checks are what must catch it)."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(saved))
    key = key_pick(state)
    state[key] = make(state[key])
    save_file(state, str(path), metadata={"format": "refseg_ros.vglaw", "format_version": "1"})
    meta = json.loads(sidecar_path(saved).read_text())
    meta["weights"]["sha256"] = file_sha256(path)
    meta["weights"]["bytes"] = path.stat().st_size
    sidecar_path(path).write_text(json.dumps(meta))
    return key


def _float_key(state):
    return next(k for k, v in sorted(state.items()) if v.is_floating_point() and v.numel() > 1)


def test_weights_that_overflow_the_model_dtype_are_refused(saved, tmp_path):
    path = tmp_path / "big.safetensors"
    key = _rewrite_tensor(saved, path, _float_key, lambda t: torch.full(t.shape, 1e300, dtype=torch.float64))
    with pytest.raises(CheckpointError, match="NaN or infinite") as err:  # finite in float64, inf in float32
        load_checkpoint(path)
    assert key in str(err.value)


@pytest.mark.parametrize("dtype", [torch.bool, torch.int32, torch.uint8])
def test_weights_of_another_kind_of_dtype_are_refused_naming_the_key(saved, tmp_path, dtype):
    path = tmp_path / "kind.safetensors"
    key = _rewrite_tensor(saved, path, _float_key, lambda t: torch.ones(t.shape, dtype=dtype))
    with pytest.raises(CheckpointError, match="dtype") as err:
        load_checkpoint(path)
    assert key in str(err.value) and str(dtype).split(".")[-1] in str(err.value)


def test_other_float_precisions_still_load(saved, tmp_path):
    path = tmp_path / "half.safetensors"
    key = _rewrite_tensor(saved, path, _float_key, lambda t: t.to(torch.float16))
    model = load_checkpoint(path)
    assert model.state_dict()[key].dtype == torch.float32


def test_sidecar_text_encoder_is_pinned_or_a_folder_covered_by_its_digest(saved, tmp_path):
    from refseg_ros.model.checkpoint import folder_sha256

    folder = tmp_path / "encoder"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 384}))
    path = tmp_path / "enc.safetensors"
    path.write_bytes(saved.read_bytes())
    meta = json.loads(sidecar_path(saved).read_text())

    def load(value, digest=None):
        entry = {**meta["text_encoder"], **({"sha256": digest} if digest else {})}
        sidecar_path(path).write_text(json.dumps({**meta, "overrides": {"text_encoder": value}, "text_encoder": entry}))
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        return str(err.value)

    for value in (str(folder), "/etc", "minilm-l6/../../x"):  # no digest: never opened
        assert "records no digest" in load(value)
    assert "records no digest" not in load("/etc", digest="0" * 64)  # a digest, and no encoder there
    good = folder_sha256(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 768}))
    assert "contents differ" in load(str(folder), digest=good)  # the folder changed since saving
    # the right digest gets past the encoder check (this folder then lacks weights to build from)
    assert "cannot rebuild" in load(str(folder), digest=folder_sha256(folder))


def test_text_encoder_config_sizes_are_bounded(saved, tmp_path, monkeypatch):
    """Even a known encoder's config.json is read with bounds before a model is built from it."""
    from refseg_ros.model import text_encoder

    folder = tmp_path / "encoder"
    folder.mkdir()
    monkeypatch.setitem(text_encoder.TEXT_ENCODERS, "bloated", (lambda: folder, "pkg", "1"))
    path = tmp_path / "cfg.safetensors"
    path.write_bytes(saved.read_bytes())
    meta = json.loads(sidecar_path(saved).read_text())
    sidecar_path(path).write_text(json.dumps({**meta, "overrides": {"text_encoder": "bloated"}}))
    for config in ({"model_type": "bert", "hidden_size": 10**6, "num_hidden_layers": 6, "vocab_size": 30522},
                   {"model_type": "bert", "vocab_size": 10**9}, {"model_type": "bert", "num_hidden_layers": 10**4},
                   "x" * (2 << 20), "[1, 2"):
        (folder / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
        with pytest.raises(CheckpointError, match="config.json"):
            load_checkpoint(path)

"""``resolve_device``: the node's fallbacks (strict=False) and the trainer's and CLI's errors
(strict=True), with the GPUs a machine has faked. Also the shared timing helpers. No ROS."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from refseg_ros.utils.device import resolve_device
from refseg_ros.utils.timing import LatencyWindow, interleaved, percentile_ms


@pytest.fixture
def gpus(monkeypatch):
    """Pretend the machine has ``n`` GPUs."""
    def fake(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
    return fake


def test_without_a_gpu_the_node_falls_back_and_the_cli_refuses(gpus):
    gpus(0)
    assert resolve_device("auto") == ("cpu", "")
    assert resolve_device("auto", strict=True) == ("cpu", "")
    assert resolve_device(" CPU ") == ("cpu", "")
    device, note = resolve_device("cuda")
    assert device == "cpu" and "CUDA is not available" in note and "falling back to cpu" in note
    assert resolve_device("cuda:1")[0] == "cpu"
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device(name, strict=True)
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("tpu", strict=True)


def test_with_gpus(gpus):
    gpus(2)
    assert resolve_device("auto") == ("cuda", "")  # the node's names, as before
    assert resolve_device("cuda") == ("cuda", "")
    assert resolve_device("cuda:1") == ("cuda:1", "")
    device, note = resolve_device("cuda:2")
    assert device == "cuda:0" and "does not exist (2 GPU(s))" in note
    # strict: always an index (DDP and set_device need one); a bare cuda is the process's local rank
    assert resolve_device("auto", strict=True) == ("cuda:0", "")
    assert resolve_device("cuda", local_rank=1, strict=True) == ("cuda:1", "")
    assert resolve_device("cuda:0", local_rank=1, strict=True) == ("cuda:0", "")
    with pytest.raises(ValueError, match="does not exist"):
        resolve_device("cuda:2", strict=True)


def test_timing_helpers():
    assert percentile_ms([0.010, 0.020, 0.030]) == 20.0
    assert percentile_ms(np.array([0.001, 0.002]), 100) == 2.0
    assert percentile_ms([]) is None
    window = LatencyWindow(size=3)
    assert np.isnan(window.percentile(50))
    for v in (1.0, 2.0, 3.0, 4.0):
        window.add(v)
    assert len(window) == 3 and window.percentile(50) == 3.0
    calls = []
    t = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert set(t) == {"a", "b", "a_cpu", "b_cpu"} and all(v.shape == (3,) for v in t.values())

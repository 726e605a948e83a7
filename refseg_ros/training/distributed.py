"""Where a training process runs: its device and its place in a ``torchrun`` process group."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from refseg_ros.utils.device import resolve_device

__all__ = ["Dist", "init_distributed", "training_device"]


@dataclass
class Dist:
    """This process's rank among ``world`` processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def training_device(requested: str, local_rank: int = 0) -> torch.device:
    """The device to train on; a GPU that is asked for and missing is an error, not a CPU run.

    A bare ``cuda`` means this process's GPU (``local_rank``), made the current CUDA device so that
    NCCL and default-device tensors use it.
    """
    device = torch.device(resolve_device(requested, local_rank, strict=True)[0])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def init_distributed(device: torch.device) -> Dist:
    """Join the process group when launched by ``torchrun`` (NCCL on GPUs, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        import datetime

        # the ranks fill the feature cache in shards and wait for each other at a barrier: on a
        # CPU with camera variants that can outlast the default 30-minute timeout
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(hours=6))
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

"""Which torch device to run on, for the node, the trainer and the CLI alike.

A robot would rather run slower than not at all, so the node falls back (``strict=False``: CUDA
without a GPU -> cpu, a GPU index that does not exist -> cuda:0, each with a note to log). A
training run or an evaluation asked for a GPU should not quietly take hours on the CPU, so they
ask for ``strict=True``: the same request raises a ``ValueError`` saying why.
"""
from __future__ import annotations

import re

__all__ = ["CUDA_NAME", "resolve_device"]

#: ``cuda`` or ``cuda:N`` with N in ASCII digits (``str.isdigit`` also takes superscripts and other
#: scripts' digits, which ``int`` or torch then reject far from where the name was given).
CUDA_NAME = re.compile(r"cuda(?::([0-9]+))?")


def resolve_device(requested: str, local_rank: int = 0, strict: bool = False) -> tuple[str, str]:
    """(device string, note or "") for a ``device`` option: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    ``auto`` is CUDA when a GPU is visible, else cpu. ``local_rank`` (the process's GPU under
    ``torchrun``) is what a bare ``cuda`` means in strict mode, which always names an index so
    that DDP and ``torch.cuda.set_device`` get one. The note says what fell back, for the log.
    """
    import torch

    name = str(requested).strip().lower()
    has_cuda = torch.cuda.is_available()
    if name == "auto":
        name = "cuda" if has_cuda else "cpu"
    if name.startswith("cuda"):
        match = CUDA_NAME.fullmatch(name)
        if match is None:
            if strict:
                raise ValueError(f"device '{requested}' is not cuda or cuda:N (N in digits 0-9)")
            if has_cuda:
                return "cuda:0", f"device '{requested}' is not cuda or cuda:N; using cuda:0"
        if not has_cuda:
            if strict:
                raise ValueError(f"device '{requested}' requested but CUDA is not available "
                                 f"(torch {torch.__version__}, no GPU visible); use --device cpu or auto")
            return "cpu", (f"device '{requested}' requested but CUDA is not available "
                           f"(torch {torch.__version__}, no GPU visible); falling back to cpu")
        index_text = match.group(1) or ""
        index = int(index_text) if index_text else local_rank
        count = torch.cuda.device_count()
        if index >= count:
            if strict:
                raise ValueError(f"device '{requested}' does not exist ({count} GPU(s) visible)")
            return "cuda:0", f"device '{requested}' does not exist ({count} GPU(s)); using cuda:0"
        if strict or index_text or local_rank:
            return f"cuda:{index}", ""
        return "cuda", ""
    if strict:
        try:
            torch.device(name)
        except RuntimeError as exc:
            raise ValueError(f"device '{requested}' is not a torch device: {exc}") from None
    return name, ""

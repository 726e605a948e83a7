"""Parameter and FLOP counts of a model at its preset's input size (for ``refseg info --preset``).

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions,
2 FLOPs per multiply-add; element-wise work is not counted). "Per frame" is the work ``predict``
does for one image and one cached expression: image features + language-aware backbone + head.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def _cpu_flash_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    # The CPU kernel of scaled_dot_product_attention has no formula in torch's registry.
    return sdpa_flop_count(query, key, value)


def count_flops(fn, *args, **kwargs) -> int:
    """FLOPs of ``fn(*args, **kwargs)`` (run once, without autograd)."""
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops}
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def model_complexity(model, expression: str = "the red mug on the left") -> dict[str, Any]:
    """``params``, ``trainable_params``, ``gflops`` per frame (command cached), ``gflops_command``."""
    was_training = model.training
    model.eval()
    width, height = model.input_size
    image = torch.rand(1, 3, height, width, device=model.device)
    try:
        with torch.no_grad():
            command = model.command([expression])
        frame = count_flops(lambda: model.ground(model.image_features(image), command))
        text = count_flops(model.command, [expression])
    finally:
        model.train(was_training)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "gflops": round(frame / 1e9, 3),
        "gflops_command": round(text / 1e9, 3),
        "input_size": [width, height],
    }

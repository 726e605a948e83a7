"""ONNX export of the per-frame path (the route to TensorRT on a Jetson, or onnxruntime anywhere).

The exported graph is what ``GroundingPredictor.predict`` runs per frame once the command is set:
image features -> language-aware backbone -> box + mask head. What depends only on the command is
an input, computed once per command by PyTorch (``VGLAW.fold(VGLAW.command(expressions),
weights=False)``, see :class:`~refseg_ros.model.vglaw.FoldedCommand`):

=============== ====================================== ==========================================
input           shape                                  present when
=============== ====================================== ==========================================
``image``       ``(1, 3, H, W)`` float RGB in [0, 1]    always: the letterboxed canvas
``phi``         ``(B, layers, d_w, d_w)``              ``law: true`` (generated weights per layer)
``word_keys``   ``(B, blocks, heads, T, C)``           ``word_attention: true`` (words folded into
``word_bias``   ``(B, blocks, heads, T)``, -inf = pad  each block's word attention)
``word_values`` ``(B, blocks, heads, T, C)``
``box_query``   ``(B, C)``                             always (the sentence, for the box head)
``mask_kernel`` ``(B, K)``                             always (the sentence, for the mask head)
``mask_bias``   ``(B,)``                               always
=============== ====================================== ==========================================

Outputs: ``box (B, 4)`` normalised cxcywh on the canvas, ``mask_logits (B, 1, H/4, W/4)``.
``B`` (expressions) and ``T`` (tokens) are dynamic, and so are ``H`` and ``W`` (multiples of 16;
coordinate channels and sine positions are computed in the graph). Letterboxing and mapping boxes
and masks back to the camera image stay on the host (``refseg_ros.model.letterbox``), exactly as
in the predictor; a fixed-size engine (TensorRT profiles) can use the preset's input size.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from refseg_ros.model.vglaw import VGLAW, Command, FoldedCommand
from refseg_ros.utils.timing import interleaved, percentile_ms

#: ONNX opset: 17 has LayerNormalization, supported by onnxruntime and TensorRT 8.6+
OPSET = 17


WORD_INPUTS = FoldedCommand.WORD_FIELDS
HEAD_INPUTS = ("box_query", "mask_kernel", "mask_bias")


class FramePath(nn.Module):
    """``VGLAW.ground(VGLAW.image_features(image), command)`` with the folded command as plain tensors."""

    def __init__(self, model: VGLAW) -> None:
        super().__init__()
        self.model = model.eval()
        self.law = model.law is not None
        self.words = model.backbone.word_attn is not None
        self.presence = model.head.presence is not None

    def output_names(self) -> list[str]:
        return ["box", "mask_logits"] + (["presence"] if self.presence else [])

    def input_names(self) -> list[str]:
        return ["image"] + (["phi"] if self.law else []) + (list(WORD_INPUTS) if self.words else []) + \
            list(HEAD_INPUTS)

    def forward(self, image: torch.Tensor, *command: torch.Tensor) -> tuple[torch.Tensor, ...]:
        named = dict(zip(self.input_names()[1:], command))
        folded = FoldedCommand(**{k: v for k, v in named.items() if k != "phi"})
        # VGLAW.ground, with the batch taken from a shape rather than len(): a traced size keeps
        # the number of expressions dynamic in the graph (len() would freeze the example's).
        model = self.model
        features = model.backbone(model.image_features(image), folded.box_query.shape[0], phi=named.get("phi"),
                                  folded=folded)
        out = model.head(features, None, folded=folded)
        return (out.box, out.mask_logits) + ((out.presence,) if self.presence else ())


def command_tensors(model: VGLAW, command: Command) -> dict[str, torch.Tensor]:
    """The per-frame graph's command inputs (by name) of a command, folding it if it is not yet
    (a ``qkv`` it holds is not used: the graph takes Phi)."""
    if command.folded is None:
        command = model.fold(command, weights=False)
    named = {"phi": command.phi, **{k: getattr(command.folded, k) for k in WORD_INPUTS + HEAD_INPUTS}}
    return {k: named[k] for k in FramePath(model).input_names()[1:]}


def example_inputs(model: VGLAW, expressions: list[str], image: torch.Tensor | None = None) -> tuple:
    """Inputs of :class:`FramePath` for ``expressions`` (and a random canvas unless ``image``)."""
    w, h = model.input_size
    if image is None:
        image = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        named = command_tensors(model, model.command(list(expressions)))
    return (image, *(t.clone() for t in named.values()))


def export_onnx(model: VGLAW, out: str | Path, expressions: list[str] | None = None,
                opset: int = OPSET) -> Path:
    """Write ``out`` (one self-contained .onnx file); see the module docstring for its signature."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = FramePath(model).eval()
    # At least two expressions: with one, the tracer would record no broadcast of the image features.
    expressions = list(expressions or [])
    expressions += ["the red mug on the left", "the duck"][:max(0, 2 - len(expressions))]
    args = example_inputs(model, expressions)
    names = path.input_names()
    dims = {"image": {2: "height", 3: "width"}, "phi": {0: "expressions"},
            **{k: {0: "expressions", 3: "tokens"} for k in WORD_INPUTS},
            **{k: {0: "expressions"} for k in HEAD_INPUTS},
            "box": {0: "expressions"}, "mask_logits": {0: "expressions", 2: "mask_height", 3: "mask_width"},
            "presence": {0: "expressions"}}
    outputs = path.output_names()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints taken from shapes
        torch.onnx.export(path, args, str(out), input_names=names, output_names=outputs,
                          dynamic_axes={k: v for k, v in dims.items() if k in names + outputs},
                          opset_version=opset, dynamo=False, do_constant_folding=True)
    return out


def quantize_int8(path: str | Path, out: str | Path) -> Path:
    """onnxruntime's dynamic int8 quantization of ``path``'s MatMuls with constant weights (the
    transformer's projections and MLPs): int8 weights, activations quantized per call. What takes
    command inputs (Phi, the folded words) and the convolutions stay float32. CPU only; not a
    TensorRT input (TensorRT calibrates its own int8)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs advice on the root logger ("consider pre-processing", meant for static
    # quantization); keep it out of the node's console without configuring logging for the process.
    root, quiet = logging.getLogger(), logging.NullHandler()
    hush = logging.Filter("refseg_ros.quantize")  # passes no record from the root logger's own calls
    root.addFilter(hush)
    if not root.handlers:
        root.addHandler(quiet)  # else logging.warning() would install a stderr handler for good
    try:
        quantize_dynamic(str(path), str(out), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8)
    finally:
        root.removeFilter(hush)
        root.removeHandler(quiet)
    return Path(out)


class OnnxFramePath:
    """The exported per-frame graph under onnxruntime (CPU), called like ``VGLAW.ground`` on a canvas.

    ``GroundingPredictor(model, backend="onnxruntime")`` uses it. Exports ``model`` to a temporary
    file unless ``path`` is given (an export of the same model); ``int8``: run it through
    :func:`quantize_int8` first. The LAP attention is not an output.
    """

    def __init__(self, model: VGLAW, path: str | Path | None = None, threads: int | None = None,
                 int8: bool = False) -> None:
        import tempfile

        self.model = model
        self._command: Command | None = None
        self._feed: dict[str, np.ndarray] = {}
        with tempfile.TemporaryDirectory(prefix="refseg_onnx_") as tmp:
            if path is None:
                path = export_onnx(model, Path(tmp) / "frame.onnx")
            if int8:
                path = quantize_int8(path, Path(tmp) / "frame_int8.onnx")
            self.session = ort_session(path, threads)

    def __call__(self, canvas: torch.Tensor, command: Command):
        from refseg_ros.model.heads import GroundingOutput

        if self._command is not command:  # converted once per command, not per frame
            self._feed = {n: _array(t) for n, t in command_tensors(self.model, command).items()}
            self._command = command
        box, logits, *presence = self.session.run(None, {"image": _array(canvas), **self._feed})
        h, w = canvas.shape[-2:]
        return GroundingOutput(torch.from_numpy(box), torch.from_numpy(logits), torch.empty(0), (h // 16, w // 16),
                               torch.from_numpy(presence[0]) if presence else None)


def _array(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().cpu().numpy())


def ort_session(path: str | Path, threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # No busy-waiting between runs: a spinning pool takes the cores from whatever runs next (post-
    # processing, DDS, another session), which made both the run and the torch work after it slower.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_feed(session, inputs: tuple) -> dict[str, np.ndarray]:
    names = [i.name for i in session.get_inputs()]
    return {n: t.detach().cpu().numpy() for n, t in zip(names, inputs)}


def check_onnx(model: VGLAW, path: str | Path, expressions: list[str], image_hw: tuple[int, int] | None = None,
               seed: int = 0, threads: int | None = None) -> dict[str, float]:
    """Max abs difference of box and mask logits (and presence logits), onnxruntime vs PyTorch, on a
    random canvas."""
    w, h = model.input_size
    hh, ww = image_hw or (h, w)
    image = torch.rand(1, 3, hh, ww, generator=torch.Generator().manual_seed(seed))
    inputs = example_inputs(model, expressions, image)
    with torch.inference_mode():
        box, logits, *presence = FramePath(model)(*inputs)
    session = ort_session(path, threads)
    got_box, got_logits, *got_presence = session.run(None, ort_feed(session, inputs))
    if got_logits.shape != tuple(logits.shape):
        raise AssertionError(f"onnx mask logits {got_logits.shape} vs torch {tuple(logits.shape)}")
    out = {"box_max_abs_diff": float(np.abs(got_box - box.numpy()).max()),
           "mask_logits_max_abs_diff": float(np.abs(got_logits - logits.numpy()).max())}
    if presence:
        out["presence_max_abs_diff"] = float(np.abs(got_presence[0] - presence[0].numpy()).max())
    return out


def time_onnx(model: VGLAW, path: str | Path, expressions: list[str], frames: int = 30,
              threads: int | None = None) -> dict[str, float]:
    """onnxruntime CPU latency of the per-frame graph (p50/p95 ms) next to PyTorch's, interleaved.

    ``*_cpu_ms_p50`` is CPU time of the calling thread: with ``threads=1`` both runtimes compute
    there, so it reads as the idle-machine latency even when the machine is loaded.
    """
    session = ort_session(path, threads)
    inputs = example_inputs(model, expressions)
    feed = ort_feed(session, inputs)
    frame = FramePath(model)
    with torch.inference_mode():
        t = interleaved({"ort": lambda: session.run(None, feed), "torch": lambda: frame(*inputs)}, frames, warmup=3)
    return {"onnxruntime_ms_p50": percentile_ms(t["ort"]), "onnxruntime_ms_p95": percentile_ms(t["ort"], 95),
            "torch_ms_p50": percentile_ms(t["torch"]), "onnxruntime_cpu_ms_p50": percentile_ms(t["ort_cpu"]),
            "torch_cpu_ms_p50": percentile_ms(t["torch_cpu"])}

"""Per-command inference: ``set_command`` once (text + generated weights), ``predict`` every frame.

    predictor = GroundingPredictor.from_checkpoint()            # the shipped tabletop checkpoint
    predictor.set_command(["the red mug", "the leftmost cube"])
    for frame in camera:                                         # np.uint8 (H, W, 3) RGB, any size
        for g in predictor.predict(frame):
            print(g.expression, g.box, g.score, g.mask.shape)

Each frame is letterboxed to the model input, run once for all active expressions (one batch: the
image features are computed once and broadcast), and mapped back to the frame's pixels by a
:class:`~refseg_ros.model.postprocess.PostProcess` (thresholds, box source, score; see there).

The predictor is the one command cache: the text encoding and generated weights of each expression
are kept in an LRU, and the folded form of the active command is kept until the command changes.
"""
from __future__ import annotations

import contextlib
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from refseg_ros.language.parser import as_expression
from refseg_ros.language.relation import DEPTH_RELATIONS
from refseg_ros.model.compose import Composition
from refseg_ros.model.ground_plane import DepthFrame, ground_distance_grid
from refseg_ros.model.heads import GroundingOutput
from refseg_ros.model.letterbox import Letterbox, letterbox_images, letterbox_uint8_in_strips
from refseg_ros.model.postprocess import Grounding, PostProcess
from refseg_ros.model.vglaw import VGLAW, Command

__all__ = ["DEFAULT_CHECKPOINT", "Grounding", "GroundingPredictor", "PostProcess", "backend_label", "load_model",
           "load_predictor", "resolve_backend"]

#: where the shipped tabletop checkpoint lives inside the package
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "tabletop.safetensors"


def resolve_backend(backend: str, device: str | torch.device = "cpu") -> str:
    """``auto`` -> onnxruntime on the CPU when it is installed, else torch; onnxruntime is CPU-only,
    so any backend on another device is torch."""
    import importlib.util

    if torch.device(device).type != "cpu":
        return "torch"
    if backend == "auto":
        return "onnxruntime" if importlib.util.find_spec("onnxruntime") is not None else "torch"
    return backend


def backend_label(backend: str, int8: bool) -> str:
    """How logs, eval results and the bench name a per-frame path: ``torch``, ``onnxruntime int8``."""
    return f"{backend} int8" if int8 else backend


def load_model(path: str | Path | None = None) -> VGLAW:
    """The model of checkpoint ``path`` on the CPU; None = the shipped checkpoint (a clear error if absent)."""
    from refseg_ros.model.checkpoint import load_checkpoint

    if path is None:
        path = DEFAULT_CHECKPOINT
        if not path.is_file():
            raise FileNotFoundError(
                f"no shipped checkpoint at {path}: this installation has no trained tabletop model "
                "yet. Train one (the training stage writes <name>.safetensors + <name>.json) and "
                "pass its path, or copy both files to that location.")
    return load_checkpoint(path, device="cpu")


class GroundingPredictor:
    """Inference wrapper around a :class:`VGLAW` model.

    Args:
        model: the model (moved to ``device`` and put in eval mode).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        half: autocast on CUDA: ``True``/``"fp16"`` for float16, ``"bf16"`` for bfloat16. Ignored
            (with a warning) on the CPU.
        mask_threshold: probability threshold for masks (default: the model's).
        cache_size: expressions whose generated weights are kept (least recently used are dropped).
        optimize: run the frozen CNN BatchNorm-folded and channels-last (``model/inference.py``;
            same results within float rounding, the model itself is not changed).
        backend: ``"torch"``, or ``"onnxruntime"`` (CPU only): the per-frame path is exported to ONNX
            at construction (a few seconds) and run by onnxruntime; commands stay in PyTorch.
        int8: onnxruntime only: dynamic int8 quantization of the transformer's matmuls
            (``export.quantize_int8``): faster, not bit-identical (docs/performance.md has both
            the speed and the accuracy measured).
        box_source, mask_components: post-processing (``model/postprocess.py``); default: the
            model's ``box_source`` / ``mask_components``.
        found_threshold: score at or above which a result is ``found``.
        compose_negations: ground a negation ("the mug that is not red") as every object of its
            head without those it excludes (``model/compose.py``); False: the model reads it whole.
        check_relations: answer "not found" for a left/right relation ("the mug left of the duck")
            that fails for every object of its head and for the model's own answer, and answer
            the one object on the named side when the model's answer is on the other
            (``model/compose.py``); with a depth image (``predict(..., depth=)``) the same for
            "in front of" and "behind", along the table (``model/ground_plane.py``); False: the
            model's answer alone.
        pick_instances: ground "the second mug from the left" and "the mug closest to the duck"
            by picking among every mug by position (``model/compose.py``); False: the model reads
            them whole.
        fix_spelling: read a typed word that is no English word and one edit from a word of the
            grounding vocabulary as that word ("the hambuger" -> "the hamburger";
            ``language/spelling.py``); results keep the expression as given. Off (with a warning)
            when ``pyspellchecker`` is not installed.
        strip_requests: read an expression said as a request of one object as that object, as the
            node's command parser does ("could you hand me the red mug?" -> "the red mug";
            ``language.parser.as_expression``), after the typo fix; results keep the expression as
            given. The node parses commands itself, so there it changes nothing.

    ``post`` (a :class:`PostProcess`) holds these; ``predict`` takes another one per call.
    """

    def __init__(self, model: VGLAW, device: str | torch.device = "cpu", half: bool | str = False,
                 mask_threshold: float | None = None, cache_size: int = 128, optimize: bool = True,
                 backend: str = "torch", box_source: str | None = None,
                 mask_components: str | None = None, int8: bool = False,
                 found_threshold: float | None = None, compose_negations: bool = True,
                 check_relations: bool = True, pick_instances: bool = True, fix_spelling: bool = True,
                 strip_requests: bool = True) -> None:
        from refseg_ros.model.inference import fast_image_features

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self._image_features = fast_image_features(self.model) if optimize else self.model.image_features
        self._onnx = None
        if backend == "onnxruntime":
            if self.device.type != "cpu":
                raise ValueError(f"backend onnxruntime runs on the CPU; got device {self.device}")
            from refseg_ros.model.export import OnnxFramePath

            self._onnx = OnnxFramePath(self.model, threads=torch.get_num_threads(), int8=int8)
        elif backend != "torch":
            raise ValueError(f"backend must be 'torch' or 'onnxruntime'; got {backend!r}")
        elif int8:
            raise ValueError("int8 is an onnxruntime option; backend is torch")
        self.backend = backend
        self.int8 = bool(int8)
        self.amp_dtype = None
        if half:
            if self.device.type == "cuda":
                self.amp_dtype = torch.bfloat16 if half == "bf16" else torch.float16
            else:
                warnings.warn("half precision is only used on CUDA; running float32 on the CPU", stacklevel=2)
        self.post = PostProcess.for_model(model.cfg, mask_threshold=mask_threshold, box_source=box_source,
                                          mask_components=mask_components, found_threshold=found_threshold)
        self.compose_negations = bool(compose_negations)
        self.check_relations = bool(check_relations)
        self.pick_instances = bool(pick_instances)
        self.spelling = _spelling_fixer(self.model) if fix_spelling else None
        self.strip_requests = bool(strip_requests)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, Command] = OrderedDict()
        self._expressions: tuple[str, ...] = ()
        self._composition = Composition.of(())
        self._active: Command | None = None
        # the active command for frames with depth ("in front of"/"behind" checked too), made on
        # the first such frame; (None, None) when depth changes nothing for it
        self._depth_active: tuple[Composition | None, Command | None] | None = None

    @property
    def box_source(self) -> str:
        return self.post.box_source

    @property
    def mask_components(self) -> str:
        return self.post.mask_components

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str | torch.device = "cpu",
                        half: bool | str = False, **kwargs) -> "GroundingPredictor":
        """Load ``path`` (``*.safetensors`` with its ``.json`` sidecar); None = the shipped checkpoint."""
        return cls(load_model(path), device=device, half=half, **kwargs)

    # ---- commands ----------------------------------------------------------------------------------
    @property
    def expressions(self) -> list[str]:
        """The active expressions, in the order ``predict`` reports them."""
        return list(self._expressions)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @torch.inference_mode()
    def _commands(self, expressions: list[str]) -> Command:
        """Generated weights for ``expressions``, from the LRU cache or computed in one batch."""
        new = list(dict.fromkeys(e for e in expressions if e not in self._cache))
        if new:
            with self._autocast():
                fresh = self.model.command(new)
            for i, expr in enumerate(new):
                self._cache[expr] = fresh.index(i)
        rows = []
        for expr in expressions:
            self._cache.move_to_end(expr)
            rows.append(self._cache[expr])
        while len(self._cache) > max(self.cache_size, len(set(expressions))):
            self._cache.popitem(last=False)
        return Command.cat(rows)

    def _folded(self, expressions: tuple[str, ...]) -> Command:
        # What depends only on the command is computed once per command, not every frame
        # (``VGLAW.fold``; the LRU keeps the small unfolded rows). PyTorch frames also get the
        # generated weights summed into the adapted layers; the onnxruntime graph takes Phi itself.
        # In float32 even under ``half``: W0 + a small delta; autocast casts per frame.
        return self.model.fold(self._commands(list(expressions)), weights=self._onnx is None)

    @torch.inference_mode()
    def set_command(self, expressions: list[str] | tuple[str, ...] | str) -> None:
        """Make ``expressions`` the active command (an empty list clears it). Setting the active
        command again costs nothing."""
        if isinstance(expressions, str):
            expressions = [expressions]
        expressions = tuple(str(e) for e in expressions)
        if expressions == self._expressions and (self._active is not None or not expressions):
            return
        composition = self._composition_of(expressions)
        self._active = self._folded(composition.model_expressions) if expressions else None
        self._expressions, self._composition = expressions, composition
        self._depth_active = None

    def _composition_of(self, expressions, depth: bool = False) -> Composition:
        expressions = tuple(self.understood(e) for e in expressions)
        return Composition.of(expressions, self.compose_negations, self.check_relations, self.pick_instances,
                              depth=depth)

    def understood(self, expression: str) -> str:
        """``expression`` as the model reads it: typos fixed when ``fix_spelling`` is on, then a
        request around one object stripped when ``strip_requests`` is on."""
        if self.spelling is not None:
            expression = self.spelling(expression)
        return as_expression(expression) if self.strip_requests else expression

    def clear_cache(self) -> None:
        self._cache.clear()

    # ---- frames ------------------------------------------------------------------------------------
    @staticmethod
    def _check_rgb(image: np.ndarray) -> None:
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB image as np.ndarray (H, W, 3); got "
                             f"{getattr(image, 'shape', type(image))}")
        if image.dtype != np.uint8:
            raise TypeError(f"expected np.uint8 RGB; got {image.dtype}")

    def _to_tensor(self, image: np.ndarray) -> torch.Tensor:
        self._check_rgb(image)
        t = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        return t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)

    def _letterbox(self, image: np.ndarray) -> tuple[torch.Tensor, Letterbox]:
        if self.device.type == "cpu":
            # The same canvas without a float copy of the whole frame (memory grows with the
            # camera's pixels otherwise; docs/reliability.md).
            self._check_rgb(image)
            return letterbox_uint8_in_strips(torch.from_numpy(np.ascontiguousarray(image)), self.model.input_size,
                                             fill=self.model.pixel_mean)
        return letterbox_images(self._to_tensor(image), self.model.input_size, fill=self.model.pixel_mean)

    def _run(self, canvas: torch.Tensor, command: Command,
             image_rows: torch.Tensor | None = None) -> GroundingOutput:
        """``image_rows[j]``: the canvas row of expression ``j`` (None: one row each, or one for all)."""
        if self._onnx is not None and canvas.shape[0] == 1:  # the graph takes one image
            return self._onnx(canvas, command)
        with self._autocast():
            features = self._image_features(canvas)
            if image_rows is not None:
                features = {k: v.index_select(0, image_rows) for k, v in features.items()}
            return self.model.ground(features, command)

    def _depth_composition(self, composition: Composition, expressions) -> Composition | None:
        """``expressions`` composed for a frame with depth ("in front of"/"behind" checked too), or
        None when that adds nothing to ``composition`` (no such relation, or no checks at all)."""
        if not self.check_relations:
            return None
        deep = self._composition_of(expressions, depth=True)
        return deep if deep.relation_rows != composition.relation_rows else None

    @staticmethod
    def _ground(composition: Composition, out, boxes: list[Letterbox], image_of: list[int],
                depths: list) -> list | None:
        """Per expression of ``composition``: its image's distances along the table on the mask
        grid (``model/ground_plane.py``), only where a depth relation needs them; None if none does."""
        need = {j for j, check in enumerate(composition.relation_rows)
                if check is not None and check[0] in DEPTH_RELATIONS and depths[image_of[j]] is not None}
        if not need:
            return None
        grid_size = tuple(out.mask_logits.shape[-2:])
        grids: dict[int, np.ndarray | None] = {}
        ground = [None] * len(composition.expressions)
        for j in sorted(need):
            r = image_of[j]
            if r not in grids:
                b = boxes[r]
                grids[r] = ground_distance_grid(depths[r], b.image_size, b.input_size, b.resized_size, grid_size)
            ground[j] = grids[r]
        return ground

    @torch.inference_mode()
    def predict(self, image_rgb: np.ndarray, post: PostProcess | None = None,
                depth: DepthFrame | None = None) -> list[Grounding]:
        """All active expressions on one ``np.uint8 (H, W, 3)`` RGB image, in one batch.

        ``post``: the post-processing for this call (default: :attr:`post`). ``depth``: the frame's
        depth image with its intrinsics (``model.ground_plane.DepthFrame``), which lets "in front
        of"/"behind" be checked along the table (``check_relations``); None: without.
        """
        if self._active is None:
            return []
        composition, command = self._composition, self._active
        if depth is not None:
            if self._depth_active is None:
                deep = self._depth_composition(composition, self._expressions)
                self._depth_active = (deep, self._folded(deep.model_expressions)) if deep is not None else (None, None)
            if self._depth_active[0] is not None:
                composition, command = self._depth_active
        canvas, box = self._letterbox(image_rgb)
        post = post or self.post
        raw = self._run(canvas, command)
        ground = self._ground(composition, raw, [box], [0] * len(composition.expressions), [depth])
        out = composition.combine(raw, post.mask_threshold, ground)
        return _as_given(post(out.box, out.mask_logits, box, list(composition.expressions), out.presence),
                         self._expressions)

    @torch.inference_mode()
    def predict_once(self, image_rgb: np.ndarray, expressions: list[str] | tuple[str, ...],
                     post: PostProcess | None = None, depth: DepthFrame | None = None) -> list[Grounding]:
        """``expressions`` on one image, like ``set_command`` + ``predict``, without changing the
        active command (a one-off request next to a running stream). Uses the expression cache."""
        expressions = tuple(str(e) for e in expressions)
        if not expressions:
            return []
        if expressions == self._expressions and self._active is not None:
            return self.predict(image_rgb, post, depth)
        canvas, box = self._letterbox(image_rgb)
        composition = self._composition_of(expressions, depth=depth is not None)
        post = post or self.post
        raw = self._run(canvas, self._folded(composition.model_expressions))
        out = composition.combine(raw, post.mask_threshold,
                                  self._ground(composition, raw, [box], [0] * len(expressions), [depth]))
        return _as_given(post(out.box, out.mask_logits, box, list(composition.expressions), out.presence),
                         expressions)

    @torch.inference_mode()
    def predict_batch(self, images: list[np.ndarray], expressions: list[str],
                      post: PostProcess | None = None,
                      depths: list[DepthFrame | None] | None = None) -> list[Grounding]:
        """One expression per image (evaluation): ``images[i]`` with ``expressions[i]``, any sizes;
        ``depths[i]``: that image's depth (as ``predict``), or None.

        The same array object given several times (several expressions about one image) runs
        through the CNN once. Does not change the active command; uses (and fills) the expression
        cache.
        """
        if len(images) != len(expressions) or (depths is not None and len(depths) != len(images)):
            raise ValueError(f"{len(images)} images but {len(expressions)} expressions"
                             + (f" and {len(depths)} depth images" if depths is not None else ""))
        if not images:
            return []
        row_of: dict[int, int] = {}
        distinct: list[np.ndarray] = []
        for img in images:
            if id(img) not in row_of:
                row_of[id(img)] = len(distinct)
                distinct.append(img)
        rows = [row_of[id(img)] for img in images]
        boxed = [self._letterbox(img) for img in distinct]
        canvas = torch.cat([c for c, _ in boxed])
        with_depth = depths is not None and any(d is not None for d in depths)
        composition = self._composition_of(expressions, depth=with_depth)
        model_rows = [rows[j] for j in composition.source_rows()]
        image_rows = None if model_rows == list(range(len(distinct))) else torch.tensor(model_rows, device=self.device)
        post = post or self.post
        raw = self._run(canvas, self._commands(list(composition.model_expressions)), image_rows)
        ground = None
        if with_depth:
            depth_of = [None] * len(distinct)
            for r, d in zip(rows, depths):
                if d is not None:
                    depth_of[r] = d
            ground = self._ground(composition, raw, [b for _, b in boxed], rows, depth_of)
        out = composition.combine(raw, post.mask_threshold, ground)
        results = []
        for i, r in enumerate(rows):
            results += post(out.box[i:i + 1], out.mask_logits[i:i + 1], boxed[r][1], [composition.expressions[i]],
                            None if out.presence is None else out.presence[i:i + 1])
        return _as_given(results, expressions)


def _as_given(results: list[Grounding], expressions) -> list[Grounding]:
    """``results`` named by the expressions as they were given (the post-processing read them as
    understood, typos fixed and requests stripped: "grab all the mgus" asks for every mug)."""
    for g, expression in zip(results, expressions, strict=True):
        g.expression = expression
    return results


def _spelling_fixer(model: VGLAW):
    """The typo fixer for ``model``'s text encoder, or None (with a warning) without ``pyspellchecker``."""
    from refseg_ros.language.spelling import SpellingFixer, english_words

    english = english_words()
    if english is None:
        warnings.warn("pyspellchecker is not installed: typed commands are read with their typos "
                      "(pip install pyspellchecker==0.9.1; make setup installs it)", stacklevel=3)
        return None
    tokenizer = getattr(model.text_encoder, "tokenizer", None)
    known = tokenizer.get_vocab().keys() if tokenizer is not None else ()
    return SpellingFixer(english | frozenset(known))


def load_predictor(checkpoint: str = "", device: str = "auto", half: bool = False, backend: str = "auto",
                   int8: bool = False, log=None, compose_negations: bool = True,
                   check_relations: bool = True, pick_instances: bool = True,
                   fix_spelling: bool = True) -> GroundingPredictor:
    """A predictor from run-time options, falling back where a robot would want it to.

    ``checkpoint`` "" = the shipped one; ``device`` as :func:`~refseg_ros.utils.device.resolve_device`
    (CUDA without a GPU runs on the CPU); ``half`` only on CUDA; ``backend`` auto = onnxruntime on
    the CPU when it is installed, and torch when its export fails; ``int8`` only for onnxruntime.
    ``log(level, message)`` hears about every fallback ("info"/"warning").
    """
    from refseg_ros.utils.device import resolve_device

    log = log or (lambda level, message: None)
    device, note = resolve_device(device)
    if note:
        log("warning", note)
    if half and not device.startswith("cuda"):
        log("info", "half is for CUDA; running float32 on cpu")
        half = False
    path = checkpoint.strip()
    if path and not Path(path).expanduser().is_file():
        raise FileNotFoundError(f"checkpoint '{Path(path).expanduser()}' does not exist")
    chosen = resolve_backend(backend, device)
    if backend == "onnxruntime" and chosen != "onnxruntime":
        log("info", f"backend onnxruntime runs on the CPU; using torch on {device}")
    model = load_model(str(Path(path).expanduser()) if path else None)
    if fix_spelling:
        from refseg_ros.language.spelling import english_words

        if english_words() is None:
            log("warning", "pyspellchecker is not installed: typed commands are read with their typos "
                           "(fix_spelling off; pip install pyspellchecker==0.9.1, or make setup)")
            fix_spelling = False
    try:
        return GroundingPredictor(model, device=device, half=half, backend=chosen,
                                  int8=bool(int8) and chosen == "onnxruntime", compose_negations=compose_negations,
                                  check_relations=check_relations, pick_instances=pick_instances,
                                  fix_spelling=fix_spelling)
    except Exception as exc:  # noqa: BLE001 - any export/runtime failure of the optional backend
        if chosen != "onnxruntime" or backend != "auto":
            raise
        # auto: an export problem (an operator, an onnx/onnxruntime version) costs speed, not the node
        log("warning", f"onnxruntime backend unavailable ({type(exc).__name__}: {exc}); "
                       "using torch (backend:=torch skips the attempt)")
        return GroundingPredictor(model, device=device, half=half, backend="torch",
                                  compose_negations=compose_negations, check_relations=check_relations,
                                  pick_instances=pick_instances, fix_spelling=fix_spelling)

"""Training loop: AdamW with backbone/head parameter groups, warm-up + step schedule, gradient
clipping, mixed precision on CUDA, per-epoch checkpoints and ``--resume``, DDP under ``torchrun``.

Two data paths feed the same step:

* **cached** (CPU default): the frozen CNN's stride-4/8/16 features of every training image and
  of its mirror image are computed once into memory-mapped fp16 files next to the data, and the
  frozen text encoder's token features once per distinct expression (and its left/right-swapped
  twin); see :mod:`refseg_ros.training.caches`. A step then runs only the trainable part, several
  times faster than the online path on a CPU. Photometric augmentation reaches this path as cached
  camera variants (``augment_variants``, :class:`refseg_ros.data.augment.CachedVariants`): each step
  takes the clean image with probability ``augment_p_clean`` (``augment_p_clean_colour`` for
  expressions that say a colour, when set), else one of its variants; flips are
  real mirrored images, not mirrored feature maps. Images of several sizes (and their targets) are
  each letterboxed to the model input as inference does.
* **online** (GPUs, trainable backbones, images of different sizes such as RefCOCO): a DataLoader
  with ``num_workers`` processes loads, augments (flip + jitter) and letterboxes samples.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from refseg_ros.language.vocabulary import names_colour
from refseg_ros.model.letterbox import boxes_to_input, letterbox_images, masks_to_input
from refseg_ros.training.caches import FeatureCache, MixedFeatureCache, TargetCache, TextCache
from refseg_ros.training.config import TrainConfig, lr_factor
from refseg_ros.training.distributed import Dist

log = logging.getLogger("refseg.train")


# ---- optimisation ----------------------------------------------------------------------------------
def train_only(model, prefixes) -> int:
    """Freeze every parameter whose name starts with none of ``prefixes`` (those already frozen stay
    so); returns how many tensors still train. ValueError when none would."""
    prefixes = tuple(prefixes)
    count = 0
    for name, p in model.named_parameters():
        keep = p.requires_grad and name.startswith(prefixes)
        p.requires_grad_(keep)
        count += keep
    if not count:
        raise ValueError(f"train_only {list(prefixes)}: no trainable parameter of the model starts with these")
    return count


def parameter_groups(model, cfg: TrainConfig) -> list[dict]:
    """Pretrained backbones (text encoder, CNN / ViT) at ``lr * backbone_lr_factor``, the rest at ``lr``."""
    pretrained_prefixes = tuple(f"{p}." for p in model.pinned_modules())
    if model.cfg.backbone == "vit" and model.cfg.vit_checkpoint:
        pretrained_prefixes += ("backbone.vit.",)
    backbone, rest = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_backbone = name.startswith(pretrained_prefixes) and "law_basis" not in name and "word_attn" not in name
        (backbone if is_backbone else rest).append(p)
    groups = [{"params": rest, "lr": cfg.lr, "name": "head"}]
    if backbone:
        groups.append({"params": backbone, "lr": cfg.lr * cfg.backbone_lr_factor, "name": "backbone"})
    for g in groups:
        g["base_lr"] = g["lr"]
    return groups


class _Step(nn.Module):
    """The trainable forward, wrapped as one module so DDP can synchronise its gradients."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: dict[str, torch.Tensor], tokens: torch.Tensor | None,
                token_mask: torch.Tensor | None, expressions: list[str] | None = None):
        from refseg_ros.model.text_encoder import TextFeatures

        if tokens is None:
            command = self.model.command(expressions)
        else:
            command = self.model.condition(TextFeatures(tokens, token_mask))
        return self.model.ground(features, command)


# ---- the online data path ----------------------------------------------------------------------------
class _Collate:
    def __init__(self, input_size: tuple[int, int]) -> None:
        self.input_size = input_size

    def __call__(self, samples: list[dict]) -> dict:
        images, boxes, masks = [], [], []
        for s in samples:
            img = torch.from_numpy(np.ascontiguousarray(s["image"])).permute(2, 0, 1).float().div_(255)
            canvas, box = letterbox_images(img[None], self.input_size)
            images.append(canvas[0])
            boxes.append(boxes_to_input(torch.as_tensor(s["box"], dtype=torch.float32)[None], box)[0])
            masks.append(masks_to_input(torch.from_numpy(s["mask"].astype(np.float32))[None], self.input_size)[0][0])
        return {"images": torch.stack(images), "boxes": torch.stack(boxes), "masks": torch.stack(masks),
                "expressions": [s["expression"] for s in samples]}


# ---- the trainer -------------------------------------------------------------------------------------
class Trainer:
    """Build with a model, a training dataset and a recipe; ``fit`` runs epochs with checkpoints.

    Args:
        model: a ``VGLAW`` (from ``build_model`` or a resumed checkpoint).
        train_set: a Dataset yielding Samples and exposing ``image_paths``, ``load_image``,
            ``expressions``, ``expression_index`` and ``image_index`` (``ExpressionDataset``).
        cfg: the training recipe.
        run_dir: where checkpoints, ``metrics.jsonl``/``.csv`` and ``curves.png`` go.
        val_set: optional Dataset evaluated after every epoch (``val_samples`` expressions).
        cache_dir: where the cached path keeps its feature files (default: next to the data).
        meta: extra metadata for every checkpoint's sidecar.
    """

    def __init__(self, model, train_set, cfg: TrainConfig, run_dir: Path, device: torch.device,
                 dist: Dist | None = None, val_set=None, val_samples: int = 600,
                 epoch_samples: int | None = None, cache_dir: Path | None = None, progress: bool = True,
                 meta: dict | None = None) -> None:
        from refseg_ros.model.losses import GroundingLoss

        self.model, self.train_set, self.cfg = model, train_set, cfg
        self.meta = dict(meta or {})  # recorded in every checkpoint (e.g. where a fine-tuning run started)
        self.run_dir = Path(run_dir)
        self.device = device
        self.dist = dist or Dist()
        self.val_set, self.val_samples = val_set, val_samples
        self.progress = progress and self.dist.main
        self.criterion = GroundingLoss.from_config(model.cfg)
        self.model.to(device)
        if cfg.train_only:
            log.info("training only %s (%d tensors)", ", ".join(cfg.train_only), train_only(model, cfg.train_only))
        frozen_cnn = not any(p.requires_grad for m in model.pinned_modules().values() for p in m.parameters())
        want_cache = cfg.cache_features == "on" or (cfg.cache_features == "auto" and device.type == "cpu")
        self.cached = want_cache and frozen_cnn and hasattr(train_set, "image_paths")
        if cfg.cache_features == "on" and not self.cached:
            raise ValueError("cache_features=on needs a frozen text encoder and CNN (text_train_layers 0, "
                             "cnn_trainable false) and an ExpressionDataset")
        n = len(train_set)
        self.epoch_samples = min(epoch_samples or n, n)
        self.batch_size = cfg.batch_size
        self.steps_per_epoch = max(1, self.epoch_samples // (self.batch_size * self.dist.world))
        self.step_module: nn.Module = _Step(model)
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.step_module = DDP(self.step_module, device_ids=[device.index] if device.type == "cuda" else None)
        self.optimizer = torch.optim.AdamW(parameter_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.amp_dtype = None
        self.scaler = None
        if device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            if self.amp_dtype == torch.float16:
                self.scaler = torch.amp.GradScaler("cuda")
        if self.cached:
            cache_root = cache_dir or Path(getattr(train_set, "root", self.run_dir)) / "cache"
            # Every rank fills its shard of the shared feature files (every world-th image), so a
            # cache builds on all cores; once all are done each rank reopens the complete files.
            self.features = self._feature_cache(model, train_set, cache_root, (self.dist.rank, self.dist.world))
            if self.dist.world > 1:
                torch.distributed.barrier()
                self.features = self._feature_cache(model, train_set, cache_root, (0, 1))
            self.text = TextCache(model, train_set.expressions, device)
            # which expressions say a colour (for augment_p_clean_colour)
            self.says_colour = np.array([names_colour(e) for e in train_set.expressions], bool)
            self.targets = TargetCache(train_set, progress=self.progress)
        self.epoch = 0
        self.global_step = 0

    def _feature_cache(self, model, train_set, cache_root: Path, shard: tuple[int, int]):
        """The frozen features of ``train_set``, filling shard ``shard`` of what is missing; images
        of several sizes (v2 aspects) are each letterboxed as inference does."""
        if hasattr(train_set, "parts"):  # a mixture: each part's own cache, next to its data
            return MixedFeatureCache(model, train_set, progress=self.progress, augment=self.cfg.cache_augment(),
                                     shard=shard)
        return FeatureCache(model, train_set, cache_root, progress=self.progress,
                            augment=self.cfg.cache_augment(), mixed_sizes=True, shard=shard)

    # -- sampling ------------------------------------------------------------------------------------
    def _epoch_order(self, epoch: int) -> np.ndarray:
        """The samples of ``epoch`` for this rank: a seeded permutation, sharded over ranks."""
        rng = np.random.default_rng([self.cfg.seed, epoch])
        order = rng.permutation(len(self.train_set))[: self.steps_per_epoch * self.batch_size * self.dist.world]
        return order[self.dist.rank::self.dist.world]

    def _cached_batch(self, idx: np.ndarray, rng: np.random.Generator) -> dict:
        flipped = (rng.random(len(idx)) < self.cfg.flip_prob)
        img_rows = self.features.rows(self.train_set.image_index[idx], flipped, rng,
                                      self.says_colour[self.train_set.expression_index[idx]])
        feats = self.features.gather(img_rows, self.device)
        tokens, tmask = self.text.gather(self.train_set.expression_index[idx], flipped)
        boxes_t, masks_t = self.targets.gather_input(idx, flipped, self.model.input_size)
        return {"features": feats, "tokens": tokens, "token_mask": tmask,
                "boxes": boxes_t.to(self.device), "masks": masks_t.to(self.device)}

    def _online_loader(self, epoch: int):
        from torch.utils.data import DataLoader

        order = self._epoch_order(epoch)
        return DataLoader(torch.utils.data.Subset(self.train_set, order.tolist()), batch_size=self.batch_size,
                          shuffle=False, num_workers=self.cfg.num_workers, drop_last=True,
                          collate_fn=_Collate(self.model.input_size), persistent_workers=False)

    # -- one step --------------------------------------------------------------------------------------
    def _step(self, batch: dict, total_steps: int) -> dict[str, float]:
        factor = lr_factor(self.global_step, total_steps, self.cfg)
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * factor
        autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype
                    else torch.autocast(self.device.type, enabled=False))
        with autocast:
            if "features" in batch:
                out = self.step_module(batch["features"], batch["tokens"], batch["token_mask"])
            else:
                images = batch["images"].to(self.device, non_blocking=True)
                feats = self.model.image_features(images)
                out = self.step_module(feats, None, None, batch["expressions"])
            losses = self.criterion(out, batch["boxes"].to(self.device), batch["masks"].to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(losses["loss"]).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            losses["loss"].backward()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip) if self.cfg.grad_clip > 0 else None
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.global_step += 1
        out = {k: float(v.detach()) for k, v in losses.items()}
        if grad_norm is not None:
            out["grad_norm"] = float(grad_norm)
        return out

    # -- epochs ----------------------------------------------------------------------------------------
    def fit(self, epochs: int) -> list[dict]:
        from tqdm import tqdm

        from refseg_ros.training.runlog import RunLog

        total_steps = epochs * self.steps_per_epoch
        runlog = RunLog(self.run_dir) if self.dist.main else None
        if runlog is not None:
            runlog.truncate_after(self.epoch)
        rows = []
        for epoch in range(self.epoch + 1, epochs + 1):
            self.model.train()
            t0 = time.perf_counter()
            rng = np.random.default_rng([self.cfg.seed, epoch, self.dist.rank, 1])
            sums: dict[str, float] = {}
            bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {epoch}/{epochs}", unit="step",
                       disable=not self.progress)
            if self.cached:
                order = self._epoch_order(epoch)
                batches = (self._cached_batch(order[i:i + self.batch_size], rng)
                           for i in range(0, self.steps_per_epoch * self.batch_size, self.batch_size))
            else:
                batches = iter(self._online_loader(epoch))
            n_steps = 0
            for batch in batches:
                losses = self._step(batch, total_steps)
                if not all(math.isfinite(v) for v in losses.values()):
                    raise FloatingPointError(f"non-finite loss at step {self.global_step}: {losses}")
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
                n_steps += 1
                bar.update(1)
                bar.set_postfix(loss=f"{losses['loss']:.3f}", lr=f"{self.optimizer.param_groups[0]['lr']:.1e}")
            bar.close()
            elapsed = time.perf_counter() - t0
            self.epoch = epoch
            row: dict[str, Any] = {"epoch": epoch, "step": self.global_step,
                                   "samples_per_s": n_steps * self.batch_size * self.dist.world / elapsed,
                                   "epoch_minutes": elapsed / 60, "lr": self.optimizer.param_groups[0]["lr"]}
            row.update({f"train_{k}": v / max(1, n_steps) for k, v in sums.items()})
            row["train_loss_box"] = row.get("train_l1", 0) + row.get("train_giou", 0)
            row["train_loss_mask"] = row.get("train_focal", 0) + row.get("train_dice", 0)
            if self.dist.main:
                if self.val_set is not None:
                    try:
                        row["val"] = self.validate()
                    except Exception as exc:  # noqa: BLE001 - an epoch of training is worth more
                        # A failed validation (a broken dataset file, an edited source tree) must not
                        # throw away the epoch: save the checkpoint, record why, go on.
                        log.exception("validation after epoch %d failed; checkpoint saved without it", epoch)
                        row["val_error"] = f"{type(exc).__name__}: {exc}"
                        self.model.train()
                self.save(row)
                runlog.append(row)
                log.info("epoch %d: %s", epoch, json.dumps({k: v for k, v in row.items() if k != "val"}))
            if self.dist.world > 1:
                torch.distributed.barrier()
            rows.append(row)
        return rows

    def validate(self) -> dict:
        from refseg_ros.model.predictor import GroundingPredictor
        from refseg_ros.training.evaluate import evaluate

        predictor = GroundingPredictor(self.model, device=self.device)
        try:
            return evaluate(predictor, self.val_set, max_samples=self.val_samples, progress=self.progress,
                            desc="validate")
        finally:
            self.model.train()

    # -- checkpoints -----------------------------------------------------------------------------------
    def save(self, row: dict) -> None:
        from refseg_ros.model.checkpoint import save_checkpoint
        from refseg_ros.training.state import save_optimizer

        ckpt_dir = self.run_dir / "checkpoints"
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        extra = {**self.meta, "epoch": self.epoch, "global_step": self.global_step,
                 "train_config": self.cfg.to_dict(), "val": row.get("val")}
        save_checkpoint(self.model, ckpt_dir / f"epoch_{self.epoch:03d}.safetensors", extra=extra)
        save_checkpoint(self.model, ckpt_dir / "last.safetensors", extra=extra)
        save_optimizer(self.optimizer, ckpt_dir / "last_optimizer.safetensors",
                       extra={"epoch": self.epoch, "global_step": self.global_step})

    def load_optimizer_state(self, run_dir: Path) -> None:
        from refseg_ros.training.state import load_optimizer

        extra = load_optimizer(self.optimizer, Path(run_dir) / "checkpoints" / "last_optimizer.safetensors")
        self.epoch = int(extra["epoch"])
        self.global_step = int(extra["global_step"])

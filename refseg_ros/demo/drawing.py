"""The demo's pictures: one captioned PNG per command (truth boxes, the node's masks, scores)
and the animated GIF of them all."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from refseg_ros.demo.config import DemoError
from refseg_ros.demo.driver import Result
from refseg_ros.demo.scoring import verdict
from refseg_ros.demo.script import ScriptedCommand

__all__ = ["caption", "draw_command", "save_png", "write_gif"]


def caption(image_rgb: np.ndarray, lines: list[str]) -> np.ndarray:
    """The image with a dark caption bar above it (one text line each)."""
    import cv2

    h, w = image_rgb.shape[:2]
    scale = max(0.4, w / 1100.0)
    line_h = int(26 * scale / 0.58)
    bar = np.full((line_h * len(lines) + 8, w, 3), 28, np.uint8)
    for i, text in enumerate(lines):
        text = text.encode("ascii", "replace").decode("ascii")
        cv2.putText(bar, text, (8, line_h * (i + 1) - 4), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255) if i == 0 else (200, 200, 200), 1, cv2.LINE_AA)
    return np.concatenate([bar, image_rgb], axis=0)


def draw_command(rgb: np.ndarray, results: list[Result], truth: dict, cmd: ScriptedCommand, scored: list[dict],
                 latency: float | None, index: int) -> np.ndarray:
    """One command's picture: truth boxes, the node's results as it would overlay them, a caption."""
    import cv2

    from refseg_ros.utils.overlay import draw_groundings

    canvas = rgb.copy()
    for p in cmd.phrases:  # the truth: thin white boxes under the results (none for an absent object)
        for t in p.targets or ([p.target] if p.target >= 0 else []):
            box = truth["objects"][t]["bbox"]
            if box:
                x0, y0, x1, y1 = (int(round(v)) for v in box)
                cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), (255, 255, 255), 1, cv2.LINE_AA)
    # as the node's overlay draws them: found objects boxed and masked, the rest "not found: ..."
    canvas = draw_groundings(canvas, results, channel_order="rgb", copy=False)
    lines = [f"{index}. \"{cmd.text}\"" + (f"  ({latency:.2f} s)" if latency is not None else "")]
    for p, s in zip(cmd.phrases, scored):
        err = "" if s.get("error_3d_m") is None else f", 3D error {100 * s['error_3d_m']:.1f} cm"
        lines.append(f"   {p.expression} [{p.type}]: {verdict(s)}{err}")
    return caption(canvas, lines)


def save_png(rgb: np.ndarray, path: Path) -> None:
    import cv2

    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise DemoError(f"could not write {path}")


def write_gif(frames: list[np.ndarray], path: Path, frame_ms: int) -> None:
    from PIL import Image as PILImage

    if not frames:
        return
    h = max(f.shape[0] for f in frames)
    padded = [np.pad(f, ((0, h - f.shape[0]), (0, 0), (0, 0))) for f in frames]
    # FASTOCTREE: median cut is too slow on full-size frames when the CPU is busy with the node
    images = [PILImage.fromarray(f).quantize(colors=255, method=PILImage.Quantize.FASTOCTREE) for f in padded]
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0, optimize=True)

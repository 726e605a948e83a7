"""The camera's side of a v2 image: lens blur, vignetting, exposure (over and under), sensor noise
and sometimes motion blur. Brightness only, never hue, so colour words stay true."""
from __future__ import annotations

import numpy as np


def finish(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The finished image and the parameters drawn (stored with the scene's light)."""
    import cv2

    h, w = rgb.shape[:2]
    img = rgb.astype(np.float32)
    blur = float(rng.uniform(0.4, 0.9))
    img = cv2.GaussianBlur(img, (0, 0), blur)
    motion = 0
    if rng.random() < 0.12:
        motion = int(rng.integers(3, 8))
        kernel = np.zeros((motion, motion), np.float32)
        kernel[motion // 2, :] = 1.0 / motion
        angle = float(rng.uniform(0, 180))
        rot = cv2.getRotationMatrix2D(((motion - 1) / 2, (motion - 1) / 2), angle, 1.0)
        kernel = cv2.warpAffine(kernel, rot, (motion, motion))
        kernel /= max(kernel.sum(), 1e-6)
        img = cv2.filter2D(img, -1, kernel)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    vignette = float(rng.uniform(0.0, 0.25))
    img *= (1.0 - vignette * r2 / 2)[:, :, None]
    # exposure: mostly near 1, sometimes strongly under or over
    exposure = float(np.exp(rng.normal(0.0, 0.22)))
    exposure = float(np.clip(exposure, 0.45, 1.8))
    img *= exposure
    noise = float(rng.uniform(1.0, 3.0) * (1.8 if exposure < 0.7 else 1.0))
    img += rng.normal(0.0, noise, img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).round().astype(np.uint8)
    return out, {"exposure": round(exposure, 4), "noise_sigma": round(noise, 3),
                 "motion_blur_px": motion, "blur_sigma": round(blur, 3),
                 "vignette": round(vignette, 3)}

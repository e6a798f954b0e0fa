"""Image grids written as PNG."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from kexue_jax._src.checks import check_rank


def make_grid(images: np.ndarray, *, columns: int = 8, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile ``[n, h, w, c]`` images with values in ``[0, 1]`` into one ``[H, W, c]`` array."""
    images = np.asarray(images, dtype=np.float32)
    check_rank("images", images, 4)
    n, h, w, c = images.shape
    if c not in (1, 3):
        raise ValueError(f"images: expected 1 or 3 channels, got shape {images.shape}")
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    grid = np.full((rows * (h + padding) + padding, columns * (w + padding) + padding, c), pad_value, np.float32)
    for i in range(n):
        r, col = divmod(i, columns)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = images[i]
    return grid


def save_grid(
    path: str | os.PathLike[str], images: np.ndarray, *, columns: int = 8, scale: int = 2
) -> Path:
    """Write a grid PNG (upscaled ``scale`` times with nearest neighbours) and return its path."""
    grid = np.clip(make_grid(images, columns=columns), 0.0, 1.0)
    pixels = (grid * 255.0 + 0.5).astype(np.uint8)
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    image = Image.fromarray(pixels)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    image.save(tmp)
    os.replace(tmp, path)
    return path

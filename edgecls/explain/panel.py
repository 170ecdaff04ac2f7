"""One PNG per image: the image, then each model's heatmap over it (matplotlib, Agg, imported only here).

The overlay is the runtime's (:func:`edgecls.runtime.explain.overlay`, numpy only), so a panel shows the same
colours as the device-side ``python -m edgecls.runtime explain``. Without matplotlib this raises ImportError,
which the caller turns into a note (``pip install edgecls[plot]``).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from edgecls import fileio

TILE_INCHES = 2.4  # each tile's width; titles take three lines above it


def panel_png(path: str | Path, image: np.ndarray, tiles: Sequence[tuple[str, np.ndarray]], *,
              title: str = "") -> Path:
    """Write ``path``: ``image`` (uint8 (H, W, 3)), then one tile per (caption, heatmap (H, W)) over it."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from edgecls.runtime.explain import overlay

    # Upscale tiny inputs (8x8 digits) without blurring the pixels the model saw.
    interp = "nearest" if max(image.shape[:2]) < 64 else "bilinear"
    n = 1 + len(tiles)
    fig, axes = plt.subplots(1, n, figsize=(TILE_INCHES * n, TILE_INCHES + 0.9), squeeze=False)
    try:
        ax = axes[0][0]
        ax.imshow(image, interpolation=interp)
        ax.set_title("image", fontsize=9)
        for ax, (caption, heat) in zip(axes[0][1:], tiles):
            ax.imshow(overlay(image, np.asarray(heat, np.float32)), interpolation=interp)
            ax.set_title(caption, fontsize=8)
        for ax in axes[0]:
            ax.set_xticks([])
            ax.set_yticks([])
        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
    finally:
        plt.close(fig)
    return fileio.write_bytes(path, buf.getvalue())

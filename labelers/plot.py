"""Predicted vs true trajectories of a few validation episodes: one panel per (episode, dimension).

matplotlib when installed; otherwise a plain PIL drawing with the same layout, so the figure exists
on a minimal install too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_trajectories(path: str | Path, episodes: list[tuple[str, np.ndarray, np.ndarray]],
                      names: list[str]) -> Path:
    """episodes: (uid, predicted (T, D), true (T, D)); writes a PNG at `path`."""
    path = Path(path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _plot_pil(path, episodes, names)
    rows, cols = len(episodes), len(names)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.2 * rows), squeeze=False)
    for r, (uid, pred, true) in enumerate(episodes):
        for c, name in enumerate(names):
            ax = axes[r][c]
            ax.plot(true[:, c], color="black", lw=1.2, label="true")
            ax.plot(pred[:, c], color="tab:red", lw=1.0, label="IDM")
            ax.set_title(f"{uid} {name}", fontsize=8)
            ax.tick_params(labelsize=6)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_pil(path: Path, episodes, names) -> Path:
    from PIL import Image, ImageDraw

    cell_w, cell_h, pad = 240, 120, 14
    image = Image.new("RGB", (cell_w * len(names), cell_h * len(episodes)), "white")
    draw = ImageDraw.Draw(image)
    for r, (uid, pred, true) in enumerate(episodes):
        for c, name in enumerate(names):
            x0, y0 = c * cell_w, r * cell_h
            draw.rectangle([x0, y0, x0 + cell_w - 1, y0 + cell_h - 1], outline="grey")
            draw.text((x0 + 3, y0 + 1), f"{uid} {name}", fill="black")
            lo = min(pred[:, c].min(), true[:, c].min())
            hi = max(pred[:, c].max(), true[:, c].max())
            span = (hi - lo) or 1.0
            for series, colour in ((true[:, c], "black"), (pred[:, c], "red")):
                xs = x0 + pad + np.linspace(0, cell_w - 2 * pad, len(series))
                ys = y0 + cell_h - pad - (series - lo) / span * (cell_h - 2 * pad)
                draw.line(list(zip(xs.tolist(), ys.tolist())), fill=colour, width=1)
    image.save(path)
    return path

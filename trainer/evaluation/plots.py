"""PNG curves of per-epoch metrics and sample overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def headless_pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: list[dict], path: str | Path) -> Path:
    """Plot every numeric metric of ``history`` (one dict per epoch) against the step."""
    plt = headless_pyplot()
    keys = sorted({k for h in history for k, v in h.items() if k != "step" and
                   isinstance(v, (int, float))})
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(4 * max(1, len(keys)), 3))
    axes = np.atleast_1d(axes)
    steps = [h["step"] for h in history]
    for ax, key in zip(axes, keys, strict=False):
        ax.plot(steps, [h.get(key, np.nan) for h in history], marker="o")
        ax.set_title(key)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)


def plot_overlays(
    images: np.ndarray, labels: np.ndarray, preds: np.ndarray, path: str | Path, n: int = 8
) -> Path:
    """Save centre-channel patches with reference (green) and predicted (red) contours."""
    plt = headless_pyplot()
    n = min(n, images.shape[0])
    fig, axes = plt.subplots(1, n, figsize=(2 * n, 2.2))
    axes = np.atleast_1d(axes)
    c = images.shape[1] // 2
    for i, ax in enumerate(axes):
        ax.imshow(images[i, c], cmap="gray", vmin=0, vmax=1)
        if labels[i, 0].any():
            ax.contour(labels[i, 0], levels=[0.5], colors="lime", linewidths=0.8)
        if preds[i, 0].any():
            ax.contour(preds[i, 0], levels=[0.5], colors="red", linewidths=0.8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)

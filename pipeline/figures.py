"""Report figures, one seaborn style for all (paper Fig 3-7 analogues).

Each function takes plain arrays or frames (the report stage reads them from `metrics/`
and `synthetic/`) and writes one PNG atomically. Matplotlib runs headless (Agg).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from singanseg.io import write_png  # noqa: E402

STYLE = {"context": "paper", "style": "whitegrid", "palette": "colorblind", "font_scale": 1.0}


def _save(fig, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    buf.seek(0)
    from PIL import Image

    return write_png(path, np.asarray(Image.open(buf).convert("RGB")))


def sample_grid(rows: Sequence[tuple[str, Sequence[tuple[np.ndarray, np.ndarray]]]], path: str | Path, tile: int = 96) -> Path:
    """Rows of (label, [(image, mask), ...]): each pair drawn as the image above its mask (Fig 4, 7)."""
    sns.set_theme(**STYLE)
    ncols = max(len(pairs) for _, pairs in rows)
    fig, axes = plt.subplots(2 * len(rows), ncols, figsize=(1.3 * ncols, 2.6 * len(rows)), squeeze=False)
    for r, (label, pairs) in enumerate(rows):
        for c in range(ncols):
            for k in range(2):
                ax = axes[2 * r + k][c]
                ax.set_axis_off()
                if c < len(pairs):
                    a = pairs[c][k]
                    ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        axes[2 * r][0].set_title(label, loc="left", fontsize=8)
    fig.subplots_adjust(wspace=0.03, hspace=0.08)
    return _save(fig, path)


def mask_maps(maps: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str | Path) -> Path:
    """Per model: the pixel-wise mean and std of its sampled masks (Fig 5)."""
    sns.set_theme(**STYLE)
    n = len(maps)
    fig, axes = plt.subplots(2, n, figsize=(1.8 * n + 0.6, 3.8), squeeze=False)
    ims = [None, None]
    for i, (label, mean, std) in enumerate(maps):
        for k, (arr, name) in enumerate(((mean, "mean"), (std, "std"))):
            ax = axes[k][i]
            # a binary mask's pixel-wise mean lies in [0, 1], its std in [0, 0.5]
            ims[k] = ax.imshow(arr, cmap="magma", vmin=0, vmax=1 if name == "mean" else 0.5)
            ax.set_axis_off()
            if i == 0:
                ax.text(-0.08, 0.5, name, transform=ax.transAxes, rotation=90, va="center", ha="right")
        axes[0][i].set_title(label, fontsize=7)
    for k in range(2):  # one colour scale per row
        fig.colorbar(ims[k], ax=axes[k].tolist(), shrink=0.8)
    return _save(fig, path)


def distributions(values: Mapping[str, Sequence[float]], path: str | Path, xlabel: str, title: str = "") -> Path:
    """Distributions of one quantity per set, e.g. mask foreground % of real vs synthetic (Fig 3, 6)."""
    sns.set_theme(**STYLE)
    df = pd.DataFrame([(k, float(v)) for k, vs in values.items() for v in vs], columns=["set", xlabel])
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    sns.histplot(df, x=xlabel, hue="set", stat="density", common_norm=False, element="step", fill=False, bins=20, ax=ax)
    ax.set_title(title)
    return _save(fig, path)


def lines(df: pd.DataFrame, x: str, y: str, hue: str, path: str | Path, style: str | None = None, title: str = "", errorbar=("sd", 1)) -> Path:
    """Line plot with spread over repeats (folds), e.g. grid B scores vs N, or learning curves."""
    sns.set_theme(**STYLE)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    sns.lineplot(df, x=x, y=y, hue=hue, style=style, marker="o", errorbar=errorbar, ax=ax)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def metric_by_k(df: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """One panel per metric (FID, KID) against the training size K, a line per generator, mean ± sd over sets."""
    sns.set_theme(**STYLE)
    metrics = list(dict.fromkeys(df["metric"])) if not df.empty else ["FID"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        sub = df[df["metric"] == m] if not df.empty else df
        if not sub.empty:
            # bars, not bands: a handful of K values, and the spread over sets is the point
            sns.lineplot(sub, x="K", y="value", hue="generator", marker="o", errorbar="sd", err_style="bars", ax=ax)
            ax.set_xticks(sorted(sub["K"].unique()))
            ax.legend(fontsize=6, loc="best")
        ax.set_ylabel(m)
        ax.set_xlabel("training images K")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def histograms(hists: Mapping[str, tuple[Sequence[float], Sequence[int]]], path: str | Path, xlabel: str, title: str = "") -> Path:
    """Normalised histograms given as (edges, counts) per set, drawn as steps (Fig 3, 6)."""
    sns.set_theme(**STYLE)
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for (name, (edges, counts)), color in zip(hists.items(), sns.color_palette(n_colors=len(hists)), strict=False):
        edges, counts = np.asarray(edges, float), np.asarray(counts, float)
        density = counts / max(counts.sum(), 1) / np.diff(edges)
        ax.stairs(density, edges, label=f"{name} (n={int(counts.sum())})", color=color, linewidth=1.4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _save(fig, path)

"""Report figures, one seaborn style for all (paper Fig 3-7 analogues).

Each function takes plain arrays or frames (the report stage reads them from `metrics/`
and `synthetic/`) and writes one PNG atomically. Matplotlib runs headless (Agg).

Every function takes `mark`: a line drawn inside the image (top, red) that says a figure
comes from a smoke run or phantom data, so that the image alone, copied out of the report,
is never mistaken for results (`run_mark` words it). Legends sit outside the axes, so that
they hide no line, point or error bar; x axes of counts get integer ticks.
"""

from __future__ import annotations

import io
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from singanseg.io import write_png  # noqa: E402

STYLE = {"context": "paper", "style": "whitegrid", "palette": "colorblind", "font_scale": 1.0}
MARK_COLOR = "#c00000"


def run_mark(profile: str, data_source: str) -> str:
    """The mark a figure carries: "" for results, else what makes it a check ("SMOKE RUN ...")."""
    parts = (["SMOKE RUN"] if profile == "smoke" else []) + (["PHANTOM DATA"] if "phantom" in data_source else [])
    return " · ".join(parts) + (": tests the pipeline, not results" if parts else "")


def _mark(fig, mark: str) -> None:
    """Draw `mark` above everything else in the figure, wrapped to the figure's width."""
    if not mark:
        return
    # on top of what is drawn (not of the figure's empty margins, which the tight save cuts off)
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    width_chars = max(int(box.width * 11), 16)  # ~11 characters per inch at 8 pt bold
    fig.text(box.x0 / fig.get_figwidth(), box.y1 / fig.get_figheight() + 0.01, textwrap.fill(mark, width_chars),
             ha="left", va="bottom", fontsize=8, weight="bold", color=MARK_COLOR, gid="run-mark")  # fmt: skip


def _legend_outside(ax, title: str | None = None) -> None:
    """The axes' legend to their right, outside the data area (no point or bar hidden)."""
    handles, labels = ax.get_legend_handles_labels()
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    if handles:
        ax.legend(handles, labels, fontsize=7, title=title, title_fontsize=7, loc="upper left",
                  bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)  # fmt: skip


def _save(fig, path: str | Path, mark: str = "") -> Path:
    _mark(fig, mark)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    buf.seek(0)
    from PIL import Image

    return write_png(path, np.asarray(Image.open(buf).convert("RGB")))


def sample_grid(rows: Sequence[tuple[str, Sequence[tuple[np.ndarray, np.ndarray]]]], path: str | Path,
                tile: int = 96, mark: str = "") -> Path:
    """Rows of (label, [(image, mask), ...]): each pair drawn as the image above its mask (Fig 4, 7).

    Each row's label has a strip of its own above the row, so that no label is drawn over a tile."""
    sns.set_theme(**STYLE)
    ncols = max(len(pairs) for _, pairs in rows)
    ratios = [0.28, 1, 1] * len(rows)
    fig = plt.figure(figsize=(max(1.3 * ncols, 2.6), 2.9 * len(rows)))
    grid = fig.add_gridspec(3 * len(rows), ncols, height_ratios=ratios, wspace=0.03, hspace=0.06)
    for r, (label, pairs) in enumerate(rows):
        head = fig.add_subplot(grid[3 * r, :])
        head.set_axis_off()
        head.text(0.0, 0.0, label, ha="left", va="bottom", fontsize=8, weight="bold", transform=head.transAxes)
        for c in range(ncols):
            for k in range(2):
                ax = fig.add_subplot(grid[3 * r + 1 + k, c])
                ax.set_axis_off()
                if c < len(pairs):
                    a = pairs[c][k]
                    ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    return _save(fig, path, mark)


def mask_maps(maps: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str | Path, title: str = "",
              mark: str = "") -> Path:
    """Per model: the pixel-wise mean and std of its sampled masks (Fig 5), in percent like every
    other mask statistic of the report (a binary mask's mean lies in [0, 100] %, its std in [0, 50])."""
    sns.set_theme(**STYLE)
    n = len(maps)
    fig, axes = plt.subplots(2, n, figsize=(1.8 * n + 1.2, 3.8), squeeze=False)
    ims = [None, None]
    names = ("mean (% of samples)", "std (% points)")
    for i, (label, mean, std) in enumerate(maps):
        for k, arr in enumerate((mean, std)):
            ax = axes[k][i]
            ims[k] = ax.imshow(100.0 * np.asarray(arr, float), cmap="magma", vmin=0, vmax=100 if k == 0 else 50)
            ax.set_axis_off()
            if i == 0:
                ax.text(-0.08, 0.5, names[k].split(" ")[0], transform=ax.transAxes, rotation=90, va="center", ha="right")
        axes[0][i].set_title(label, fontsize=7)
    for k in range(2):  # one colour scale per row
        fig.colorbar(ims[k], ax=axes[k].tolist(), shrink=0.8, label=names[k])
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path, mark)


def lines(df: pd.DataFrame, x: str, y: str, hue: str, path: str | Path, style: str | None = None, title: str = "",
          errorbar=("sd", 1), xlabel: str | None = None, ylabel: str | None = None, integer_x: bool = False,
          mark: str = "") -> Path:
    """Line plot with spread over repeats (folds), e.g. learning curves; `integer_x` for epochs."""
    sns.set_theme(**STYLE)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    sns.lineplot(df, x=x, y=y, hue=hue, style=style, marker="o", errorbar=errorbar, ax=ax)
    if integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.set_title(title)
    _legend_outside(ax)
    return _save(fig, path, mark)


def points(df: pd.DataFrame, x: str, y: str, hue: str, panel: str, path: str | Path, xlabel: str,
           ylabels: Mapping[str, str] | None = None, title: str = "", mark: str = "", sharey: bool = True) -> Path:
    """One panel per value of `panel`, `y` against a few discrete `x` values (N, K): points joined
    per `hue`, mean ± sd over repeats as bars, dodged so that no point hides another; the x ticks
    are exactly the values present (one N is one tick, not 1.9 ... 2.1)."""
    sns.set_theme(**STYLE)
    panels = list(dict.fromkeys(df[panel]))
    hues = list(dict.fromkeys(df[hue]))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 2.2, 3.4), squeeze=False, sharey=sharey)
    order = sorted(df[x].unique())
    for ax, p in zip(axes[0], panels, strict=True):
        sub = df[df[panel] == p]
        sns.pointplot(sub, x=x, y=y, hue=hue, hue_order=hues, order=order, dodge=0.4 if len(hues) > 1 else False,
                      errorbar="sd", capsize=0.08, markersize=4, linewidth=1.2, err_kws={"linewidth": 1.0}, ax=ax)  # fmt: skip
        ax.set_title(str(p), fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel((ylabels or {}).get(p, y))
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    _legend_outside(axes[0][-1], hue)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path, mark)


def intervals(df: pd.DataFrame, x: str, hue: str, panel: str, path: str | Path, xlabel: str, ylabel: str,
              title: str = "", mark: str = "") -> Path:
    """One panel per `panel`, a line per `hue` through (x, estimate) with the interval
    [low, high] as bars (columns `estimate`, `low`, `high`), dodged; x ticks are the values."""
    sns.set_theme(**STYLE)
    panels = list(dict.fromkeys(df[panel]))
    hues = list(dict.fromkeys(df[hue]))
    order = sorted(df[x].unique())
    pos = {v: i for i, v in enumerate(order)}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 2.2, 3.4), squeeze=False, sharey=True)
    colors = sns.color_palette(n_colors=len(hues))
    for ax, p in zip(axes[0], panels, strict=True):
        for j, (h, color) in enumerate(zip(hues, colors, strict=True)):
            sub = df[(df[panel] == p) & (df[hue] == h)].sort_values(x)
            if sub.empty:
                continue
            dx = (j - (len(hues) - 1) / 2) * (0.4 / max(len(hues), 1))
            xs = np.array([pos[v] for v in sub[x]]) + dx
            ax.errorbar(xs, sub.estimate, yerr=[sub.estimate - sub.low, sub.high - sub.estimate], color=color,
                        marker="o", markersize=4, linewidth=1.2, capsize=2.5, elinewidth=1.0, label=str(h))  # fmt: skip
        ax.set_xticks(range(len(order)), [str(v) for v in order])
        ax.set_title(str(p), fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    _legend_outside(axes[0][-1], hue)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path, mark)


def metric_by_k(df: pd.DataFrame, path: str | Path, title: str = "", mark: str = "") -> Path:
    """One panel per metric (FID, KID) against the training size K, a line per generator, mean ± sd over sets."""
    if df.empty:
        df = pd.DataFrame({"metric": ["FID"], "K": [0], "value": [np.nan], "generator": ["none"]})
    return points(df, "K", "value", "generator", "metric", path, "training images K (count)",
                  {m: m for m in df["metric"].unique()}, title, mark, sharey=False)


def histograms(hists: Mapping[str, tuple[Sequence[float], Sequence[int]]], path: str | Path, xlabel: str,
               title: str = "", mark: str = "") -> Path:
    """Normalised histograms given as (edges, counts) per set, drawn as steps (Fig 3, 6)."""
    sns.set_theme(**STYLE)
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for (name, (edges, counts)), color in zip(hists.items(), sns.color_palette(n_colors=len(hists)), strict=False):
        edges, counts = np.asarray(edges, float), np.asarray(counts, float)
        density = counts / max(counts.sum(), 1) / np.diff(edges)
        ax.stairs(density, edges, label=f"{name} (n={int(counts.sum())})", color=color, linewidth=1.4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of masks per % point")
    ax.set_title(title)
    _legend_outside(ax)
    return _save(fig, path, mark)

"""Mask statistics (paper Fig 3, 5, 6; paper.md sections 3 and 4, `check_diversity_of_fakes.ipynb`).

- Foreground percentage per mask (pixels > 127, the paper's threshold, via
  `singanseg.io.read_mask`), and its distribution for real and synthetic sets (Fig 3, 6).
- Per model, the pixel-wise mean and standard deviation of its N sampled masks (Fig 5: 10
  masks per model), saved as float32 `.npy` (values in [0, 1]) and as PNG: the mean x 255,
  and the std x 510 (a binary pixel's std is at most 0.5, so 0.5 maps to 255).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from singanseg.io import IMAGE_SUFFIXES, InputError, read_mask, write_png
from singanseg.typed import ConfigError

from .lpips_diversity import group_by_model


@dataclass(frozen=True)
class MaskOptions:
    bin_width: float = 5.0  # histogram bins in percent; Fig 3/6 bin width unknown (paper.md section 7)
    pixelwise: bool = True  # Fig 5: per-model pixel-wise mean/std of sampled masks
    # issue 23 s2: a mask under this percentage of the frame is "near-empty" (0 px: "empty")
    near_empty_percent: float = 1.0


def mask_index(folder: str | os.PathLike) -> dict[str, Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found")
    root = folder / "masks" if (folder / "masks").is_dir() else folder
    found = {p.stem: p for p in sorted(root.iterdir()) if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES}
    if not found:
        raise InputError(f"{root}: no masks ({', '.join(IMAGE_SUFFIXES)}) found")
    return dict(sorted(found.items()))


def foreground_percentages(folder: str | os.PathLike) -> dict[str, float]:
    """id -> percentage of foreground pixels (0..100)."""
    out = {}
    for i, p in mask_index(folder).items():
        m, _ = read_mask(p)
        out[i] = float(np.count_nonzero(m) * 100.0 / m.size)
    return out


def distribution(values, bin_width: float = 5.0, near_empty_percent: float = 1.0) -> dict:
    """Summary and histogram (bins of `bin_width` percent over 0..100) of foreground percentages."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        raise InputError("mask distribution: no masks")
    if not 0 < bin_width <= 100:
        raise ConfigError(f"bin_width: must be in (0, 100], got {bin_width}")
    edges = np.arange(0.0, 100.0 + bin_width / 2, bin_width)
    if edges[-1] < 100.0:
        edges = np.append(edges, 100.0)
    counts, _ = np.histogram(v, bins=edges)
    return {
        "count": int(v.size),
        "mean": float(v.mean()),
        "std": float(v.std()),
        "median": float(np.median(v)),
        "min": float(v.min()),
        "max": float(v.max()),
        "q05": float(np.quantile(v, 0.05)),
        "q95": float(np.quantile(v, 0.95)),
        "empty": int(np.count_nonzero(v == 0)),
        "empty_fraction": float(np.mean(v == 0)),
        "near_empty_percent": float(near_empty_percent),
        "near_empty_fraction": float(np.mean(v < near_empty_percent)),  # empty ones included
        "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
    }


def pixelwise_stats(folder: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> dict[str, dict]:
    """Per model (`<srcid>_<n>` ids): pixel-wise mean/std of its masks; written to `out_dir` if given."""
    idx = mask_index(folder)
    result = {}
    for src, ids in group_by_model(idx).items():
        stack = []
        for i in ids:
            m, _ = read_mask(idx[i])
            if stack and m.shape != stack[0].shape:
                raise InputError(f"{idx[i]}: mask is {m.shape[1]}x{m.shape[0]} but {idx[ids[0]].name} of the same model is {stack[0].shape[1]}x{stack[0].shape[0]}")
            stack.append(m)
        a = np.stack(stack).astype(np.float32) / 255.0
        mean, std = a.mean(axis=0), a.std(axis=0)
        result[src] = {"samples": len(ids), "mean_of_mean": float(mean.mean()), "mean_of_std": float(std.mean())}
        if out_dir is not None:
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            np.save(out / f"{src}_mean.npy", mean)
            np.save(out / f"{src}_std.npy", std)
            write_png(out / f"{src}_mean.png", np.round(mean * 255).astype(np.uint8))
            write_png(out / f"{src}_std.png", np.round(np.clip(std * 510, 0, 255)).astype(np.uint8))
    return result


def mask_summary(folder: str | os.PathLike, bin_width: float = 5.0, near_empty_percent: float = 1.0) -> dict:
    fg = foreground_percentages(folder)
    return {"metric": "mask_foreground_percent", "value": float(np.mean(list(fg.values()))),
            "distribution": distribution(fg.values(), bin_width, near_empty_percent), "per_mask": fg}

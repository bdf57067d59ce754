"""Mask statistics: foreground percentages, distributions, per-model pixel-wise mean/std."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.metrics.masks import (
    distribution,
    foreground_percentages,
    mask_summary,
    pixelwise_stats,
)
from singanseg.io import InputError, write_png


def _masks(root, rng, n=4, shape=(20, 30)):
    arrays = {}
    for i in range(n):
        m = np.where(rng.random(shape) < 0.1 * (i + 1), 255, 0).astype(np.uint8)
        write_png(root / "masks" / f"p1_{i}.png", m)
        arrays[f"p1_{i}"] = m
    return arrays


def test_percentages_and_pixelwise(tmp_path):
    rng = np.random.default_rng(0)
    arrays = _masks(tmp_path / "set", rng)
    fg = foreground_percentages(tmp_path / "set")
    for i, m in arrays.items():
        assert fg[i] == pytest.approx(100 * (m > 127).mean())
    stats = pixelwise_stats(tmp_path / "set", tmp_path / "out")
    stack = np.stack([arrays[f"p1_{i}"] / 255.0 for i in range(4)])
    mean = np.load(tmp_path / "out" / "p1_mean.npy")
    std = np.load(tmp_path / "out" / "p1_std.npy")
    assert np.allclose(mean, stack.mean(0)) and np.allclose(std, stack.std(0))
    assert stats["p1"]["samples"] == 4
    png = np.asarray(Image.open(tmp_path / "out" / "p1_mean.png"))
    assert np.array_equal(png, np.round(stack.mean(0) * 255).astype(np.uint8))


def test_distribution_histogram():
    v = [0.0, 2.0, 7.5, 50.0, 100.0]
    d = distribution(v, bin_width=10)
    assert d["count"] == 5 and d["empty"] == 1
    assert sum(d["histogram"]["counts"]) == 5 and d["histogram"]["counts"][0] == sum(x < 10 for x in v)
    assert d["mean"] == pytest.approx(np.mean(v))
    with pytest.raises(InputError):
        distribution([])


def test_real_kvasir_masks(kvasir_dir):
    s = mask_summary(kvasir_dir)
    assert s["distribution"]["count"] == len(s["per_mask"]) == 200
    assert 0 < s["distribution"]["min"] <= s["distribution"]["max"] < 100  # every Kvasir image shows a polyp


def test_size_mismatch_within_model(tmp_path):
    write_png(tmp_path / "masks" / "a_0.png", np.zeros((8, 8), np.uint8))
    write_png(tmp_path / "masks" / "a_1.png", np.zeros((9, 8), np.uint8))
    with pytest.raises(InputError, match="a_1.png: mask is 8x9"):
        pixelwise_stats(tmp_path)

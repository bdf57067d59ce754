"""Issue 23 (quality's cost): every image goes through Inception once per stage run
(metrics/features.py FeatureBank), and SIFID and FID share one pass where their inputs are the
same tensor. The numbers must be those of each metric computed on its own."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline import quality
from pipeline.metrics import fair, features
from pipeline.metrics.features import FeatureBank, load_rgb, pooled_features, spatial_features
from pipeline.metrics.frechet import gaussian_statistics
from pipeline.metrics.inception import load_inception
from singanseg.io import write_png

# batch composition: Inception's layers treat batch items independently (eval mode), and on
# the CPUs measured the features are the same bits in any batch; a BLAS that blocks by batch
# size may round differently, which this bounds
RTOL = 1e-6


@pytest.fixture(scope="module")
def net():
    return load_inception("inception_fid", "pretrained", None, resize=True)


def _img(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return np.kron(small, np.ones((8, 8, 1), np.uint8))


def test_antialias_upsampling_is_the_plain_kernel():
    aa = fair.ResizeOptions(antialias=True)
    for h, w in ((34, 40), (64, 64), (256, 200)):
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h))
        ours = fair.resize_tensor(x, aa)
        assert torch.equal(ours, F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False))
        assert (ours - F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False, antialias=True)).abs().max() < 1e-5
    big = torch.rand(1, 3, 400, 280, generator=torch.Generator().manual_seed(0))  # one side shrinks: antialiased
    assert torch.equal(fair.resize_tensor(big, aa), F.interpolate(big, size=(299, 299), mode="bilinear", align_corners=False, antialias=True))


def test_bank_returns_the_separate_features_and_computes_each_image_once(net, tmp_path):
    paths = []
    for n, (h, w) in enumerate(((40, 32), (64, 64), (48, 72), (400, 320))):
        paths.append(write_png(tmp_path / f"i{n}.png", _img(n, h, w)))
    arrays = [_img(9, 40, 40), _img(10, 56, 48)]
    aa = fair.ResizeOptions(antialias=True)
    bank = FeatureBank()
    # SIFID's spatial tap and FID's pooled tap together: one pass where the inputs agree (the upsampled images)
    bank.compute(net, paths, pooled=("pool3", aa), spatial="conv2b", batch_size=3)
    assert bank.passes == {"pooled": 1, "spatial": 1, "shared": 3}  # the 400x320 image: two inputs, two passes
    got = bank.pooled(net, paths + arrays, "pool3", 4, resize=aa)
    assert bank.passes["pooled"] == 1 + 2  # only the arrays were new
    ref = pooled_features(net, paths + arrays, ("pool3",), 50, "cpu", aa)["pool3"]
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=0)
    assert got.dtype == np.float64 and got.shape == (6, 2048)
    for p in paths:
        mu, sigma = bank.spatial(net, p, "conv2b")
        mu_ref, sigma_ref = gaussian_statistics(spatial_features(net, load_rgb(p), "conv2b"))
        np.testing.assert_allclose(mu, mu_ref, rtol=RTOL, atol=1e-9)
        np.testing.assert_allclose(sigma, sigma_ref, rtol=RTOL, atol=1e-9)
    assert bank.passes["spatial"] == 1  # nothing recomputed
    assert sum(bank.passes.values()) == 4 + 2 + 1


class SeparateBank(FeatureBank):
    """The stage before the bank: each request computed from scratch, one image at a time for SIFID."""

    def compute(self, *args, **kwargs):
        pass

    def pooled(self, net, items, tap="pool3", batch_size=50, device="cpu", resize=None):
        return pooled_features(net, list(items), (tap,), batch_size, device, resize)[tap]

    def spatial(self, net, item, tap, batch_size=50, device="cpu"):
        return gaussian_statistics(spatial_features(net, load_rgb(item), tap, device), str(item))

    def forget_spatial(self, *args):
        pass


def _close(a, b, where=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=RTOL, abs_tol=1e-9), f"{where}: {a} != {b}"
    else:
        assert a == b, where


def test_stage_numbers_equal_the_metrics_computed_separately(net, tmp_path, monkeypatch):
    """The quality stage (cpu profile's options: FID weights for SIFID, antialiased common
    resize, intervals) with the bank and shared passes vs each metric computing its own features."""
    reals = [f"r{i}" for i in range(6)]
    for n, i in enumerate(reals):
        write_png(tmp_path / "data/real/images" / f"{i}.png", _img(n, 320, 360))  # downsampled: SIFID and FID inputs differ
        write_png(tmp_path / "data/real/masks" / f"{i}.png", np.where(_img(n, 320, 360)[..., 0] > 127, 255, 0).astype(np.uint8))
    syn = tmp_path / "synthetic"
    for s in range(2):
        for n, i in enumerate(reals):
            write_png(syn / f"singan/gss0/images/{i}_{s}.png", _img(20 + 7 * n + s, 40, 48))
            write_png(syn / f"singan/gss0/masks/{i}_{s}.png", np.where(_img(50 + n, 40, 48)[..., 1] > 127, 255, 0).astype(np.uint8))
    for n in range(8):
        write_png(syn / f"fastgan/n2/images/fastgan_{n}.png", _img(100 + n, 64, 64))
        write_png(syn / f"fastgan/n2/masks/fastgan_{n}.png", np.zeros((64, 64), np.uint8))
        write_png(syn / f"dcgan/nall/images/dcgan_{n}.png", _img(200 + n, 64, 64))
        write_png(syn / f"dcgan/nall/masks/dcgan_{n}.png", np.zeros((64, 64), np.uint8))
    params = quality.QualityParams(
        sifid=quality.SIFIDOptions(network="inception_fid", batch_size=4),
        fid=quality.FIDOptions(dims=64, batch_size=5, resize=fair.ResizeOptions(antialias=True)),
        lpips=quality.LPIPSOptions(weights="random"),
        gan_by_k=quality.EqualKOptions(sets=2, bootstrap=fair.BootstrapOptions(replicates=20)),
        track=False,
    )
    outs = {}
    for name, bank_cls in (("bank", FeatureBank), ("separate", SeparateBank)):
        monkeypatch.setattr(features, "FeatureBank", bank_cls)
        monkeypatch.setenv("SINGANSEG_CACHE", str(tmp_path / f"cache-{name}"))
        out = tmp_path / f"out-{name}"
        out.mkdir()
        quality.evaluate(params, tmp_path / "data/real", syn, out)
        outs[name] = out
    files = sorted(p.relative_to(outs["bank"]).as_posix() for p in outs["bank"].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(outs["separate"]).as_posix() for p in outs["separate"].rglob("*") if p.is_file())
    assert "gan_by_k.json" in files and "singan__gss0.sifid.csv" in files
    for f in files:
        a, b = outs["bank"] / f, outs["separate"] / f
        if f.endswith(".json"):
            _close(json.loads(a.read_text()), json.loads(b.read_text()), f)
        elif f.endswith(".csv"):
            for ra, rb in zip(a.read_text().splitlines(), b.read_text().splitlines(), strict=True):
                for x, y in zip(ra.split(","), rb.split(","), strict=True):
                    try:
                        assert math.isclose(float(x), float(y), rel_tol=RTOL, abs_tol=1e-9), f"{f}: {ra} != {rb}"
                    except ValueError:
                        assert x == y, f
        else:
            assert a.read_bytes() == b.read_bytes(), f


def test_fid_singan_samples_takes_the_first_samples_of_each_model(tmp_path, monkeypatch):
    """quality.fid_singan_samples (a named cut, 0 = every sample): the set's FID from the first N
    samples of each model, said in its entry; SIFID still scores every sample."""
    monkeypatch.setenv("SINGANSEG_CACHE", str(tmp_path / "cache"))
    for n, i in enumerate(("a", "b", "c")):
        write_png(tmp_path / "real/images" / f"{i}.png", _img(n, 64, 64))
        write_png(tmp_path / "real/masks" / f"{i}.png", np.zeros((64, 64), np.uint8))
        for s in range(3):
            write_png(tmp_path / f"syn/singan/gss0/images/{i}_{s}.png", _img(10 * n + s, 40, 40))
            write_png(tmp_path / f"syn/singan/gss0/masks/{i}_{s}.png", np.zeros((40, 40), np.uint8))
    params = quality.QualityParams(sifid=quality.SIFIDOptions(network="inception_fid"), fid=quality.FIDOptions(dims=64),
                                   lpips=quality.LPIPSOptions(weights="random"), fid_singan_samples=2,
                                   gan_by_k=quality.EqualKOptions(enabled=False), track=False)  # fmt: skip
    (tmp_path / "out").mkdir()
    quality.evaluate(params, tmp_path / "real", tmp_path / "syn", tmp_path / "out")
    entry = json.loads((tmp_path / "out/singan__gss0.json").read_text())
    assert entry["fid"]["count_b"] == 6 and "first 2 sample(s)" in entry["fid"]["samples"]
    assert entry["sifid"]["count"] == 9
    with pytest.raises(Exception, match="fid_singan_samples"):
        quality.evaluate(dataclasses.replace(params, fid_singan_samples=-1), tmp_path / "real", tmp_path / "syn", tmp_path / "out2")


def test_lowrank_frechet_is_the_eigen_distance(net, tmp_path):
    """FIDOptions.frechet: lowrank (fewer images than dims) gives the eigen distance: the set FID
    and the equal-K sets' FID; eps must be 0."""
    from pipeline.metrics import equal_k
    from pipeline.metrics.fid import FIDOptions, fid_paths
    from singanseg.typed import ConfigError

    rng = np.random.default_rng(3)
    x, y = np.maximum(rng.normal(size=(20, 256)), 0), np.maximum(rng.normal(0.2, 1.1, size=(20, 256)), 0)
    assert equal_k.fid_features(x, y, frechet="lowrank") == pytest.approx(equal_k.fid_features(x, y), rel=1e-9)
    a = [write_png(tmp_path / f"a{n}.png", _img(n, 48, 48)) for n in range(5)]
    b = [write_png(tmp_path / f"b{n}.png", _img(50 + n, 40, 56)) for n in range(6)]
    eig = fid_paths(a, b, FIDOptions(dims=64, cache=False), net)
    low = fid_paths(a, b, FIDOptions(dims=64, cache=False, frechet="lowrank"), net)
    assert low["value"] == pytest.approx(eig["value"], rel=1e-8) and low["options"]["frechet"] == "lowrank"
    assert {k: v for k, v in low.items() if k not in ("value", "options")} == {k: v for k, v in eig.items() if k not in ("value", "options")}
    with pytest.raises(ConfigError, match="frechet"):
        FIDOptions(frechet="lowrank", eps=1e-6).validate()

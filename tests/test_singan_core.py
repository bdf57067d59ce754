"""Units of the SinGAN-Seg core: config, resize, input checks, BatchNorm replay, resume."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from singanseg.api import load, train
from singanseg.ckpt import CheckpointError
from singanseg.config import SinGANConfig, preset
from singanseg.imresize import contributions, imresize_reference, imresize_torch, output_length
from singanseg.io import InputError
from singanseg.networks import init_models
from singanseg.pyramid import adjust_scales, build_pyramid, to_rgba
from singanseg.sample import SampleError, to_uint8
from singanseg.training import bn_repeat
from singanseg.typed import ConfigError

TINY = dict(max_size=28, min_size=16, nfc=8, min_nfc=8, niter=3)


def _pair(h=40, w=48, seed=0):
    rng = np.random.default_rng(seed)
    image = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4 : h // 2, w // 4 : w // 2] = 255
    return image, mask


def test_paper_defaults_and_nfc_growth():
    cfg = preset("paper")
    assert (
        cfg.nfc,
        cfg.niter,
        cfg.lr_g,
        cfg.lambda_grad,
        cfg.alpha,
        cfg.min_size,
        cfg.max_size,
    ) == (32, 2000, 5e-4, 0.1, 10.0, 25, 250)
    assert [cfg.nfc_at(n)[0] for n in range(10)] == [32] * 4 + [64] * 4 + [128] * 2
    assert cfg.pad == 5


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("scale_factor", 1.5, "scale_factor"),
        ("min_size", 300, "min_size"),
        ("g_steps_mode", "sum", "g_steps_mode"),
        ("nc_im", 3, "nc_im"),
    ],
)
def test_bad_config_names_the_key(key, value, match):
    with pytest.raises(ConfigError, match=match):
        preset("paper", **{key: value})


def test_kvasir_sized_input_gives_the_paper_pyramid():
    spec = adjust_scales(
        529, 622, SinGANConfig()
    )  # paper.md s1: 9 scales, sf ~0.765, 25x29 .. 213x250
    assert spec.stop_scale == 8
    assert spec.scale_factor == pytest.approx(0.765, abs=0.002)


def test_torch_resize_is_the_reference_kernel_without_quantisation():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 4, 33, 41, generator=g) * 2 - 1
    for scale in (0.77, 1 / 0.77):
        ref, ours = imresize_reference(x, scale), imresize_torch(x, scale)
        assert ref.shape == ours.shape == (2, 4, output_length(33, scale), output_length(41, scale))
        # uint8 truncation: at most one level (2/255) plus the kernel's overshoot of it
        assert (ref - ours).abs().max() < 2.3 / 255
    w, _ = contributions(41, 32, 32 / 41, True)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    const = torch.full((1, 4, 20, 20), 0.3)
    assert torch.allclose(
        imresize_torch(const, 0.7), torch.full_like(imresize_torch(const, 0.7), 0.3), atol=1e-6
    )


def test_input_checks(caplog):
    image, mask = _pair()
    with pytest.raises(InputError, match="mask is 48x39"):
        to_rgba(image, mask[:39])
    with pytest.raises(InputError, match="not binary"):
        to_rgba(image, (mask // 2).astype(np.uint8))
    with caplog.at_level(logging.WARNING):
        to_rgba(image, np.zeros_like(mask))
    assert "empty" in caplog.text
    with pytest.raises(InputError, match="smaller than min_size"):
        adjust_scales(20, 300, SinGANConfig())
    with pytest.raises(InputError, match="max_input_pixels"):
        adjust_scales(10_000, 10_000, SinGANConfig())


def test_bn_repeat_equals_repeated_forwards():
    cfg = SinGANConfig(nfc=8, min_nfc=8)
    _, a = init_models(cfg, 0, torch.Generator().manual_seed(0))
    _, b = init_models(cfg, 0, torch.Generator().manual_seed(0))
    x = torch.randn(1, 4, 30, 30, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for _ in range(3):
            a(x, x)
        with bn_repeat(b, 3):
            b(x, x)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.allclose(sa[k].double(), sb[k].double(), atol=1e-6), k
    assert int(sb["head.norm.num_batches_tracked"]) == 3


def test_resume_after_an_interruption_equals_an_uninterrupted_run(tmp_path):
    image, mask = _pair()
    cfg = SinGANConfig(**TINY)
    full = train(image, mask, tmp_path / "full", cfg, seed=5, progress=False)

    class Stop(Exception):
        pass

    def stop_after_first(n, summary):
        if n == 0:
            raise Stop

    with pytest.raises(Stop):
        train(image, mask, tmp_path / "cut", cfg, seed=5, progress=False, on_scale=stop_after_first)
    with pytest.raises(CheckpointError, match="unfinished"):
        load(tmp_path / "cut")
    resumed = train(image, mask, tmp_path / "cut", cfg, seed=5, progress=False)
    assert resumed.num_scales == full.num_scales >= 3
    for ga, gb in zip(full.Gs, resumed.Gs, strict=True):
        for (k, va), vb in zip(ga.state_dict().items(), gb.state_dict().values(), strict=True):
            assert torch.equal(va, vb), k
    assert full.noise_amps == resumed.noise_amps
    # the folders are byte for byte the same (their DVC hash too): times only in the sidecars
    from singanseg.saved_model import read_model_timing

    names = ["model.json", *(f"scale_{n}{ext}" for n in range(full.num_scales) for ext in (".json", ".safetensors"))]
    for name in names:
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "cut" / name).read_bytes(), name
    seconds = read_model_timing(tmp_path / "cut")  # scale 0's time kept across the interruption
    assert len(seconds) == full.num_scales and all(s > 0 for s in seconds)


def test_per_step_mode_trains_and_sampling_checks(tmp_path):
    image, mask = _pair(seed=2)
    model = train(
        image,
        mask,
        tmp_path / "m",
        SinGANConfig(**TINY, g_steps_mode="per_step"),
        seed=1,
        progress=False,
    )
    pairs = model.sample(2, 0, seed=0)
    assert len(pairs) == 2 and pairs[0][0].shape[:2] == pairs[0][1].shape
    again = model.sample(2, 0, seed=0)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(pairs, again, strict=True))  # seeded
    with pytest.raises(SampleError, match="out of range"):
        model.sample(1, model.num_scales + 1)
    soft = to_uint8(torch.zeros(1, 4, 5, 5), mask_post_processing=False)[0][1]
    assert soft.ndim == 2 and set(np.unique(soft).tolist()) == {127}  # grey, not thresholded
    assert set(np.unique(to_uint8(torch.zeros(1, 4, 5, 5))[0][1]).tolist()) == {
        0
    }  # 0.5 is not > 0.5


def test_fused_adam_is_the_loop_update_up_to_rounding():
    """adam_impl: fused (default) vs loop (the authors' torch.optim.Adam): same training, rounding apart."""
    from singanseg.training import Member, train_scale

    rgba = np.zeros((40, 48, 4), np.uint8)
    rng = np.random.default_rng(0)
    rgba[..., :3] = rng.integers(0, 255, (40, 48, 3))
    rgba[10:25, 12:30, 3] = 255
    states = {}
    for impl in ("loop", "fused"):
        cfg = SinGANConfig(nfc=8, min_nfc=8, max_size=40, min_size=24, niter=4, adam_impl=impl)
        reals, spec = build_pyramid(rgba, cfg)
        (r,) = train_scale(0, [Member("m", None, 1, torch.Generator().manual_seed(1), reals, spec, {})], cfg)
        states[impl] = r["G"].state_dict()
    # A conv bias right before a BatchNorm has a true gradient of 0: Adam turns its rounding
    # noise into steps of ~lr either way, in both implementations alike (and BatchNorm
    # removes it again; the running mean carries it). Every other tensor must agree to rounding.
    pre_bn = {k for k in states["loop"] if k.endswith(("conv.bias", "running_mean"))}
    assert pre_bn and len(pre_bn) < len(states["loop"]) - 5
    diffs = [(states["loop"][k].float() - states["fused"][k].float()).abs().max().item()
             for k in states["loop"] if k not in pre_bn]  # fmt: skip
    assert max(diffs) < 1e-5  # rounding-level: one step of lr 5e-4 moves weights ~5e-4
    moved = SinGANConfig(nfc=8, min_nfc=8, max_size=40, min_size=24, niter=4)
    _, untrained = init_models(moved, 0, torch.Generator().manual_seed(1))
    assert max((untrained.state_dict()[k] - states["fused"][k]).abs().max().item() for k in states["fused"]) > 1e-4


def test_a_model_from_before_adam_impl_is_not_taken_for_a_fused_one(tmp_path):
    import json

    from singanseg.api import IncompatibleModelError

    rgba = np.zeros((40, 48, 4), np.uint8)
    rgba[..., :3] = np.random.default_rng(0).integers(0, 255, (40, 48, 3))
    rgba[10:25, 12:30, 3] = 255
    cfg = preset("smoke", niter=2, max_size=32, min_size=24)
    train(rgba[..., :3], rgba[..., 3], tmp_path / "m", cfg, seed=1, progress=False)
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    del meta["config"]["adam_impl"]  # as written before the option existed (trained with `loop`)
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(IncompatibleModelError, match="adam_impl"):
        train(rgba[..., :3], rgba[..., 3], tmp_path / "m", cfg, seed=1, progress=False)
    assert load(tmp_path / "m").config.adam_impl == "loop"


def test_training_with_progress_warns_nothing(tmp_path):
    # `float(errG)` on a tensor that requires grad raised a torch UserWarning in every run
    import warnings

    rgba = np.zeros((40, 48, 4), np.uint8)
    rgba[..., :3] = np.random.default_rng(0).integers(0, 255, (40, 48, 3))
    rgba[10:25, 12:30, 3] = 255
    cfg = preset("smoke", niter=2, max_size=32, min_size=24)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(rgba[..., :3], rgba[..., 3], tmp_path / "m", cfg, seed=1, progress=True)
    assert [str(w.message) for w in caught if "requires_grad" in str(w.message)] == []

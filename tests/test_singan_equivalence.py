"""Equivalence with the authors' code (issue 3 item 9): singan_seg_polyp 1.0.7's SinGAN.

Both sides start from the same seed: the reference draws from torch's global RNG (its
post_config seeds it), ours from a torch.Generator seeded alike, in the same order; the
reference is driven on the CPU through its own `opt` namespace (device 'cpu', not_cuda),
which needs no monkeypatching. With `resize: reference` and `g_steps_mode: accumulate`, two
scales (the second one drawing 'rand' and 'rec' images through the frozen first) must give
the same weights, BatchNorm statistics, z_opt and noise_amp up to float rounding.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import copy
import math

import numpy as np
import pytest
import torch

pytest.importorskip("skimage")
pytest.importorskip("sklearn")
RT = pytest.importorskip("singan_seg_polyp.SinGAN.training")
RF = pytest.importorskip("singan_seg_polyp.SinGAN.functions")
RI = pytest.importorskip("singan_seg_polyp.SinGAN.imresize")

from singanseg.config import SinGANConfig  # noqa: E402
from singanseg.imresize import imresize_reference  # noqa: E402
from singanseg.models import init_models  # noqa: E402
from singanseg.pyramid import build_pyramid, np2torch  # noqa: E402
from singanseg.training import Frozen, train_scale  # noqa: E402

pytestmark = pytest.mark.reference

# Float32 rounding of identical operations in a different association (e.g. the BatchNorm
# momentum replay) stays below 1e-6; a real divergence after even one Adam step at lr 5e-4
# moves weights by ~1e-4 or more, so 1e-5 separates the two.
TOL = 1e-5


def _opt(cfg: SinGANConfig, scale_factor: float, tmp_path) -> argparse.Namespace:
    return argparse.Namespace(
        nc_im=cfg.nc_im,
        nc_z=cfg.nc_z,
        nfc=cfg.nfc,
        min_nfc=cfg.min_nfc,
        nfc_init=cfg.nfc,
        min_nfc_init=cfg.min_nfc,
        ker_size=cfg.ker_size,
        num_layer=cfg.num_layer,
        stride=cfg.stride,
        padd_size=cfg.padd_size,
        scale_factor=scale_factor,
        scale_factor_init=cfg.scale_factor,
        noise_amp=cfg.noise_amp,
        noise_amp_init=cfg.noise_amp,
        min_size=cfg.min_size,
        max_size=cfg.max_size,
        niter=cfg.niter,
        gamma=cfg.gamma,
        lr_g=cfg.lr_g,
        lr_d=cfg.lr_d,
        beta1=cfg.beta1,
        Gsteps=cfg.Gsteps,
        Dsteps=cfg.Dsteps,
        lambda_grad=cfg.lambda_grad,
        alpha=cfg.alpha,
        mode="train",
        device=torch.device("cpu"),
        not_cuda=True,
        netG="",
        netD="",
        outf=str(tmp_path),
    )


@contextlib.contextmanager
def _quiet():
    saved = builtins.print  # the reference prints every network it builds
    builtins.print = lambda *a, **k: None
    try:
        yield
    finally:
        builtins.print = saved


def _rgba(h=40, w=34, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4 : h // 2 + 5, w // 4 : w // 2 + 4] = 255
    return np.concatenate([img, mask[..., None]], axis=2)


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def test_imresize_reference_is_bit_identical():
    opt = argparse.Namespace(nc_im=4, not_cuda=True)
    g = torch.Generator().manual_seed(0)
    for h, w in ((37, 45), (25, 29)):
        x = torch.rand(1, 4, h, w, generator=g) * 2 - 1
        for scale in (0.75, 0.7654, 1 / 0.7654, 1.0, 250 / 622):
            ref = RI.imresize(x, scale, opt)
            assert torch.equal(imresize_reference(x, scale), ref), (h, w, scale)


def test_pyramid_matches_adjust_scales2image(tmp_path):
    cfg = SinGANConfig(max_size=60, min_size=20, resize="reference")
    rgba = _rgba(75, 52)
    opt = _opt(cfg, cfg.scale_factor, tmp_path)
    real_ = RF.np2torch(rgba, opt)
    real = RF.adjust_scales2image(real_, opt)
    ref_reals = RF.creat_reals_pyramid(real, [], opt)
    ours, spec = build_pyramid(rgba, cfg)
    assert torch.equal(np2torch(rgba), real_)
    assert (spec.stop_scale, spec.scale1) == (opt.stop_scale, opt.scale1)
    assert math.isclose(spec.scale_factor, opt.scale_factor, rel_tol=0, abs_tol=0)
    assert len(ours) == len(ref_reals)
    for a, b in zip(ours, ref_reals, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("niter", [3])
def test_two_scales_match_the_reference(tmp_path, niter):
    cfg = SinGANConfig(
        nfc=8,
        min_nfc=8,
        max_size=40,
        min_size=24,
        niter=niter,
        resize="reference",
        g_steps_mode="accumulate",
        adam_impl="loop",
    )
    reals, spec = build_pyramid(_rgba(), cfg)
    assert len(reals) >= 2
    opt = _opt(cfg, spec.scale_factor, tmp_path)
    seed = 7

    # the reference, as training.py::train runs its first two scales
    torch.manual_seed(seed)
    Gs, Zs, amps, in_s, prev, ref = [], [], [], 0, None, []
    for _ in range(2):
        with _quiet():
            D, G = RT.init_models(opt)
            if prev is not None:  # nfc unchanged: train() loads the previous scale's weights
                G.load_state_dict(prev[1])
                D.load_state_dict(prev[0])
            z, in_s, G = RT.train_single_scale(D, G, reals, Gs, Zs, in_s, amps, opt)
        prev = (copy.deepcopy(D.state_dict()), copy.deepcopy(G.state_dict()))
        ref.append((prev, z.clone(), float(opt.noise_amp)))
        RF.reset_grads(G, False)
        G.eval()
        Gs.append(G)
        Zs.append(z)
        amps.append(opt.noise_amp)

    # ours
    gen = torch.Generator().manual_seed(seed)
    frozen, prev_nets = Frozen(), None
    for n in range(2):
        r = train_scale(n, frozen, reals, cfg, spec.scale_factor, gen, prev_nets)
        prev_nets = (r.netD.state_dict(), r.netG.state_dict())
        (ref_D, ref_G), ref_z, ref_amp = ref[n]
        assert _max_diff(ref_G, r.netG.state_dict()) < TOL, f"scale {n}: generator differs"
        assert _max_diff(ref_D, r.netD.state_dict()) < TOL, f"scale {n}: critic differs"
        assert torch.allclose(ref_z.float(), r.z_opt, atol=TOL), f"scale {n}: z_opt differs"
        assert math.isclose(ref_amp, r.noise_amp, rel_tol=1e-5), f"scale {n}: noise_amp differs"
        # the weights moved: the comparison is not between two untrained initialisations
        _, untrained = init_models(cfg, n, torch.Generator().manual_seed(seed))
        assert _max_diff(untrained.state_dict(), r.netG.state_dict()) > 1e-3
        frozen.Gs.append(r.netG)
        frozen.Zs.append(r.z_opt)
        frozen.noise_amps.append(r.noise_amp)

"""FastGAN-4ch (baselines/fastgan.py, fastgan_nets.py, fastgan_lpips.py) and DiffAugment (baselines/diffaugment.py).

Tiny configurations (the `smoke` preset: 256 px, widths 8, batch 2) on real Kvasir-SEG
pairs; LPIPS runs with an explicitly random VGG backbone (no weights offline).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from baselines import common
from baselines.diffaugment import DiffAugment, rand_cutout, rand_translation
from baselines.fastgan import FastGANSampler, FastGANTrainer
from baselines.fastgan_lpips import LPIPSWeightsError, build_lpips
from baselines.fastgan_nets import SMALL, Discriminator, Generator, crop_part, real_pair
from singanseg.ckpt import read_meta
from singanseg.typed import ConfigError, replace

torch.set_num_threads(1)


def smoke(**overrides):
    return common.make_config("fastgan", "smoke", overrides or None)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, kvasir_dir):
    """One uninterrupted smoke run (4 iterations) on the first 2 real pairs."""
    out = tmp_path_factory.mktemp("fastgan") / "run"
    model = common.train("fastgan", kvasir_dir, out, smoke(), seed=3, num_images=2, progress=False)
    return out, model


# ---------------------------------------------------------------- architecture


def test_generator_gives_full_size_and_128_outputs():
    c = smoke()
    g = Generator(c.ngf, c.nz)
    big, small = g(torch.randn(3, c.nz))
    assert big.shape == (3, 4, c.resolution, c.resolution)
    assert small.shape == (3, 4, SMALL, SMALL)


def test_discriminator_logits_and_three_decoders():
    c = smoke()
    d = Discriminator(c.ndf, 4, c.decoder_nf)
    x = torch.rand(2, 4, c.resolution, c.resolution) * 2 - 1
    big, small = real_pair(x, c.resolution)
    assert big.shape[-1] == c.resolution and small.shape[-1] == SMALL
    logits = d(big, small)
    assert logits.dim() == 1 and logits.numel() % 2 == 0  # per-sample maps of both paths
    logits_r, recs = d(big, small, part=1)
    assert logits_r.shape == logits.shape
    assert [r.shape for r in recs] == [(2, 4, SMALL, SMALL)] * 3
    assert all(r.abs().max() <= 1 for r in recs)  # tanh outputs


def test_crop_part_quadrants_tile_the_image():
    x = torch.arange(2 * 4 * 8 * 8, dtype=torch.float32).view(2, 4, 8, 8)
    top = torch.cat([crop_part(x, 0), crop_part(x, 1)], dim=3)
    bottom = torch.cat([crop_part(x, 2), crop_part(x, 3)], dim=3)
    assert torch.equal(torch.cat([top, bottom], dim=2), x)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"resolution"):
        replace(smoke(), {"resolution": 128}, "fastgan")
    with pytest.raises(ConfigError, match=r"ngf"):
        replace(smoke(), {"ngf": 6}, "fastgan")
    with pytest.raises(ConfigError, match=r"policy.*colour"):
        replace(smoke(), {"policy": "colour,translation"}, "fastgan")


# ---------------------------------------------------------------- DiffAugment


def _pair_batch(seed=0, b=4, s=32):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 4, s, s, generator=g) * 2 - 1
    x[:, 3] = torch.where(x[:, 3] > 0, 1.0, -1.0)  # a binary mask channel in [-1, 1]
    return x


def test_color_mask_aware_leaves_mask_untouched_default_does_not():
    x = _pair_batch()
    default = DiffAugment(x, "color", mask_aware=False, generator=torch.Generator().manual_seed(1))
    aware = DiffAugment(x, "color", mask_aware=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(aware[:, 3], x[:, 3])
    assert not torch.allclose(default[:, 3], x[:, 3])  # quirk 2: brightness/saturation/contrast hit the mask
    assert not torch.allclose(aware[:, :3], x[:, :3])  # colour still acts on RGB


def test_translation_moves_the_mask_with_the_image_in_both_modes():
    x = _pair_batch()
    for aware in (False, True):
        out = DiffAugment(x, "color,translation", mask_aware=aware, generator=torch.Generator().manual_seed(2))
        # Replay the draws: three colour draws of B values each, then the translation.
        g = torch.Generator().manual_seed(2)
        torch.rand(3 * x.shape[0], generator=g)
        expect = rand_translation(x[:, 3:], generator=g)
        if aware:
            assert torch.equal(out[:, 3:], expect)
        else:
            # the same shift of a colour-jittered mask: the padded border is zero in both
            assert (out[:, 3:][expect == 0] == 0).all() and not torch.equal(out[:, 3:], expect)


def _naive_shift(img, dy, dx):
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    for i in range(h):
        for j in range(w):
            if 0 <= i + dy < h and 0 <= j + dx < w:
                out[:, i, j] = img[:, i + dy, j + dx]
    return out


def test_rand_translation_is_a_zero_filled_shift_within_ratio():
    x = _pair_batch(b=3, s=16) + 2  # no zeros in the input, so padding shows
    out = rand_translation(x, 0.125, generator=torch.Generator().manual_seed(4))
    s = int(16 * 0.125 + 0.5)
    for b in range(3):
        matches = [(dy, dx) for dy in range(-s, s + 1) for dx in range(-s, s + 1) if torch.equal(_naive_shift(x[b], dy, dx), out[b])]
        assert matches, f"sample {b} is not a shift within +-{s}"


def test_rand_cutout_zeroes_one_box_of_at_most_ratio_size():
    x = _pair_batch(b=6, s=16) + 2
    out = rand_cutout(x, 0.5, generator=torch.Generator().manual_seed(5))
    for b in range(6):
        zero = (out[b] == 0).all(dim=0)
        assert (out[b][:, ~zero] == x[b][:, ~zero]).all()
        rows, cols = zero.any(dim=1).nonzero(), zero.any(dim=0).nonzero()
        assert zero.sum() == len(rows) * len(cols)  # one rectangle
        assert 0 < len(rows) <= 8 and 0 < len(cols) <= 8


# ---------------------------------------------------------------- losses and training


def test_reconstruction_uses_the_mask_only_when_mask_aware():
    c = smoke()
    real = _pair_batch(b=2, s=c.resolution)
    g = torch.Generator().manual_seed(0)
    recs = [torch.rand(2, 4, SMALL, SMALL, generator=g) * 2 - 1 for _ in range(3)]
    flipped = [torch.cat([r[:, :3], -r[:, 3:]], dim=1) for r in recs]
    for aware in (False, True):
        tr = FastGANTrainer(replace(c, {"mask_aware": aware}), torch.device("cpu"))
        a, b = tr.reconstruction_loss(recs, real, 2), tr.reconstruction_loss(flipped, real, 2)
        assert torch.isfinite(a) and a > 0
        assert (a != b) == aware  # quirk 1: the paper's loss never sees the mask channel


def test_step_on_real_pairs_has_finite_losses_and_updates_ema(kvasir_dir):
    c = smoke()
    data, _ = common.load_dataset(kvasir_dir, c.resolution, num_images=2)
    torch.manual_seed(0)
    tr = FastGANTrainer(c, torch.device("cpu"))
    rng = torch.Generator().manual_seed(0)
    before = [p.detach().clone() for p in tr.nets["G_ema"].parameters()]
    losses = tr.step(data, 0, rng)
    assert set(losses) >= {"loss_d_real", "loss_d_fake", "loss_rec", "loss_g"}
    assert all(np.isfinite(v) for v in losses.values())
    for e0, p, e1 in zip(before, tr.nets["G"].parameters(), tr.nets["G_ema"].parameters(), strict=True):
        torch.testing.assert_close(e1, c.ema_decay * e0 + (1 - c.ema_decay) * p.detach())


def test_sampling_gives_binary_masks_of_the_right_size(trained):
    out, model = trained
    c = model.config
    pairs = model.sample(3, seed=1)
    side = c.sample_size or c.resolution
    assert len(pairs) == 3
    for image, mask in pairs:
        assert image.shape == (side, side, 3) and image.dtype == np.uint8
        assert mask.shape == (side, side) and set(np.unique(mask)) <= {0, 255}
    meta = read_meta(out, common.MODEL)
    assert meta["config"]["weights"] == "random"
    assert "random" in meta["sampler"]["lpips_backbone"]  # provenance of the LPIPS loss


def test_sample_size_upsamples_like_the_paper(trained):
    out, _ = trained
    model = common.load(out)
    net = FastGANSampler(replace(model.config, {"sample_size": 512}))
    net.load_state_dict(model.net.state_dict())
    net.eval()
    z = net.latent(1, torch.Generator().manual_seed(0))
    big = net(z)
    assert big.shape[-1] == 512
    torch.testing.assert_close(big[..., ::2, ::2], model.net(z))  # nearest x2 of the 256 output


def test_reload_samples_identically_with_the_same_seed(trained):
    out, _ = trained
    a, b = common.load(out), common.load(out)
    x, y = a.generate(3, seed=7), b.generate(3, seed=7)
    assert torch.equal(x, y)
    assert not torch.equal(x, a.generate(3, seed=8))
    # a sample depends on its own latent row only (batch-1 BN, per-sample noise seeds)
    z = a.net.latent(3, torch.Generator().manual_seed(9))
    torch.testing.assert_close(a.net(z)[1:2], a.net(z[1:2]))


def test_running_bn_sampling_mode(trained):
    out, model = trained
    net = FastGANSampler(replace(model.config, {"sample_bn": "running"}))
    net.load_state_dict(model.net.state_dict())
    net.eval()
    z = net.latent(2, torch.Generator().manual_seed(0))
    x = net(z)
    assert x.shape == model.net(z).shape and not torch.equal(x, model.net(z))
    torch.testing.assert_close(net(z)[1:], net(z[1:]))


def test_resume_from_checkpoint_matches_uninterrupted(trained, kvasir_dir, tmp_path):
    out_full, _ = trained
    out = tmp_path / "resumed"
    assert common.train("fastgan", kvasir_dir, out, smoke(), seed=3, num_images=2, progress=False, stop_at=2) is None
    assert read_meta(out, common.CHECKPOINT)["iteration"] == 2
    common.train("fastgan", kvasir_dir, out, smoke(), seed=3, num_images=2, progress=False)
    full, resumed = load_file(str(out_full / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert full.keys() == resumed.keys()
    for k in full:
        torch.testing.assert_close(resumed[k], full[k], rtol=0, atol=0, msg=k)


# ---------------------------------------------------------------- LPIPS weights


def test_lpips_refuses_without_imagenet_weights(tmp_path):
    missing = tmp_path / "nope" / "vgg16.pth"
    with pytest.raises(LPIPSWeightsError, match="nope/vgg16.pth.*not found"):
        build_lpips("imagenet", str(missing))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a state dict")
    with pytest.raises(LPIPSWeightsError, match="junk.pth"):
        build_lpips("imagenet", str(junk))
    with pytest.raises(LPIPSWeightsError, match="nope/vgg16.pth"):
        FastGANTrainer(replace(smoke(), {"weights": "imagenet", "weights_path": str(missing)}), torch.device("cpu"))


def test_lpips_loads_a_vgg16_state_dict_file(tmp_path):
    rand, _ = build_lpips("random")
    g = torch.Generator().manual_seed(0)
    state = {}
    for s in range(1, 6):
        for name, t in getattr(rand.net, f"slice{s}").state_dict().items():
            state[f"features.{name}"] = torch.randn(t.shape, generator=g)
    path = tmp_path / "vgg16.safetensors"
    save_file(state, str(path))
    model, prov = build_lpips("imagenet", str(path))
    assert torch.equal(getattr(model.net.slice1, "0").weight, state["features.0.weight"])
    assert torch.equal(getattr(model.net.slice5, "28").bias, state["features.28.bias"])
    assert "sha256" in prov["lpips_backbone"] and str(path) in prov["lpips_backbone"]
    del state["features.28.bias"]
    save_file(state, str(tmp_path / "partial.safetensors"))
    with pytest.raises(LPIPSWeightsError, match="features.28.bias"):
        build_lpips("imagenet", str(tmp_path / "partial.safetensors"))

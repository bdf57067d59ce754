"""Progressive GAN: every resolution step, the fade-in, the authors' schedule, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.common import load, make_config, train
from baselines.progan import Discriminator, Generator, ProGANConfig, ProGANTrainer, schedule
from singanseg.typed import ConfigError

TINY = ProGANConfig(resolution=256, channel=8, z_dim=8)


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return Generator(TINY).eval(), Discriminator(TINY).eval()


@pytest.mark.parametrize("step", range(1, 7))
def test_every_step_has_the_right_shapes(nets, step):
    g, d = nets
    z = torch.randn(2, TINY.z_dim)
    size = 4 * 2**step
    for alpha in (0.0, 0.5, 1.0):
        with torch.no_grad():
            x = g(z, step, alpha)
            assert x.shape == (2, 4, size, size)
            assert d(x, step, alpha).shape == (2, 1)


@pytest.mark.parametrize("step", range(2, 7))
def test_fade_in_mixes_the_previous_and_the_new_path(nets, step):
    g, d = nets
    z = torch.randn(3, TINY.z_dim)
    with torch.no_grad():
        old, new = g(z, step, 0.0), g(z, step, 1.0)
        # alpha 0 is the previous step's output, upsampled: the new layer contributes nothing
        prev = F.interpolate(
            g(z, step - 1, 1.0), scale_factor=2, mode="bilinear", align_corners=False
        )
        torch.testing.assert_close(old, prev)
        assert not torch.allclose(old, new)
        for alpha in (0.25, 0.7):
            torch.testing.assert_close(
                g(z, step, alpha), (1 - alpha) * old + alpha * new, rtol=1e-5, atol=1e-5
            )
        x = torch.randn(3, 4, 4 * 2**step, 4 * 2**step)
        # the critic at alpha 0 reads the downsampled input through the previous step's path
        small = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        torch.testing.assert_close(d(x, step, 0.0), d(small, step - 1, 1.0), rtol=1e-5, atol=1e-5)


def _authors_counters(config, n):
    """train_4ch.py's loop counters, written out as the authors' code runs them."""
    step, iteration, out = config.init_step, 0, []
    p = config.total_iter // 6
    for _ in range(n):
        alpha = min(1, (2 / p) * iteration)
        if iteration > p:
            alpha, iteration, step = 0, 0, step + 1
            if step > 6:
                alpha, step = 1, 6
        iteration += 1
        out.append((step, alpha))
    return out


def test_schedule_follows_the_authors_counters():
    config = ProGANConfig(total_iter=120)  # phases of 20 (+1) iterations
    ours = [schedule(i, config) for i in range(130)]
    for (s1, a1), (s2, a2) in zip(ours, _authors_counters(config, 130), strict=True):
        assert s1 == s2 and math.isclose(a1, a2)
    steps = [s for s, _ in ours]
    assert steps[0] == 1 and steps[-1] == 6 and sorted(steps) == steps
    # alpha reaches 1 half-way through the phase
    p = config.total_iter // 6
    assert ours[p // 2][1] == 1.0 and ours[p // 2 - 1][1] < 1.0


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="progan.resolution: must be a power of 2"):
        make_config("progan", "smoke", {"resolution": 48}).validate("progan")
    with pytest.raises(ConfigError, match="progan.init_step: must be in 1..3"):
        make_config("progan", "smoke", {"init_step": 4}).validate("progan")


def test_one_step_losses_finite_and_ema_moves(kvasir_dir):
    from baselines.data import load_dataset
    from baselines.progan import load_resolution

    config = make_config("progan", "smoke")
    data, _ = load_dataset(kvasir_dir, load_resolution(config), num_images=4)
    torch.manual_seed(0)
    tr = ProGANTrainer(config, torch.device("cpu"))
    before = [p.clone() for p in tr.G_ema.parameters()]
    rng = torch.Generator().manual_seed(0)
    for it in (0, config.phase_iter() + 3):  # one at 8 px, one fading into 16 px
        losses = tr.step(data[: config.batch_size], it, rng)
        assert all(np.isfinite(v) for v in losses.values()), losses
        assert {"loss_d", "loss_g", "grad_penalty"} <= set(losses)
    moved = [not torch.equal(a, b) for a, b in zip(before, tr.G_ema.parameters(), strict=True)]
    assert any(moved)
    # EMA with decay 0.999 stays much closer to its start than the generator itself
    d_ema = sum((a - b).abs().sum() for a, b in zip(before, tr.G_ema.parameters(), strict=True))
    d_g = sum((a - b).abs().sum() for a, b in zip(before, tr.G.parameters(), strict=True))
    assert d_ema < d_g


def test_train_sample_reload(tmp_path, kvasir_dir):
    config = make_config("progan", "smoke", {"total_iter": 12, "checkpoint_every": 6})
    model = train(
        "progan", kvasir_dir, tmp_path / "m", config, seed=2, num_images=4, progress=False
    )
    assert model.meta["sampler"]["step"] == config.max_step
    pairs = model.sample(3, seed=5)
    assert len(pairs) == 3
    for image, mask in pairs:
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
        assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 255}
    again = load(tmp_path / "m").sample(3, seed=5)
    for (i1, m1), (i2, m2) in zip(pairs, again, strict=True):
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(m1, m2)
    other = load(tmp_path / "m").sample(3, seed=6)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(pairs, other, strict=True))


def test_resume_matches_uninterrupted(tmp_path, kvasir_dir):
    from singanseg.ckpt import load_state

    config = make_config("progan", "smoke", {"total_iter": 9, "checkpoint_every": 4})
    kw = dict(config=config, seed=1, num_images=4, progress=False)
    train("progan", kvasir_dir, tmp_path / "a", **kw)
    train("progan", kvasir_dir, tmp_path / "b", stop_at=4, **kw)
    train("progan", kvasir_dir, tmp_path / "b", **kw)
    a, _ = load_state(tmp_path / "a", "checkpoint")
    b, meta = load_state(tmp_path / "b", "checkpoint")
    assert meta["iteration"] == 9
    for k in a:
        assert torch.equal(a[k], b[k]), k

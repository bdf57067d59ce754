"""DCGAN: architecture sizes, init, the epoch-500 generation point, training on real pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.common import load, make_config, train
from baselines.dcgan import (
    DCGANConfig,
    DCGANTrainer,
    Discriminator,
    Generator,
    generation_iteration,
    iterations_per_epoch,
    total_iterations,
)
from singanseg.typed import ConfigError


def test_shapes_and_paper_widths():
    c = DCGANConfig()
    g, d = Generator(c), Discriminator(c)
    z = g.latent(2, torch.Generator().manual_seed(0))
    assert z.shape == (2, c.nz, 1, 1)
    x = g(z)
    assert x.shape == (2, 4, 64, 64) and x.abs().max() <= 1
    p = d(x)
    assert p.shape == (2,) and ((p > 0) & (p < 1)).all()
    assert g.main[0].weight.shape == (c.nz, c.ngf * 8, 4, 4)
    assert d.main[0].weight.shape == (c.ndf, 4, 4, 4)


def test_init_is_normal_002():
    torch.manual_seed(0)
    tr = DCGANTrainer(DCGANConfig(), torch.device("cpu"))
    w = tr.G.main[0].weight.detach()
    assert abs(float(w.std()) - 0.02) < 0.002 and abs(float(w.mean())) < 0.002
    bn = tr.D.main[3].requires_grad_(False)
    assert abs(float(bn.weight.mean()) - 1) < 0.01 and float(bn.bias.abs().max()) == 0


def test_generation_point_is_after_epoch_index_500():
    c = DCGANConfig()
    per = iterations_per_epoch(c, 1000)
    assert per == 1000 // 8
    assert generation_iteration(c, 1000) == 501 * per
    assert total_iterations(c, 1000) == c.niter * per
    last = DCGANConfig(generate_from_epoch=None)
    assert generation_iteration(last, 1000) == total_iterations(last, 1000)
    with pytest.raises(ConfigError, match="generate_from_epoch"):
        DCGANConfig(niter=10).validate("dcgan")
    with pytest.raises(ConfigError, match="dcgan.resolution"):
        DCGANConfig(resolution=128).validate("dcgan")


def test_model_is_frozen_at_the_generation_epoch(tmp_path, kvasir_dir):
    # 8 images, batch 8: one iteration per epoch; generate from epoch index 1 of 4
    config = make_config("dcgan", "smoke", {"niter": 4, "generate_from_epoch": 1, "batch_size": 8})
    model = train("dcgan", kvasir_dir, tmp_path / "m", config, num_images=8, progress=False)
    assert model.meta["iteration"] == 2
    from singanseg.ckpt import load_state

    ckpt, meta = load_state(tmp_path / "m", "checkpoint")
    assert meta["iteration"] == 4
    # the trained-on generator moved on after the snapshot
    g_last = ckpt["net.G.main.0.weight"]
    assert not torch.equal(g_last, model.net.main[0].weight)


def test_train_losses_finite_sample_and_reload(tmp_path, kvasir_dir):
    config = make_config("dcgan", "smoke")
    data_rng = torch.Generator().manual_seed(0)
    from baselines.data import load_dataset

    data, _ = load_dataset(kvasir_dir, 64, num_images=8)
    torch.manual_seed(0)
    tr = DCGANTrainer(config, torch.device("cpu"))
    losses = tr.step(data, 0, data_rng)
    assert all(np.isfinite(v) for v in losses.values()) and 0 < losses["d_x"] < 1

    model = train("dcgan", kvasir_dir, tmp_path / "m", config, seed=4, num_images=8, progress=False)
    pairs = model.sample(4, seed=1)
    for image, mask in pairs:
        assert image.shape == (64, 64, 3) and mask.shape == (64, 64)
        assert set(np.unique(mask)) <= {0, 255}
    again = load(tmp_path / "m").sample(4, seed=1)
    for (i1, m1), (i2, m2) in zip(pairs, again, strict=True):
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(m1, m2)
    assert not model.net.training  # generate.py samples in eval mode

"""LPIPS diversity: 0 for identical samples, > 0 otherwise; backbone weights and provenance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.metrics.features import image_index, load_rgb
from pipeline.metrics.inception import WeightsError
from pipeline.metrics.lpips_diversity import (
    BACKBONE_FILES,
    LPIPSOptions,
    _tensor,
    group_by_model,
    load_lpips,
    lpips_diversity,
)
from singanseg.io import InputError, write_png


@pytest.fixture(scope="module")
def model():
    return load_lpips("alex", "random")


@pytest.fixture(scope="module")
def crops(kvasir_dir):
    paths = list(image_index(kvasir_dir).values())[:3]
    return [load_rgb(p)[:96, :128].copy() for p in paths]


def test_group_by_model():
    assert group_by_model(["a_1", "a_0", "b_0", "dcgan_3", "x"]) == {"a": ["a_0", "a_1"], "b": ["b_0"], "dcgan": ["dcgan_3"], "all": ["x"]}


def test_inputs_in_minus_one_one():
    t = _tensor(np.array([[[0, 255, 128]]], dtype=np.uint8))
    assert float(t.min()) == -1.0 and float(t.max()) == 1.0


def test_identical_samples_zero_distinct_positive(tmp_path, model, crops):
    m, prov = model
    d = tmp_path / "same"
    for n in range(3):
        write_png(d / "images" / f"p1_{n}.png", crops[0])
        write_png(d / "images" / f"p2_{n}.png", crops[1] if n else crops[2])
    r = lpips_diversity(d, options=LPIPSOptions(weights="random"), model=m, provenance=prov)
    rows = {x["model"]: x for x in r["per_model"]}
    assert rows["p1"]["diversity"] == 0.0 and rows["p1"]["pairs"] == 3
    assert rows["p2"]["diversity"] > 0.0
    assert r["value"] == pytest.approx((rows["p1"]["diversity"] + rows["p2"]["diversity"]) / 2)
    assert r["weights"] == "random-init"


def test_to_training_image(tmp_path, model, crops):
    m, prov = model
    real, fake = tmp_path / "real", tmp_path / "fake"
    big = np.repeat(np.repeat(crops[0], 2, axis=0), 2, axis=1)  # the training image at 2x
    write_png(real / "images" / "p1.png", big)
    write_png(fake / "images" / "p1_0.png", crops[0])
    write_png(fake / "images" / "p1_1.png", crops[1])
    r = lpips_diversity(fake, real, LPIPSOptions(weights="random"), m, prov)
    assert 0 < r["to_training"] < r["per_model"][0]["diversity"] * 2
    write_png(fake / "images" / "q_0.png", crops[0])
    write_png(fake / "images" / "q_1.png", crops[0])
    with pytest.raises(InputError, match="no training image 'q'"):
        lpips_diversity(fake, real, LPIPSOptions(weights="random"), m, prov)


def test_bad_input(tmp_path, model, crops):
    m, prov = model
    write_png(tmp_path / "one" / "a_0.png", crops[0])
    with pytest.raises(InputError, match="at least 2 images"):
        lpips_diversity(tmp_path / "one", model=m, provenance=prov)
    write_png(tmp_path / "one" / "a_1.png", crops[0][:64].copy())
    with pytest.raises(InputError, match="differ in size"):
        lpips_diversity(tmp_path / "one", model=m, provenance=prov)


def test_pretrained_backbone_from_weights_dir(tmp_path):
    import torchvision

    with pytest.raises(WeightsError, match=BACKBONE_FILES["alex"]):
        load_lpips("alex", "pretrained", tmp_path)
    torch.manual_seed(7)
    ref = torchvision.models.alexnet(weights=None)
    torch.save(ref.state_dict(), tmp_path / BACKBONE_FILES["alex"])
    m, prov = load_lpips("alex", "pretrained", tmp_path)
    assert prov.weights == "pretrained" and str(tmp_path) in prov.source
    assert torch.equal(m.net.slice1[0].weight, ref.features[0].weight)
    assert torch.equal(getattr(m.net.slice5, "10").weight, ref.features[10].weight)
    # the v0.1 linear heads still come from the package, not from the random init
    heads = torch.load(__import__("lpips").__path__[0] + "/weights/v0.1/alex.pth", map_location="cpu", weights_only=True)
    assert torch.equal(m.lin0.model[1].weight, heads["lin0.model.1.weight"])


def test_tiny_samples_are_upsampled_and_say_so(tmp_path):
    import numpy as np

    from pipeline.metrics.lpips_diversity import LPIPSOptions, lpips_diversity
    from singanseg.io import write_png

    rng = np.random.default_rng(0)
    for n in range(3):  # 40x30 samples, like some of the smoke profile's SinGAN-Seg outputs
        write_png(tmp_path / "images" / f"m_{n}.png", rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    res = lpips_diversity(tmp_path / "images", options=LPIPSOptions(weights="random"))
    assert res["upsampled"] == ["30x40->64x85"] and res["value"] > 0
    with pytest.raises(RuntimeError):  # without it AlexNet's pooling runs out of pixels
        lpips_diversity(tmp_path / "images", options=LPIPSOptions(weights="random", min_side=0))

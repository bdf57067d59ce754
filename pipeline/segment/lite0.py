"""EfficientNet-Lite0 ImageNet weights for the segmentation encoder (issue 22 s1).

The loader lives in `singanseg.lite0` (the style transfer's `efficientnet_lite0` variant uses it
too, and singanseg never imports pipeline/); this module keeps the names the segment code uses.
"""

from __future__ import annotations

from singanseg.errors import WeightsError
from singanseg.lite0 import (
    ENCODER,
    PIP_LINE,
    SHA256,
    WEIGHTS_NAME,
    ScaleInput,
    checked_weights,
    classifier,
    load_encoder,
    load_reference,
    provenance,
    timm_state_dict,
    weights_path,
)

__all__ = ["ENCODER", "PIP_LINE", "SHA256", "WEIGHTS_NAME", "ScaleInput", "WeightsError", "checked_weights",
           "classifier", "load_encoder", "load_reference", "provenance", "timm_state_dict", "weights_path"]  # fmt: skip

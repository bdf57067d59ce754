"""SinGANConfig: the hyper-parameters of one SinGAN-Seg model, with the paper's defaults.

Every default is the authors' value (../shared/docs/paper.md section 1, table
"Hyper-parameters"; singan_seg_polyp/config.py, which equals tamarott/SinGAN
config.py@38759f7, run with `--nc_im 4 --nc_z 4` as in singan-seg `train.sh`). Options that
differ from the authors' code are named and documented in docs/deviations/singan.md; each
has the paper's behaviour available.

Presets are params.yaml's profiles (singanseg/profiles.py): `paper` (the authors' training
run) and `smoke` (tiny sizes for a 2-core CPU; exercises the plumbing, reproduces nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

from singanseg.profiles import ProfilePresets
from singanseg.typed import ConfigError, from_mapping, to_mapping


@dataclass(frozen=True)
class SinGANConfig:
    # channels: RGB + mask (paper.md s1, train.sh --nc_im 4 --nc_z 4)
    nc_im: int = 4
    nc_z: int = 4
    # network (paper.md s1; config.py --nfc/--min_nfc/--ker_size/--num_layer/--padd_size)
    nfc: int = 32
    min_nfc: int = 32
    nfc_max: int = 128  # training.py::train: min(nfc_init * 2**floor(scale/4), 128)
    nfc_growth_every: int = 4  # ... 2**floor(scale / 4)
    ker_size: int = 3
    num_layer: int = 5
    stride: int = 1
    padd_size: int = 0
    # pyramid (paper.md s1; functions.py::adjust_scales2image)
    scale_factor: float = 0.75
    noise_amp: float = 0.1
    min_size: int = 25
    max_size: int = 250
    # optimisation (paper.md s1; config.py, training.py::train_single_scale)
    niter: int = 2000
    gamma: float = 0.1
    lr_milestone: int = 1600  # MultiStepLR(milestones=[1600])
    lr_g: float = 5e-4
    lr_d: float = 5e-4
    beta1: float = 0.5
    Gsteps: int = 3
    Dsteps: int = 3
    lambda_grad: float = 0.1
    alpha: float = 10.0
    # Named options (docs/deviations/singan.md). The paper's code is `accumulate`: three G
    # passes, `netG.zero_grad()` in each, one `optimizerG.step()` after the loop
    # (paper.md s1 "Compatibility fixes"). `per_step` is original SinGAN's step per pass.
    g_steps_mode: Literal["accumulate", "per_step"] = "accumulate"
    # `reference`: SinGAN/imresize.py's MATLAB bicubic through uint8, bit for bit;
    # `torch`: the same kernel and taps as float matrices, no uint8 quantisation (faster).
    resize: Literal["reference", "torch"] = "torch"
    # `loop`: torch.optim.Adam's per-tensor for-loop, as the authors' code runs it;
    # `fused`: the same update in one fused kernel over all tensors (torch >= 2.4 on CPU and
    # CUDA); it differs by float rounding only (~1e-7 relative per step, tested) and saves a
    # few per cent of an iteration at the coarse scales (benchmarks/README_singan.md).
    adam_impl: Literal["loop", "fused"] = "fused"
    # The authors' loop runs G(Z_opt) for a sample image every 500 iterations and at the
    # last one (training.py::train_single_scale); in train mode that forward updates
    # BatchNorm running statistics, which the frozen coarser generators use in eval mode.
    # Kept (500) for fidelity; 0 switches it off.
    snapshot_every: int = 500
    # Input guard: larger inputs are refused rather than silently downscaled from a
    # gigapixel decode (issue 3, "Bad input").
    max_input_pixels: int = 50_000_000

    def validate(self, where: str = "config") -> None:
        # Every number finite first: `noise_amp=.inf` trained an all-NaN model, `lr_g=.nan`
        # failed deep inside torch without naming the key.
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{where}.{f.name}: must be a finite number, got {value}")
        positive = (
            "nc_im",
            "nc_z",
            "nfc",
            "min_nfc",
            "nfc_max",
            "nfc_growth_every",
            "ker_size",
            "num_layer",
            "stride",
            "min_size",
            "max_size",
            "niter",
            "Gsteps",
            "Dsteps",
            "max_input_pixels",
            "lr_milestone",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name}: must be >= 1, got {getattr(self, name)}")
        if self.nc_im != 4 or self.nc_z != 4:
            raise ConfigError(
                f"{where}.nc_im/nc_z: SinGAN-Seg trains on RGB + mask, 4 channels (got {self.nc_im}/{self.nc_z})"
            )
        if self.num_layer < 3:
            raise ConfigError(
                f"{where}.num_layer: needs head + body + tail, >= 3 (got {self.num_layer})"
            )
        if not 0.0 < self.scale_factor < 1.0:
            raise ConfigError(f"{where}.scale_factor: must be in (0, 1), got {self.scale_factor}")
        if self.min_size >= self.max_size:
            raise ConfigError(
                f"{where}.min_size: must be smaller than max_size ({self.min_size} >= {self.max_size})"
            )
        if self.min_size <= (self.ker_size - 1) * self.num_layer:
            raise ConfigError(
                f"{where}.min_size: {self.min_size} px is too small for {self.num_layer} layers of "
                f"{self.ker_size}x{self.ker_size} convolutions (the critic's map would be empty)"
            )
        for name in ("lr_g", "lr_d", "alpha", "lambda_grad", "noise_amp"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name}: must be >= 0, got {getattr(self, name)}")
        if self.padd_size < 0:
            raise ConfigError(f"{where}.padd_size: must be >= 0, got {self.padd_size}")
        # MultiStepLR multiplies the learning rate by gamma at lr_milestone: a decay factor
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"{where}.gamma: must be in (0, 1], got {self.gamma}")
        if not 0.0 <= self.beta1 < 1.0:
            raise ConfigError(f"{where}.beta1: must be in [0, 1), got {self.beta1}")
        if self.snapshot_every < 0:
            raise ConfigError(f"{where}.snapshot_every: must be >= 0, got {self.snapshot_every}")

    @property
    def pad(self) -> int:
        """Zero padding of noise and image inputs: (ker-1)*num_layer/2 (training.py::train_single_scale)."""
        return int(((self.ker_size - 1) * self.num_layer) / 2)

    def nfc_at(self, scale: int) -> tuple[int, int]:
        """(nfc, min_nfc) of `scale`: doubled every 4 scales up to 128 (training.py::train)."""
        growth = 2 ** (scale // self.nfc_growth_every)
        return min(self.nfc * growth, self.nfc_max), min(self.min_nfc * growth, self.nfc_max)


# profile name -> the model config of params.yaml's `singan.model` under that profile
# (`paper` = the base values = the defaults above; tests/test_profiles.py checks they agree).
PRESETS = ProfilePresets("singan", "model")


def preset(name: str, **overrides) -> SinGANConfig:
    """The config of preset `name` with `overrides` (keys named as the fields)."""
    if name not in PRESETS:
        raise ConfigError(f"profile: unknown profile {name!r} (known: {', '.join(PRESETS)})")
    return from_mapping(SinGANConfig, {**PRESETS[name], **overrides}, f"profile {name}")


def config_from_dict(data: dict, where: str = "model.json: config") -> SinGANConfig:
    """Strict: a key this version does not know means an incompatible checkpoint."""
    return from_mapping(SinGANConfig, data, where)


__all__ = ["PRESETS", "SinGANConfig", "config_from_dict", "preset", "to_mapping"]

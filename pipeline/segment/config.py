"""The `segment` section of params.yaml as frozen dataclasses, with the paper's defaults.

Sources: ../shared/docs/paper.md sections 3 (folds) and 5 (recipe, grids A and B);
`singan-polyp-aug-exp: 777_all_in_one_v1.py` (argparse defaults), `777_*.sh|.sbatch`
(epochs, batch sizes) and `999_*_fold_0_val_folds_1_2.sh` (grid B).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pipeline.segment.model import ModelParams
from singanseg.typed import ConfigError

Protocol = Literal["paper", "clean"]

# Grid A as the authors ran it (paper.md section 5, "Grid A"): 000 REAL; 111 FAKE_k with
# k = 1..5 without ST, with ST 1:1 (`_ST`) and with ST 1:1000 (`_ST_1to1000`);
# 222 REAL+FAKE_1, REAL+FAKE_1_ST_1to1000, REAL+FAKE_4_ST_1to1000.
PAPER_GRID_A = (
    "REAL",
    *(f"FAKE_{k}" for k in range(1, 6)),
    *(f"FAKE_{k}_ST1to1" for k in range(1, 6)),
    *(f"FAKE_{k}_ST1to1000" for k in range(1, 6)),
    "REAL+FAKE_1",
    "REAL+FAKE_1_ST1to1000",
    "REAL+FAKE_4_ST1to1000",
)


@dataclass(frozen=True)
class PathParams:
    real: str = "data/real"  # data stage: images/, masks/, manifest.csv
    folds: str = "data/folds.csv"  # id,fold; the paper's sequential 3-way split (paper.md section 3)
    synthetic: str = "synthetic"  # generate / stylize / baselines outputs
    # the SinGAN-Seg sample variant: gen_start_scale 0, as every segmentation run
    # (paper.md section 1, "Sampling"; CSV names FAKE_scale_0_*)
    singan_variant: str = "gss0"
    out: str = "metrics/segmentation"


# the SinGAN-Seg sets the grids read: "singan" (FAKE_k, no style transfer) and
# "singan_st<c>to<s>" (FAKE_k_ST<c>to<s>, grid B's FAKE); pipeline/segment/experiments.py
SINGAN_SET = re.compile(r"^singan(?:_st\d+to\d+)?$")


@dataclass(frozen=True)
class ExternalSyntheticParams:
    """Issue 24, our option: SinGAN-Seg sets read from folders outside the pipeline instead of
    synthetic/<set>/<singan_variant>/, e.g. the authors' released 10,000 pairs (paper.md s1,
    "Released artefacts"), so grids A and B run on their synthetic data without any generator
    of ours (pipeline/segment/external.py; docs/deviations/authors.md)."""

    # set -> folder, e.g. {singan_st1to1000: /data/singan-seg-10k}; {} = every set from the
    # generate/stylize stages (the default, as the paper's pipeline)
    folders: dict[str, str] = field(default_factory=dict)
    # "ours": images/<real id>_<n>.png + masks/; "authors": chk_id_<id>_gen_scale_<s>_<n>_img[_ST].png +
    # ..._mask.png, <id> = natural-sort position of the real name (paper.md s1, s3); "auto": by the names
    naming: Literal["auto", "ours", "authors"] = "auto"
    # authors' naming: the gen_scale_<s> files taken; 0 = every segmentation run (paper.md s1, "Sampling")
    gen_start_scale: int = 0

    def validate(self, where: str) -> None:
        for name in self.folders:
            if not SINGAN_SET.match(name):
                raise ConfigError(
                    f"{where}.folders.{name}: not a SinGAN-Seg set the grids read (singan, singan_st<c>to<s>, "
                    f"e.g. singan_st1to1000)"
                )
        if self.gen_start_scale < 0:
            raise ConfigError(f"{where}.gen_start_scale: must be >= 0, got {self.gen_start_scale}")


@dataclass(frozen=True)
class TrainParams:
    epochs: int = 300  # data-rich: 777_*.sbatch --num_epochs 300 (paper.md section 5)
    batch_size: int = 8  # 777_all_in_one_v1.py --bs 8
    val_batch_size: int = 1  # --val_bs 1
    img_size: int = 128  # --img_size 128 ("new experiments with 128")
    pyra_size: int | None = 256  # PYRA loader's nearest resize (grid size 256) before the 128 resize
    lr: float = 1e-4  # --lr 0.0001
    lr_after: float = 1e-5  # set by hand when epoch == --lr_change_point
    lr_change_epoch: int = 50  # --lr_change_point 50: epochs 51.. use lr_after
    # --weight_decay 1e-5 is parsed but never given to Adam by the authors: 0 is the paper
    weight_decay: float = 0.0
    # "smp_losses": smp.losses.DiceLoss (the current API; a batch without any polyp pixel
    # adds 0 loss); "smp_utils": the removed smp.utils DiceLoss formula, exact (docs/deviations/segment.md)
    dice_loss: Literal["smp_losses", "smp_utils"] = "smp_losses"
    num_workers: int = 0
    device: str = "auto"  # auto = cuda when available
    # Issue 22 s4, our option: under the `clean` protocol every training set of a grid trains
    # exactly this many optimiser steps (so REAL, FAKE and REAL+FAKE at one N are compared at
    # one training length, not at epochs over sets of 5 and 55 images); None = the paper's
    # epochs under both protocols. The `paper` protocol always keeps the paper's epochs.
    clean_steps: int | None = None
    # validate (and select) every this many epochs and after the last; 1 = the paper's every epoch
    val_every: int = 1
    # "paper": the authors' albumentations pipeline (pipeline/segment/data.py); "none": training
    # images only resized as validation's, our option for budgets of a few epochs, where the
    # paper's strong augmentation slows learning (measured: benchmarks/README.md)
    augmentation: Literal["paper", "none"] = "paper"
    # "dice": the paper's soft Dice alone (`dice_loss` says which formula); "dice_ce": our
    # option, the same Dice plus the pixel-wise cross-entropy of the two classes, which gives
    # useful gradients from the first steps, where Dice alone is flat (measured at the cpu
    # profile's few epochs: benchmarks/README.md, "UNet++ learning curves")
    loss: Literal["dice", "dice_ce"] = "dice"
    # tensor memory layout of the network and its inputs: "channels_last" runs the same
    # arithmetic ~1.4x faster on CPU (oneDNN's depthwise convolutions; benchmarks/README.md),
    # equal up to float rounding; "contiguous" (NCHW) is PyTorch's default and the authors'
    memory_format: Literal["contiguous", "channels_last"] = "contiguous"

    def validate(self, where: str) -> None:
        if self.clean_steps is not None and self.clean_steps < 1:
            raise ConfigError(f"{where}.clean_steps: must be >= 1 or null, got {self.clean_steps}")
        if self.augmentation not in ("paper", "none"):
            raise ConfigError(f"{where}.augmentation: one of 'paper', 'none', got {self.augmentation!r}")
        if self.loss not in ("dice", "dice_ce"):
            raise ConfigError(f"{where}.loss: one of 'dice', 'dice_ce', got {self.loss!r}")
        if self.memory_format not in ("contiguous", "channels_last"):
            raise ConfigError(f"{where}.memory_format: one of 'contiguous', 'channels_last', got {self.memory_format!r}")
        for key in ("epochs", "batch_size", "val_batch_size", "img_size", "val_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: must be >= 1, got {getattr(self, key)}")


@dataclass(frozen=True)
class GridAParams:
    experiments: tuple[str, ...] = PAPER_GRID_A
    folds: tuple[int, ...] = (0, 1, 2)  # each fold is the held-out test fold once


@dataclass(frozen=True)
class GridBParams:
    # REAL: the first N real of the train fold; FAKE: 10 SinGAN-Seg samples (ST 1:1000) per
    # one of them; REAL+FAKE: both (our addition: no such run in the authors' code);
    # <GAN> / REAL+<GAN>: a baseline GAN trained on the same first N (synthetic/<gan>/n<N>/,
    # 10 N samples), our addition: paper.md section 6 cannot tell whether the authors ran it
    kinds: tuple[str, ...] = ("REAL", "FAKE", "REAL+FAKE", "FASTGAN", "REAL+FASTGAN")
    n_values: tuple[int, ...] = (5, 10, 15, 20, 25, 30, 35, 40, 45, 50)  # 999_*.sh
    samples_per_image: int = 10  # FAKE_scale_0_num_img_10_ST_1to1000_selected_50
    style: str = "ST1to1000"  # the style-transfer ratio of the FAKE sets (paper.md section 2)
    train_fold: int = 0  # "fold_0_val_folds_1_2": train on fold 0, test on the others


@dataclass(frozen=True)
class SegmentParams:
    paths: PathParams = field(default_factory=PathParams)
    model: ModelParams = field(default_factory=ModelParams)
    train_rich: TrainParams = field(default_factory=TrainParams)  # grid A
    # grid B: 100 epochs, batch 2 (999_all_multiple_training.py via 999_*.sh)
    train_scarce: TrainParams = field(default_factory=lambda: TrainParams(epochs=100, batch_size=2))
    grid_a: GridAParams = field(default_factory=GridAParams)
    grid_b: GridBParams = field(default_factory=GridBParams)
    protocols: tuple[Protocol, ...] = ("paper", "clean")
    # clean protocol: this fraction of the training folds' real ids (the last ones, in
    # folds.csv order) becomes the validation set, SinGANs of those ids included
    clean_val_fraction: float = 0.1
    # extra test columns: name -> dataset folder (images/, masks/), e.g. CVC-ClinicDB (888_*.sh)
    extra_test: dict[str, str] = field(default_factory=dict)
    # issue 22 s3: every (grid, experiment, fold, protocol, N) trains once per seed (model
    # initialisation, augmentation and batch order); the authors ran one (paper.md section 5)
    seeds: tuple[int, ...] = (0,)
    # issue 24, our option: SinGAN-Seg sets from folders outside the pipeline (default: none)
    external_synthetic: ExternalSyntheticParams = field(default_factory=ExternalSyntheticParams)
    # issue 23 s2, our option: leave synthetic pairs whose mask is empty out of every training set
    # (SinGAN-Seg and baseline samples alike); false = the paper, which kept them
    drop_empty_synthetic: bool = False
    # grid A, first fold and seed: the predicted masks of this many test images are kept for
    # the report's predictions figure (issue 22 s2); 0 = none
    predictions: int = 4
    track: bool = True  # MLflow

    def validate(self, where: str) -> None:
        if not self.protocols:
            raise ConfigError(f"{where}.protocols: name at least one of 'paper', 'clean'")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"{where}.seeds: name one or more distinct seeds, got {list(self.seeds)}")
        if not 0 < self.clean_val_fraction < 1:
            raise ConfigError(f"{where}.clean_val_fraction: must be in (0, 1), got {self.clean_val_fraction}")

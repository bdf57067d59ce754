"""The `segment` section of params.yaml as frozen dataclasses, with the paper's defaults.

Sources: ../shared/docs/paper.md sections 3 (folds) and 5 (recipe, grids A and B);
`singan-polyp-aug-exp: 777_all_in_one_v1.py` (argparse defaults), `777_*.sh|.sbatch`
(epochs, batch sizes) and `999_*_fold_0_val_folds_1_2.sh` (grid B).
"""

from __future__ import annotations

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

    def validate(self, where: str) -> None:
        for key in ("epochs", "batch_size", "val_batch_size", "img_size"):
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
    seed: int = 0
    track: bool = True  # MLflow

    def validate(self, where: str) -> None:
        if not self.protocols:
            raise ConfigError(f"{where}.protocols: name at least one of 'paper', 'clean'")
        if not 0 < self.clean_val_fraction < 1:
            raise ConfigError(f"{where}.clean_val_fraction: must be in (0, 1), got {self.clean_val_fraction}")

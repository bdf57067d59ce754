"""The data stage's parameters (params.yaml `data`), apart from the stage, so that the
feasibility check, the plan and the report read them without importing the stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pipeline.data import kvasir
from singanseg.typed import ConfigError


@dataclass(frozen=True)
class PhantomParams:
    count: int = 24
    seed: int = 0


@dataclass(frozen=True)
class DataParams:
    # paper.md section 3: the 1000 HyperKvasir/Kvasir-SEG polyp images with expert masks
    source: Literal["phantom", "kvasir-seg", "folder"] = "kvasir-seg"
    folder: str | None = None  # for source: folder; holds images/ and masks/
    limit: int | None = None  # keep only the first N ids (natural-sort order); null = all
    folds: int = 3  # paper.md section 3: 3-fold cross-validation
    # paper.md section 3: `np.array_split` of the ids in natural-sort order into consecutive folds
    # (notebooks/generate_fold_csvs.ipynb); `shuffled` is our option (seeded permutation first)
    fold_mode: Literal["sequential", "shuffled"] = "sequential"
    fold_seed: int = 0
    phantom: PhantomParams = field(default_factory=PhantomParams)
    kvasir: kvasir.KvasirParams = field(default_factory=kvasir.KvasirParams)
    track: bool = True  # log the stage to MLflow

    def validate(self, where: str) -> None:
        if self.source == "folder" and not self.folder:
            raise ConfigError(f"{where}.folder: required when source is 'folder'")
        if self.folds < 1:
            raise ConfigError(f"{where}.folds: must be >= 1, got {self.folds}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"{where}.limit: must be >= 1 or null, got {self.limit}")

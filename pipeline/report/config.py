"""The report stage's parameters (params.yaml `report`), apart from the stage, so that its
figures and tables read them without importing the stage."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReportParams:
    metrics: str = "metrics"
    synthetic: str = "synthetic"
    real: str = "data/real"
    models: str = "models/singan"  # the cost table counts models and their training seconds
    averaging: str = "per_image"  # the paper's (smp.utils ValidEpoch) averaging; `micro` also in the CSVs
    sample_models: int = 3  # real images shown in the sample grids (paper Fig 4, 7)
    samples_per_model: int = 5
    digits: int = 3
    # the wall times (header and cost table): false leaves them out, so that a rerun writes
    # the same report byte for byte (the smoke profile: `make demo` on a fresh clone must
    # reproduce the committed report); the times stay in metrics/timings/ and MLflow
    timings: bool = True
    track: bool = True

"""Shared test set-up: offline switches, temporary caches, the real sample data.

The environment variables are the ones ../shared/docs/environment.md measured as needed
offline (HF_HUB_OFFLINE stops smp/timm from spending ~28 s retrying the hub).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="singanseg-tests-"))
for key, value in {
    "HF_HUB_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "MPLCONFIGDIR": str(_TMP / "mpl"),
    "TORCH_HOME": str(_TMP / "torch"),
    "MPLBACKEND": "Agg",
}.items():
    os.environ.setdefault(key, value)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SINGANSEG_SHARED_DATA", REPO.parent / "shared" / "data"))


def _shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not (path / "images").is_dir():
        pytest.skip(f"real sample data not found at {path} (set SINGANSEG_SHARED_DATA or place ../shared/data)")
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def kvasir_dir() -> Path:
    """200 real Kvasir-SEG pairs (CC BY 4.0; Jha et al. 2020, Borgli et al. 2020)."""
    return _shared("kvasir-seg-200")


@pytest.fixture(scope="session")
def cvc_dir() -> Path:
    """20 CVC-ClinicDB frames (research use only; Bernal et al. 2015)."""
    return _shared("cvc-clinicdb-20")


@pytest.fixture()
def mlflow_uri(tmp_path, monkeypatch) -> str:
    """A fresh SQLite MLflow store for one test."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri

"""The segment stage's results as one long frame: the report's tables and the headline metrics
(pipeline/results/headline.py) both aggregate from it, so a number means the same in both."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

SCORES = ("iou", "f1", "precision", "recall", "accuracy")
# the per-image CSVs' columns (issue 22 s2; run.py writes them, the report's claims read them);
# `dice` is the F1 score
PER_IMAGE_COLUMNS = ("grid", "experiment", "protocol", "fold", "n", "seed", "test_set", "image_id",
                     "iou", "dice", "precision", "recall", "accuracy")  # fmt: skip
MAIN_TEST = "test"  # the test_set name of the grid's own test fold(s); extra sets use their names
COLUMNS = ["grid", "experiment", "fold", "seed", "protocol", "averaging", "score", "value", "train_size",
           "best_epoch", "encoder", "encoder_weights"]  # fmt: skip


def load_segmentation(root: Path, grids: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One row per (grid, experiment, fold, seed, protocol, averaging, score) from metrics/segmentation.

    `grids` reads only those grids' folders (a stage reads only the folders it declares)."""
    root = Path(root)
    bases = [root] if grids is None else [root / g for g in grids]
    patterns = ("*/*/fold*.json", "*/*/*/fold*.json") if grids is None else ("*/fold*.json", "*/*/fold*.json")
    rows = []
    for path in [p for base in bases for pattern in patterns for p in sorted(base.glob(pattern))]:
        rec = json.loads(path.read_text())
        if "protocols" not in rec:  # fold<k>.timing.json (run.write_results) and other records
            continue
        for protocol, r in rec["protocols"].items():
            for averaging, scores in r["test"].items():
                for score, value in scores.items():
                    rows.append({
                        "grid": rec["grid"], "experiment": rec["experiment"], "fold": rec["fold"],
                        "seed": rec.get("seed", 0), "protocol": protocol, "averaging": averaging, "score": score, "value": value,
                        "train_size": r["train_size"], "best_epoch": r["best_epoch"],
                        "encoder": rec["provenance"].get("encoder", "?"),
                        "encoder_weights": rec["provenance"]["encoder_weights"],
                    })  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)

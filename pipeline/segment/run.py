"""One (experiment, fold): train under each protocol, select, test once, write the results.

Outputs (design notes, "segment" row; dvc.yaml declares them):
- `<out>/<experiment>/fold<F>.json`: per protocol the five scores in both averaging modes
  on the test set (and on each extra test set), best epoch, epochs, training size, seed,
  the ids' folds, weights provenance;
- `<out>/<experiment>/fold<F>_curves/<protocol>.csv`: the per-epoch curves (`dvc plots`).
MLflow: one stage run `segment/<experiment>/fold<F>`, one child run per protocol carrying
the per-epoch metrics.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

from pipeline.segment.config import SegmentParams
from pipeline.segment.data import PairDataset
from pipeline.segment.experiments import ExperimentError, Splits, parse, resolve
from pipeline.segment.model import build_model, weights_provenance
from pipeline.segment.train import evaluate, fit, seed_everything
from singanseg.device import resolve_device
from singanseg.io import InputError, atomic_dir, list_pairs, write_text, write_timing
from singanseg.typed import to_mapping


def output_paths(params: SegmentParams, name: str, fold: int, root: str | Path = ".") -> tuple[Path, Path]:
    base = Path(root) / params.paths.out / name
    return base / f"fold{fold}.json", base / f"fold{fold}_curves"


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def run_protocol(splits: Splits, params: SegmentParams, on_epoch=None) -> dict[str, Any]:
    """Train, select on `splits.val`, then evaluate the selected weights on the test set(s) once."""
    exp = splits.experiment
    tp = params.train_scarce if exp.scarce else params.train_rich
    where = f"experiment {exp.name} (fold {splits.fold}, {splits.protocol})"
    train_ds = PairDataset(splits.train, tp.img_size, train=True, pyra_size=tp.pyra_size, seed=params.seed, name=f"{where}, train")
    val_ds = PairDataset(splits.val, tp.img_size, pyra_size=tp.pyra_size, name=f"{where}, val")
    test_ds = PairDataset(splits.test, tp.img_size, pyra_size=tp.pyra_size, name=f"{where}, test")
    seed_everything(params.seed)  # the same initial weights for every protocol and experiment
    model = build_model(params.model)
    t0 = time.time()
    result = fit(model, train_ds, val_ds, tp, seed=params.seed, on_epoch=on_epoch)
    device = resolve_device(tp.device)
    # the test set is touched here, once, after selection (for `paper` it was also the val set)
    test = evaluate(model, test_ds, tp.val_batch_size, device)
    extra = {}
    for extra_name, folder in params.extra_test.items():
        try:
            pairs = list_pairs(folder)
        except InputError as e:
            raise ExperimentError(f"segment.extra_test.{extra_name}: {e}") from None
        ds = PairDataset(pairs, tp.img_size, pyra_size=tp.pyra_size, name=f"{where}, extra test {extra_name}")
        extra[extra_name] = {"scores": evaluate(model, ds, tp.val_batch_size, device)["scores"], "size": len(ds)}
    return {
        "test": test["scores"],
        "extra_test": extra,
        "best_epoch": result.best_epoch,
        "best_val_iou": result.best_val_iou,
        "epochs": tp.epochs,
        "batch_size": tp.batch_size,
        "train_size": len(train_ds),
        "train_real_images": len(splits.train_real_ids),
        "val_size": len(val_ds),
        "test_size": len(test_ds),
        "validation": "test set (as the authors)" if splits.protocol == "paper" else "held out from the training folds",
        "val_is_test": sorted(result.val_ids_seen) == sorted(test["ids"]),
        "seconds": round(time.time() - t0, 1),
        "curves": result.curves,
    }


def run_experiment(name: str, fold: int, params: SegmentParams, root: str | Path = ".", profile: str | None = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything for one (experiment, fold); writes the JSON and the curves, returns the record.

    `extra` is merged into the record (the grid runner stores its input fingerprint there).
    """
    from pipeline.infra import mlflow_tracker as tracking

    exp = parse(name, params)
    # resolve every protocol first: missing inputs fail before any training starts
    splits = {p: resolve(name, fold, p, params, root) for p in params.protocols}
    json_path, curves_dir = output_paths(params, name, fold, root)
    provenance = {
        "encoder": params.model.encoder_name,
        "encoder_weights": weights_provenance(params.model),
    }
    record: dict[str, Any] = {
        "experiment": name,
        "grid": exp.grid,
        "fold": fold,
        "train_folds": next(iter(splits.values())).train_folds,
        "test_folds": next(iter(splits.values())).test_folds,
        "seed": params.seed,
        "profile": profile,
        "provenance": provenance,
        "model": to_mapping(params.model),
        "train": to_mapping(params.train_scarce if exp.scarce else params.train_rich),
        **(extra or {}),
        "protocols": {},
    }
    run_name = f"segment/{name}/fold{fold}"
    with tracking.stage_run("segment", params, run_name=run_name, profile=profile, provenance=provenance,
                            tags={"experiment": name, "fold": str(fold), "headline_protocol": params.protocols[0]},
                            enabled=params.track) as run:
        for protocol, sp in splits.items():
            if run is not None:
                with tracking.child_run(run, f"{run_name}/{protocol}", tags={"protocol": protocol}) as child:
                    res = run_protocol(sp, params, on_epoch=lambda row, c=child: tracking.log_metrics(
                        c, {k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"]))
                    final = {f"test.{m}.{k}": v for m, d in res["test"].items() for k, v in d.items()}
                    # issue 18: short names (the test per-image mean) for the UI's default columns;
                    # the stage run's are its first protocol's (tag headline_protocol)
                    short = {k: res["test"]["per_image"][k] for k in ("iou", "f1") if k in res["test"].get("per_image", {})}
                    tracking.log_metrics(child, {**final, **short, "best_epoch": res["best_epoch"]})
                    tracking.log_metrics(run, {f"{protocol}.{k}": v for k, v in final.items()})
                    if protocol == params.protocols[0]:
                        tracking.log_metrics(run, short)
            else:
                res = run_protocol(sp, params)
            record["protocols"][protocol] = res

    curves = {p: r.pop("curves") for p, r in record["protocols"].items()}
    with atomic_dir(curves_dir) as tmp:
        for protocol, rows in curves.items():
            (tmp / f"{protocol}.csv").write_text(_csv(rows), encoding="utf-8")
    write_results(json_path, record)
    return record


def write_results(json_path: Path, record: dict[str, Any]) -> None:
    """fold<k>.json without the protocols' wall `seconds`, which go to fold<k>.timing.json:
    the results folder's DVC hash must not depend on the clock (singanseg.io.TIMING_SUFFIX).
    `record` keeps them."""
    kept = {**record, "protocols": {p: {k: v for k, v in r.items() if k != "seconds"}
                                    for p, r in record["protocols"].items()}}  # fmt: skip
    write_timing(json_path, {"seconds": {p: r.get("seconds") for p, r in record["protocols"].items()}})
    write_text(json_path, json.dumps(kept, indent=2, sort_keys=False) + "\n")

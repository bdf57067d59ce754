"""One (experiment, fold, seed): train under each protocol, select, test once, write the results.

Outputs (design notes, "segment" row; dvc.yaml declares them), `<cell>` = `fold<F>_seed<S>`:
- `<out>/<experiment>/<cell>.json`: per protocol the five scores in both averaging modes
  on the test set (and on each extra test set), best epoch, epochs, training size, seed,
  the ids' folds, weights provenance;
- `<out>/<experiment>/<cell>_per_image.csv`: every test image's five scores, per protocol and
  test set (issue 22 s2: the rows the report's paired intervals are computed from);
- `<out>/<experiment>/<cell>_curves/<protocol>.csv`: the per-epoch curves (`dvc plots`).
MLflow: one stage run `segment/<experiment>/<cell>`, one child run per protocol carrying
the per-epoch metrics.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.segment.config import SegmentParams
from pipeline.segment.data import PairDataset
from pipeline.segment.experiments import ExperimentError, Splits, parse, resolve
from pipeline.segment.model import build_model, weights_provenance
from pipeline.segment.results import MAIN_TEST, PER_IMAGE_COLUMNS
from pipeline.segment.scores import POLYP_CHANNEL, THRESHOLD
from pipeline.segment.train import evaluate, fit, seed_everything
from singanseg.device import resolve_device
from singanseg.io import InputError, atomic_dir, list_pairs, write_png, write_text, write_timing
from singanseg.typed import to_mapping


def cell_name(fold: int, seed: int) -> str:
    return f"fold{fold}_seed{seed}"


def extra_tests(params: SegmentParams, grid: str) -> dict[str, str]:
    """The external test sets a cell of `grid` is scored on: grid A's only (issue 22 s5 asks
    for the data-rich models; grid B's N-image models would add cost and no table reads them)."""
    return dict(params.extra_test) if grid == "A" else {}


def writes_predictions(params: SegmentParams, grid: str, fold: int, seed: int) -> bool:
    """Whether this cell writes the predictions figure's PNGs: grid A's first fold and seed
    (issue 22 s2)."""
    return grid == "A" and fold == params.grid_a.folds[0] and seed == params.seeds[0] and params.predictions > 0


def output_paths(params: SegmentParams, name: str, fold: int, seed: int, root: str | Path = ".") -> tuple[Path, Path]:
    """(the record's JSON, the curves folder) of one (experiment, fold, seed); the per-image
    CSV is `per_image_path(json)`."""
    base = Path(root) / params.paths.out / name
    return base / f"{cell_name(fold, seed)}.json", base / f"{cell_name(fold, seed)}_curves"


def per_image_path(json_path: Path) -> Path:
    return json_path.with_name(json_path.stem + "_per_image.csv")


def predictions_dir(json_path: Path) -> Path:
    """`<cell>_predictions/<protocol>/<id>_{image,mask,pred}.png` (grid A, first fold and seed)."""
    return json_path.with_name(json_path.stem + "_predictions")


def per_image_rows(record: dict[str, Any], per_image: dict[str, dict[str, list[dict]]]) -> list[dict]:
    """Long-form rows of one record: {protocol: {test_set: [{image_id, iou, f1, ...}]}}."""
    rows = []
    for protocol, sets in per_image.items():
        for test_set, images in sets.items():
            for r in images:
                rows.append({
                    "grid": record["grid"], "experiment": record["experiment"], "protocol": protocol,
                    "fold": record["fold"], "n": record.get("n_real") or "", "seed": record["seed"],
                    "test_set": test_set, "image_id": r["image_id"],
                    **{c: round(r["f1" if c == "dice" else c], 6) for c in PER_IMAGE_COLUMNS[8:]},
                })  # fmt: skip
    return rows


def csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    # every key of every row, in first-seen order (epochs without validation lack the val_* keys)
    w = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)), restval="")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _predictions(model: torch.nn.Module, ds: PairDataset, k: int, device) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(id, the network's input image, true mask, predicted mask) of the first `k` test images,
    uint8 at the network's size: the report's predictions figure (issue 22 s2)."""
    out = []
    model.eval()
    with torch.no_grad():
        for i in range(min(k, len(ds))):
            x, y = ds[i]
            prob = model(x[None].to(device)).softmax(dim=1)[0, POLYP_CHANNEL].cpu()
            image = x.permute(1, 2, 0).clamp(0, 255).to(torch.uint8).numpy()
            out.append((ds.pairs[i].id, image, (y.numpy() * 255).astype(np.uint8),
                        ((prob > THRESHOLD).numpy() * 255).astype(np.uint8)))  # fmt: skip
    return out


def run_protocol(splits: Splits, params: SegmentParams, seed: int, on_epoch=None,
                 save_predictions: bool = False) -> dict[str, Any]:
    """Train, select on `splits.val`, then evaluate the selected weights on the test set(s) once.

    The result's `per_image` ({test_set: rows}) and `predictions` are popped by
    `run_experiment` into the CSV and the predictions folder."""
    exp = splits.experiment
    tp = params.train_scarce if exp.scarce else params.train_rich
    where = f"experiment {exp.name} (fold {splits.fold}, {splits.protocol}, seed {seed})"
    train_ds = PairDataset(splits.train, tp.img_size, train=tp.augmentation == "paper", pyra_size=tp.pyra_size, seed=seed,
                           name=f"{where}, train")  # fmt: skip
    val_ds = PairDataset(splits.val, tp.img_size, pyra_size=tp.pyra_size, name=f"{where}, val")
    test_ds = PairDataset(splits.test, tp.img_size, pyra_size=tp.pyra_size, name=f"{where}, test")
    seed_everything(seed)  # the same initial weights for every protocol and experiment of one seed
    model = build_model(params.model)
    t0 = time.time()
    steps = tp.clean_steps if splits.protocol == "clean" else None
    result = fit(model, train_ds, val_ds, tp, seed=seed, on_epoch=on_epoch, steps=steps)
    device = resolve_device(tp.device)
    # the test set is touched here, once, after selection (for `paper` it was also the val set)
    test = evaluate(model, test_ds, tp.val_batch_size, device, memory_format=tp.memory_format)
    predictions = _predictions(model, test_ds, params.predictions, device) if save_predictions else []
    extra, per_image = {}, {MAIN_TEST: test["per_image"]}
    for extra_name, folder in extra_tests(params, exp.grid).items():
        try:
            pairs = list_pairs(folder)
        except InputError as e:
            raise ExperimentError(f"segment.extra_test.{extra_name}: {e}") from None
        ds = PairDataset(pairs, tp.img_size, pyra_size=tp.pyra_size, name=f"{where}, extra test {extra_name}")
        ev = evaluate(model, ds, tp.val_batch_size, device, memory_format=tp.memory_format)
        extra[extra_name] = {"scores": ev["scores"], "size": len(ds)}
        per_image[extra_name] = ev["per_image"]
    return {
        "test": test["scores"],
        "extra_test": extra,
        "per_image": per_image,
        "predictions": predictions,
        "best_epoch": result.best_epoch,
        "best_val_iou": result.best_val_iou,
        "epochs": result.curves[-1]["epoch"],
        "steps": result.curves[-1]["steps"],
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
                   extra: dict[str, Any] | None = None, seed: int | None = None) -> dict[str, Any]:
    """Everything for one (experiment, fold, seed) (seed: the first of `params.seeds` if None);
    writes the JSON, the per-image CSV and the curves, returns the record.

    `extra` is merged into the record (the grid runner stores its input fingerprint there).
    """
    from pipeline.infra import mlflow_tracker as tracking

    exp = parse(name, params)
    # resolve every protocol first: missing inputs fail before any training starts
    splits = {p: resolve(name, fold, p, params, root) for p in params.protocols}
    seed = params.seeds[0] if seed is None else seed
    json_path, curves_dir = output_paths(params, name, fold, seed, root)
    predict = writes_predictions(params, exp.grid, fold, seed)
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
        "seed": seed,
        "n_real": exp.n_real,
        "profile": profile,
        "provenance": provenance,
        "model": to_mapping(params.model),
        "train": to_mapping(params.train_scarce if exp.scarce else params.train_rich),
        **(extra or {}),
        "protocols": {},
    }
    run_name = f"segment/{name}/{cell_name(fold, seed)}"
    with tracking.stage_run("segment", params, run_name=run_name, profile=profile, provenance=provenance,
                            tags={"experiment": name, "fold": str(fold), "seed": str(seed),
                                  "headline_protocol": params.protocols[0]},
                            enabled=params.track) as run:
        for protocol, sp in splits.items():
            if run is not None:
                with tracking.child_run(run, f"{run_name}/{protocol}", tags={"protocol": protocol}) as child:
                    res = run_protocol(sp, params, seed, save_predictions=predict, on_epoch=lambda row, c=child: tracking.log_metrics(
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
                res = run_protocol(sp, params, seed, save_predictions=predict)
            record["protocols"][protocol] = res

    curves = {p: r.pop("curves") for p, r in record["protocols"].items()}
    per_image = {p: r.pop("per_image") for p, r in record["protocols"].items()}
    predictions = {p: r.pop("predictions") for p, r in record["protocols"].items()}
    write_text(per_image_path(json_path), csv_text(per_image_rows(record, per_image)))
    if any(predictions.values()):
        with atomic_dir(predictions_dir(json_path)) as tmp:
            for protocol, items in predictions.items():
                for pid, image, truth, pred in items:
                    for what, a in (("image", image), ("mask", truth), ("pred", pred)):
                        write_png(tmp / protocol / f"{pid}_{what}.png", a)
    with atomic_dir(curves_dir) as tmp:
        for protocol, rows in curves.items():
            (tmp / f"{protocol}.csv").write_text(csv_text(rows), encoding="utf-8")
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

"""Headline numbers for `dvc metrics` / `dvc exp show`, and the long-form CSVs of `dvc plots`.

The stages' own outputs (metrics/quality/, metrics/segmentation/<grid>/) are cached folders;
DVC refuses an output inside another, so the small files DVC compares across runs live in
their own folder, `metrics/headline/`, uncached and committed to git as dvc.lock is (so
`dvc metrics diff HEAD~1` and every `dvc exp run` commit carry them):

    quality.json        {sifid: {<set>: v}, fid: {<set>: v}, kid: {<set>_k<K>: v}}  (quality stage)
    sifid_by_style.csv  SIFID per SinGAN-Seg set, by gen_start_scale and style transfer (plot)
    segment_<G>.json    {iou: {<protocol>: {<experiment>: v}}, dice: {...}}  (segment stage, grid G)
    segment_<G>.csv     the same numbers in long form, with N and kind for grid B (plots)
    curves_<G>.csv      the per-epoch validation IoU of every run, in long form (grid A: plot)
    brief_quality.json, brief_segment_<G>.json   the few numbers `dvc metrics show` and
                        `dvc exp show` print (dvc.yaml declares these as metrics; the full
                        JSONs above are plain uncached outs: `dvc metrics show FILE` reads them)

`<set>` is the synthetic set with `/` as `_` (`singan_st1to1000_gss0`, `fastgan_n2`): DVC joins
nested keys with `.` into the `dvc exp show` columns (`fid.singan_gss0`, `iou.paper.REAL`), so
no key holds a dot. Segmentation scores are the per-image means of the test set (the paper's
averaging, the report's default), averaged over folds as the report's grid A table; the
TRIVIAL reference rows stay in the report only. The CSVs carry a `series` column: the line
label of the custom template `.dvc/plots/series.json` (dvc.yaml, top-level `plots:`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

from pipeline.results.names import (  # the set and experiment names, parsed once
    GRID_B_EXP,
    SINGAN_SET,
)
from pipeline.segment.results import load_segmentation
from singanseg.io import write_text

HEADLINE_DIR = Path("metrics/headline")
AVERAGING = "per_image"  # the paper's averaging (smp.utils ValidEpoch), the report's default
SCORE_KEYS = {"iou": "iou", "f1": "dice"}  # results' score name -> headline key (F1 is the Dice score)


def key(set_name: str) -> str:
    """A synthetic set as a metrics key: `singan_st1to1000/gss0` -> `singan_st1to1000_gss0`."""
    return set_name.replace("/", "_").replace(".", "_")


def _num(v) -> float | None:
    return None if v is None or v == "" or (isinstance(v, float) and v != v) else float(v)


def _write_json(path: Path, data: dict) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return write_text(path, buf.getvalue())


# ------------------------------------------------------------------ quality


def quality_headline(summary: dict) -> dict:
    """SIFID, FID and KID per synthetic set from the quality stage's summary (pipeline/quality.py).

    FID: each set against its own reference images (SinGAN-Seg: its sources; a baseline: the
    first K reals); KID: the comparison at equal training size K (`gan_by_k`), one key per K."""
    out: dict = {"sifid": {}, "fid": {}, "kid": {}}
    for name, s in summary.get("sets", {}).items():
        for metric in ("sifid", "fid"):
            if (v := _num(s.get(metric))) is not None:
                out[metric][key(name)] = v
    for label, r in summary.get("gan_by_k", {}).items():  # "<set>@K<k>"
        name, _, k = label.rpartition("@K")
        if (v := _num(r.get("kid_mean"))) is not None:
            out["kid"][f"{key(name)}_k{k}"] = v
    return {m: d for m, d in out.items() if d}


SIFID_COLUMNS = ["set", "gen_start_scale", "style", "series", "sifid", "sifid_std"]


def sifid_rows(summary: dict) -> list[dict]:
    """One row per SinGAN-Seg set with a SIFID: the `SIFID by style transfer` plot."""
    rows = []
    for name, s in summary.get("sets", {}).items():
        m = SINGAN_SET.match(name)
        if not m or _num(s.get("sifid")) is None:
            continue
        style = f"ST {m['c']}:{m['s']}" if m["c"] else "no ST"
        rows.append({"set": name, "gen_start_scale": int(m["gss"]), "style": style,
                     "series": f"gss{m['gss']}, {style}", "sifid": s["sifid"], "sifid_std": s.get("sifid_std")})  # fmt: skip
    return sorted(rows, key=lambda r: (r["gen_start_scale"], r["style"] != "no ST", r["set"]))


def write_quality(summary: dict, out: Path = HEADLINE_DIR) -> list[Path]:
    """quality.json, brief_quality.json and sifid_by_style.csv, each written atomically."""
    full = quality_headline(summary)
    return [_write_json(out / "quality.json", full), _write_json(out / "brief_quality.json", brief_quality(full)),
            _write_csv(out / "sifid_by_style.csv", sifid_rows(summary), SIFID_COLUMNS)]  # fmt: skip


# ------------------------------------------------------------------ segmentation


def fold_means(df: pd.DataFrame, grid: str) -> pd.DataFrame:
    """Per (protocol, experiment): IoU and Dice of the test set, mean over folds and seeds (as the grid A table)."""
    sub = df[(df.grid == grid) & (df.averaging == AVERAGING) & df.score.isin(list(SCORE_KEYS))
             & ~df.experiment.str.contains("TRIVIAL")]  # fmt: skip
    if sub.empty:
        return pd.DataFrame(columns=["protocol", "experiment", *SCORE_KEYS.values(), "folds"])
    # the mean over folds and seeds (issue 22 s3), and the number of distinct folds
    wide = sub.groupby(["protocol", "experiment", "score"])["value"].mean().unstack().rename(columns=SCORE_KEYS)
    wide["folds"] = sub.groupby(["protocol", "experiment"])["fold"].nunique()
    return wide.reset_index()


def segment_headline(means: pd.DataFrame) -> dict:
    out: dict = {}
    for r in means.itertuples(index=False):
        short = r.experiment.split("/", 1)[-1]
        for metric in SCORE_KEYS.values():
            out.setdefault(metric, {}).setdefault(r.protocol, {})[short] = float(getattr(r, metric))
    return out


SEGMENT_COLUMNS = ["grid", "protocol", "experiment", "kind", "N", "series", "iou", "dice", "folds"]


def segment_rows(means: pd.DataFrame, grid: str) -> list[dict]:
    """Long form: one row per (protocol, experiment); grid B rows carry kind and N (IoU against N per kind)."""
    rows = []
    for r in means.itertuples(index=False):
        short = r.experiment.split("/", 1)[-1]
        m = GRID_B_EXP.match(short) if grid == "B" else None
        kind, n = (m["kind"], int(m["n"])) if m else (short, None)
        rows.append({"grid": grid, "protocol": r.protocol, "experiment": short, "kind": kind, "N": n,
                     "series": f"{kind} ({r.protocol})", "iou": r.iou, "dice": r.dice, "folds": int(r.folds)})  # fmt: skip
    return sorted(rows, key=lambda r: (r["protocol"], r["kind"], r["N"] or 0))


def write_segment(grid: str, results: Path, out: Path = HEADLINE_DIR) -> list[Path]:
    """segment_<grid>.json and segment_<grid>.csv from the grid's results folder (results/<grid>)."""
    means = fold_means(load_segmentation(results, grids=(grid,)), grid)
    full = segment_headline(means)
    written = [_write_json(out / f"segment_{grid}.json", full),
               _write_json(out / f"brief_segment_{grid}.json", brief_segment(full, grid)),
               _write_csv(out / f"segment_{grid}.csv", segment_rows(means, grid), SEGMENT_COLUMNS)]  # fmt: skip
    return [*written, _write_csv(out / f"curves_{grid}.csv", curve_rows(results / grid), CURVE_COLUMNS)]


# ------------------------------------------------------------------ training curves

# The per-epoch curves sit in the grid's results folder beside the fold JSONs, which are no
# plot data: a `dvc plots` entry on the folder warned once per JSON (issue 27). Gathered
# here in long form; dvc.yaml plots grid A's (grid B's many short runs are kept, not plotted).
CURVE_COLUMNS = ["experiment", "run", "protocol", "series", "epoch", "val_per_image_iou"]


def curve_rows(grid_dir: Path) -> list[dict]:
    """One row per (curve, epoch) from `<experiment>/<run>_curves/<protocol>.csv` (pipeline/segment/run.py)."""
    rows = []
    for path in sorted(Path(grid_dir).glob("**/*_curves/*.csv")):
        experiment = path.parent.parent.relative_to(grid_dir).as_posix()
        run, protocol = path.parent.name.removesuffix("_curves"), path.stem
        with open(path, newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                if _num(r.get("val_per_image_iou")) is not None:
                    rows.append({"experiment": experiment, "run": run, "protocol": protocol,
                                 "series": f"{experiment} {run} ({protocol})", "epoch": int(r["epoch"]),
                                 "val_per_image_iou": r["val_per_image_iou"]})  # fmt: skip
    return rows


# ------------------------------------------------------------------ the brief set


BRIEF_SET = "singan_gss0"  # the paper's SinGAN-Seg samples: gen_start_scale 0, no style transfer
BRIEF_PROTOCOL = "paper"  # the authors' protocol, as the paper's tables
# the data-rich claim: real against synthetic training data (a third column, REAL+FAKE_1, would
# not fit 120 columns beside the swept param: tests/test_first_hour.py)
BRIEF_A = ("REAL", "FAKE_1")
BRIEF_B_KINDS = ("REAL", "FAKE")  # the data-scarce claim, at the grid's smallest N


def brief_quality(full: dict) -> dict:
    """{sifid, fid} of the paper's SinGAN-Seg set, from quality.json's content."""
    return {m: full[m][BRIEF_SET] for m in ("sifid", "fid") if BRIEF_SET in full.get(m, {})}


def brief_segment(full: dict, grid: str) -> dict:
    """{<grid>: {<experiment>: IoU}} under the paper's protocol, from segment_<grid>.json's content:
    grid A's BRIEF_A experiments, grid B's BRIEF_B_KINDS at the smallest N that has them all."""
    iou = full.get("iou", {}).get(BRIEF_PROTOCOL, {})
    if grid == "A":
        picked = [e for e in BRIEF_A if e in iou]
    else:
        ns = {}
        for e in iou:
            if (m := GRID_B_EXP.match(e)) and m["kind"] in BRIEF_B_KINDS:
                ns.setdefault(int(m["n"]), set()).add(m["kind"])
        full_ns = [n for n, kinds in ns.items() if kinds == set(BRIEF_B_KINDS)]
        picked = [f"{k}_N{min(full_ns)}" for k in BRIEF_B_KINDS] if full_ns else []
    return {grid: {e: iou[e] for e in picked}} if picked else {}

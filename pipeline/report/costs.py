"""What a run cost: wall seconds per stage and per unit of work, from the run's own records.

Sources, all written by the run itself (never typed):
- `metrics/timings/<stage>.json` (pipeline/infra/timed.py): each stage command's wall seconds and
  the machine it ran on (cores, CPU, GPUs);
- the units of work, counted in the stage's outputs: SinGAN-Seg models (`model.json`; each
  scale's training seconds are in its sidecar `model.timing.json`), synthetic pairs,
  style-transferred images, UNet++ epochs (the segment JSONs record epochs per protocol).

None of the times is a DVC output or inside an output's hash (the timing files are not
declared, the `*.timing.json` sidecars are in .dvcignore): a rerun reproduces dvc.lock, and
a DVC checkout restores no times, so every time here may be missing and the table says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pipeline.report.tables import Table
from singanseg.io import TIMING_SUFFIX
from singanseg.saved_model import read_model_timing

# dvc.yaml's stage order; a timing file is `<stage>.json` or `<stage>_<item>.json`
STAGES = ("data", "train_singan", "generate", "stylize", "train_baselines", "generate_baselines", "quality", "segment")


def _count_images(folder: Path) -> int:
    return sum(1 for p in folder.glob("*/images/*") if p.is_file()) if folder.is_dir() else 0


def load_timings(root: Path) -> dict[str, list[dict]]:
    """{stage: [records of its commands]} (a `foreach` stage has one per item)."""
    out: dict[str, list[dict]] = {}
    for path in sorted(root.glob("*.json")):
        rec = json.loads(path.read_text())
        stage = next((s for s in sorted(STAGES, key=len, reverse=True) if rec["name"] == s or rec["name"].startswith(s + "_")), None)
        if stage is not None:
            out.setdefault(stage, []).append(rec)
    return out


def units(stage: str, models: list[Path], synthetic: Path, segmentation: Path) -> tuple[str, float] | None:
    """(unit name, how many) of one stage's work, counted in its outputs."""
    if stage == "train_singan":
        n = sum(1 for m in models for _ in m.glob("*/model.json"))
        return ("SinGAN-Seg model", n)
    if stage == "generate":
        return ("SinGAN-Seg sample", _count_images(synthetic / "singan"))
    if stage == "stylize":
        return ("style-transferred image", sum(_count_images(d) for d in synthetic.glob("singan_st*")))
    if stage == "generate_baselines":
        return ("baseline sample", sum(_count_images(synthetic / g) for g in ("dcgan", "progan", "fastgan")))
    if stage == "segment":
        epochs = 0
        for path in (p for p in segmentation.glob("*/*/fold*.json") if not p.name.endswith(TIMING_SUFFIX)):
            rec = json.loads(path.read_text())
            epochs += sum(r.get("epochs", 0) for r in rec.get("protocols", {}).values())
        return ("UNet++ epoch", epochs)
    return None


def singan_seconds_per_model(models: list[Path]) -> float | None:
    """Mean training seconds inside the process per SinGAN-Seg model (model.timing.json
    `seconds`), over the models whose every scale has its time recorded."""
    totals = []
    for m in models:
        for path in m.glob("*/model.json"):
            seconds = read_model_timing(path.parent)
            if seconds and all(isinstance(s, int | float) for s in seconds):
                totals.append(sum(seconds))
    return sum(totals) / len(totals) if totals else None


def cost_table(timings: Path, models: list[Path], synthetic: Path, segmentation: Path, caption: str,
               digits: int = 1) -> tuple[Table | None, dict]:
    """The cost table and a summary {total_seconds, machine} (None, {} without timing records)."""
    recs = load_timings(timings)
    if not recs:
        return None, {}
    rows, machines = [], set()
    for stage in STAGES:
        if stage not in recs:
            continue
        seconds = sum(r["seconds"] for r in recs[stage])
        m = recs[stage][0]["machine"]
        machines.add(f"{m['cores']} cores ({m['cpu']}), {', '.join(m['gpus']) or 'no GPU'}")
        u = units(stage, models, synthetic, segmentation)
        per = seconds / u[1] if u and u[1] else None
        rows.append({
            "stage": stage, "commands": len(recs[stage]), "wall seconds": round(seconds, 1),
            "wall minutes": round(seconds / 60, 2), "unit of work": u[0] if u else "–",
            "units": int(u[1]) if u else None, "seconds per unit": per,
            "machine": f"{m['cores']} cores, {m['device']}",
        })  # fmt: skip
    df = pd.DataFrame(rows).set_index("stage")
    df["units"] = df["units"].astype("Int64")  # counts stay integers beside the stages without a unit
    total = float(df["wall seconds"].sum())
    per_model = singan_seconds_per_model(models)
    notes = [f"Total wall time of the stages above: {total / 60:.1f} minutes "
             "(the report stage itself is not included)."]  # fmt: skip
    if per_model is not None:
        notes.append(f"SinGAN-Seg training inside the process: {per_model:.1f} s per model on average "
                     "(model.timing.json `seconds`); the stage's seconds per model divide its wall time, with "
                     "process starts and parallel jobs, by the models it holds.")  # fmt: skip
    t = Table("costs", "What this run cost: wall time per stage and per unit of work", df, None, {},
              caption + "; machine: " + "; ".join(sorted(machines)), digits, notes=notes,
              weights="none (wall times, not scores)",
              col_digits={"wall seconds": 1, "wall minutes": 2})  # rounded so: more decimals would be noise  # fmt: skip
    return t, {"total_seconds": total, "machines": sorted(machines), "singan_seconds_per_model": per_model}

"""The price of a run before it starts: every dvc.yaml stage's work, disk and (calibrated) hours.

    python -m pipeline.plan [--profile paper] [--json]
    python -m pipeline.plan --profile paper --calibrate --data ../shared/data/kvasir-seg-200

Lists every stage of dvc.yaml (foreach expanded, DVC's names: `train_singan@0`,
`stylize@1to1000`, `segment@A`, ...) for the active profile (params.yaml `profile`, or
`--profile`) with its work in its own units (models x scales x iterations, samples,
style-transfer images x steps, GAN iterations, UNet++ trainings x epochs x images, metric
passes) and an estimate of the disk it writes. `--calibrate` times each stage's unit of work
at the profile's real sizes on `--pairs` real pairs of `--data` (pipeline/plan/calibrate.py),
records its peak memory and extrapolates to hours on this machine, serially (one process,
torch's threads; executor fan-out and batching not modelled, so a multi-job run is faster).
Networks are random-init (pretrained weights may not be here; timing is the same).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.infra.params import DEFAULT_PARAMS
from pipeline.plan.work import Plan, Row, _human_bytes, dvc_stages, work_rows
from singanseg.errors import UserError
from singanseg.typed import ConfigError


def calibrate(plan: Plan, rows: list[Row], device_name: str, pairs: int, budget_s: float, log) -> None:
    """Fill hours and peak memory of every row from timed units (pipeline/plan/calibrate.py)."""
    import torch

    from pipeline.plan import calibrate as cal
    from singanseg.device import resolve_device

    if plan.rgba is None:
        raise UserError(f"plan: --calibrate needs real pairs (images/, masks/) in {plan.data}; give --data DIR")
    device = torch.device(resolve_device(device_name))
    units: dict[str, tuple[dict, float, float | None]] = {}

    def unit(key: str, fn, budget: float):
        if key not in units:
            t = time.perf_counter()
            with cal.PeakMemory(device) as mem:
                out = fn(budget)
            units[key] = (out, mem.peak_mb, mem.cuda_mb)
            log(f"plan: calibrated {key} in {time.perf_counter() - t:.0f} s (peak RSS {mem.peak_mb:.0f} MB)")
        return units[key]

    from singanseg.io import read_pair

    real_img = read_pair(plan.pairs[0])[0]
    batch = plan.singan.batch
    sg, *_ = unit("singan", lambda b: cal.singan(plan.singan.model, plan.rgba, device, 4 * b, batch), budget_s)
    model = sg["model"]
    fake = model.sample(1, 0, seed=0)[0][0]
    for row in rows:
        base, item = row.stage.partition("@")[0], row.stage.partition("@")[2]
        if base == "data":
            out, mb, cmb = unit("data", lambda b: {"per_pair_s": cal.io_pairs(plan.data, pairs, b)}, budget_s / 4)
            secs = row.units["pairs"] * out["per_pair_s"]
            row.note = "read + validate + PNG write (no download)"
        elif base == "train_singan" and row.units.get("imported"):
            continue  # no training: the row keeps its work and disk, no hours (issue 24)
        elif base == "train_singan":
            out, mb, cmb = units["singan"]
            per_model = out["seconds_per_model"]
            row.calibration = {"scales": out["scales"], "seconds_per_model": per_model}
            row.note = "one model at a time (batch 1); executor jobs not modelled"
            if batch > 1:  # the chunks the --data pairs fall into, priced by the K-model timing
                mine = plan.pairs[int(item)::4] if item else plan.pairs  # this shard's (plan.models)
                chunks = cal.chunk_sizes(mine or plan.pairs, plan.singan.model, batch)
                per_model = cal.seconds_per_model_batched(out["seconds_per_chunk"], chunks)
                row.calibration.update(seconds_per_model_batched=per_model, chunks=len(chunks),
                                       mean_chunk=sum(chunks) / len(chunks))  # fmt: skip
                row.note = (f"batch {batch}: chunks of {sum(chunks) / len(chunks):.1f} models on average "
                            f"(the shard's --data pairs in buckets); executor jobs not modelled")  # fmt: skip
            secs = row.units["models"] * per_model
        elif base == "generate":
            out, mb, cmb = unit("generate", lambda b: {"per_sample_s": cal.generate(model, device, b)}, budget_s / 2)
            secs = row.units["samples"] * out["per_sample_s"]
        elif base == "stylize":
            from PIL import Image

            style = np.asarray(Image.fromarray(real_img).resize((fake.shape[1], fake.shape[0]), Image.BICUBIC))
            out, mb, cmb = unit("stylize", lambda b, style=style: {"per_image_step_s": cal.stylize(plan.sty, fake, style, device, b)}, budget_s)
            secs = row.units["images"] * row.units["steps"] * out["per_image_step_s"]
            row.note = cal.RANDOM_NOTE.split(" (")[0]
        elif base in ("train_baselines", "generate_baselines"):
            conf = plan.base.gan_config(item)
            out, mb, cmb = unit(f"baseline_{item}", lambda b, g=item, c=conf: cal.baseline(g, c, plan.data, pairs, device, b), budget_s)
            secs = row.units["iterations"] * out["per_iter_s"] if base == "train_baselines" else row.units["samples"] * out["per_sample_s"]
            if item == "fastgan" and base == "train_baselines":
                row.note = "LPIPS-VGG16 random-init"
        elif base == "quality":
            out, mb, cmb = unit("quality", lambda b: cal.quality(plan.qual, real_img, fake, device, b), budget_s)
            u = row.units
            secs = u["sifid_pairs"] * out["per_sifid_pair_s"] + u["fid_images"] * out["per_fid_image_s"] + u["lpips_pairs"] * out["per_lpips_pair_s"]
            row.note = "Inception / AlexNet random-init"
        elif base == "segment":
            tp = plan.seg.train_scarce if item == "B" else plan.seg.train_rich
            out, mb, cmb = unit(f"segment_{item}", lambda b, t=tp: cal.segment(plan.seg.model, t, plan.data, pairs, device, b), budget_s)
            secs = sum(t["epochs"] * t["train"] * out["per_train_image_s"] + t["val_rounds"] * t["val"] * out["per_eval_image_s"]
                       + t["test"] * out["per_eval_image_s"] for t in row.units["runs"])  # fmt: skip
            row.note = "encoder random-init"
        else:
            continue
        row.hours, row.peak_memory_mb, row.cuda_peak_mb = secs / 3600, mb, cmb
        if not row.calibration:
            row.calibration = dict(out)
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory / 2**20
        peak = units["singan"][2] or 1.0
        plan.models_per_gpu = int(0.9 * total // peak)


def to_json(plan: Plan, rows: list[Row], calibrated: bool) -> dict[str, Any]:
    stages = []
    for r in rows:
        units = {k: v for k, v in r.units.items() if k != "runs"}
        stages.append({"stage": r.stage, "work": r.work, "units": units, "disk_bytes": r.disk_bytes, "hours": r.hours,
                       "peak_memory_mb": r.peak_memory_mb, "cuda_peak_memory_mb": r.cuda_peak_mb, "note": r.note,
                       "calibration": r.calibration})  # fmt: skip
    out = {"profile": plan.profile, "images": plan.n, "pyramid": [list(s) for s in plan.pyramid()], "sample": plan.sample_from,
           "stages": stages, "total_disk_bytes": sum(r.disk_bytes for r in rows),
           "total_hours": sum(r.hours or 0.0 for r in rows) if calibrated else None}  # fmt: skip
    if getattr(plan, "models_per_gpu", None) is not None:
        out["singan_models_per_gpu"] = plan.models_per_gpu
    return out


def to_table(plan: Plan, rows: list[Row], calibrated: bool) -> str:
    lines = [f"profile {plan.profile}: {plan.n} images; pyramid from {plan.sample_from}", "",
             "| stage | work | disk | hours | peak memory MB |", "|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        hours = "-" if r.hours is None else f"{r.hours:.2f}" if r.hours < 100 else f"{r.hours:,.0f}"
        mem = "-" if r.peak_memory_mb is None else f"{r.peak_memory_mb:.0f}" + (f" (CUDA {r.cuda_peak_mb:.0f})" if r.cuda_peak_mb else "")
        lines.append(f"| {r.stage} | {r.work}{f' [{r.note}]' if r.note else ''} | {_human_bytes(r.disk_bytes)} | {hours} | {mem} |")
    total = f"{sum(r.hours or 0 for r in rows):,.1f} h" if calibrated else "run with --calibrate"
    lines += ["", f"total: {total}, disk {_human_bytes(sum(r.disk_bytes for r in rows))}"]
    if getattr(plan, "models_per_gpu", None) is not None:
        lines.append(f"SinGAN-Seg models per GPU by memory: {plan.models_per_gpu}")
    return "\n".join(lines)


# The paper prices 1000 images (paper.md s3); a plan for more than a thousand times that is a
# typo, and its segment folds would allocate per image (1e12 ended in a 7 TiB allocation).
MAX_IMAGES = 1_000_000
DEFAULT_DATA = Path("data/real")  # the data stage's output; absent before its first run


def _count_arg(flag: str, text: str, most: int) -> int:
    """A whole number in 1..most, or one ConfigError naming the flag (argparse's own error is a
    usage block; `--images 0` was silently ignored, -5 planned for -5 images)."""
    try:
        n = int(str(text).strip())
    except ValueError:
        raise ConfigError(f"{flag}: {text!r} is not a whole number (e.g. {flag} 1000)") from None
    if not 1 <= n <= most:
        raise ConfigError(f"{flag}: must be between 1 and {most:,}, got {n:,}")
    return n


def _seconds_arg(flag: str, text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise ConfigError(f"{flag}: {text!r} is not a number of seconds") from None
    if not (math.isfinite(x) and x > 0):
        raise ConfigError(f"{flag}: must be a positive finite number of seconds, got {text}")
    return x


def _data_arg(data: Path | None) -> Path:
    """--data as given must exist and be a folder (a plan "from no pairs" of a mistyped path
    prices a default image size the user did not ask for); the default may be absent."""
    if data is None:
        return DEFAULT_DATA
    if not data.exists():
        raise ConfigError(f"--data {data}: folder not found (give a folder holding images/ and masks/)")
    if not data.is_dir():
        raise ConfigError(f"--data {data}: is not a folder (give a folder holding images/ and masks/)")
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.plan", description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    ap.add_argument("--dvc", type=Path, default=Path("dvc.yaml"))
    ap.add_argument("--profile", default=None, help="default: params.yaml `profile`")
    ap.add_argument("--data", type=Path, default=None, help="real pairs (images/, masks/); default the data stage's output")
    ap.add_argument("--images", default=None, help="image count (default: from the data source: 1000 for kvasir-seg)")
    ap.add_argument("--calibrate", action="store_true", help="time each stage's unit of work here and project hours")
    ap.add_argument("--pairs", default="2", help="real pairs the calibration runs on")
    ap.add_argument("--budget-s", default="45", help="seconds per calibrated unit (SinGAN-Seg gets 4x)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--json", action="store_true", help="JSON instead of the table")
    args = ap.parse_args(argv)
    try:
        if not args.dvc.is_file():
            raise ConfigError(f"{args.dvc}: dvc.yaml not found (run from the repository root or give --dvc)")
        images = None if args.images is None else _count_arg("--images", args.images, MAX_IMAGES)
        args.pairs = _count_arg("--pairs", args.pairs, MAX_IMAGES)
        args.budget_s = _seconds_arg("--budget-s", args.budget_s)
        data = _data_arg(args.data)
        t0 = time.perf_counter()
        plan = Plan(args.params, args.profile, data, images)
        rows = work_rows(plan, dvc_stages(args.dvc, plan.raw))
        if args.calibrate:
            calibrate(plan, rows, args.device, args.pairs, args.budget_s, lambda m: print(m, file=sys.stderr, flush=True))
    except UserError as e:
        print(f"plan: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        out = to_json(plan, rows, args.calibrate)
        out["seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(out, indent=2, default=float))
    else:
        print(to_table(plan, rows, args.calibrate))
        print(f"({time.perf_counter() - t0:.0f} s; random-init networks for timing)" if args.calibrate else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())

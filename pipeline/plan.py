"""The price of a run before it starts: every dvc.yaml stage's work, disk and (calibrated) hours.

    python -m pipeline.plan [--profile paper] [--json]
    python -m pipeline.plan --profile paper --calibrate --data ../shared/data/kvasir-seg-200

Lists every stage of dvc.yaml (foreach expanded, DVC's names: `train_singan@0`,
`stylize@1to1000`, `segment@A`, ...) for the active profile (params.yaml `profile`, or
`--profile`) with its work in its own units (models x scales x iterations, samples,
style-transfer images x steps, GAN iterations, UNet++ trainings x epochs x images, metric
passes) and an estimate of the disk it writes. `--calibrate` times each stage's unit of work
at the profile's real sizes on `--pairs` real pairs of `--data` (pipeline/plan_calibrate.py),
records its peak memory and extrapolates to hours on this machine, serially (one process,
torch's threads; executor fan-out and batching not modelled, so a multi-job run is faster).
Networks are random-init (pretrained weights may not be here; timing is the same).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.params import DEFAULT_PARAMS, load_section, read_yaml
from singanseg.errors import UserError
from singanseg.profiles import resolve
from singanseg.typed import ConfigError

KVASIR_SEG_IMAGES = 1000  # paper.md s3: the 1000 Kvasir-SEG pairs
DEFAULT_HW = (529, 622)  # HyperKvasir image #1 (paper.md s1's 9-scale pyramid) when no data is at hand


@dataclass
class Row:
    stage: str
    work: str
    units: dict[str, Any]
    disk_bytes: float
    hours: float | None = None
    peak_memory_mb: float | None = None
    cuda_peak_mb: float | None = None
    note: str = ""
    calibration: dict[str, Any] = field(default_factory=dict)


def dvc_stages(dvc_yaml: Path, raw_params: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(DVC name, base name, foreach item) of every stage, foreach expanded as DVC does
    (`${a.b}` lists from the base params, which profiles cannot change)."""
    doc = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))
    out = []
    for name, body in (doc.get("stages") or {}).items():
        each = body.get("foreach") if isinstance(body, dict) else None
        if each is None:
            out.append((name, name, None))
            continue
        if isinstance(each, str) and each.startswith("${"):
            node: Any = raw_params
            for key in each[2:-1].split("."):
                node = node[key]
            each = node
        items = list(each.keys()) if isinstance(each, dict) else list(each)
        out += [(f"{name}@{item}", name, item) for item in items]
    return out


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


class Plan:
    """The profile's sections, the image count and a sample pair; one Row per stage."""

    def __init__(self, params: Path, profile: str | None, data: Path, images: int | None):
        from pipeline.data import DataParams
        from pipeline.generate import GenerateParams
        from pipeline.quality import QualityParams
        from pipeline.segment.config import SegmentParams
        from pipeline.stylize import StylizeParams
        from pipeline.train_baselines import BaselinesParams
        from pipeline.train_singan import SinGANStageParams

        raw = read_yaml(params)
        self.raw, self.params_path = raw, params
        self.profile, _ = resolve(raw, str(params), profile)

        def load(section, cls):
            return load_section(section, cls, params, self.profile)

        self.data_p = load("data", DataParams)
        self.singan = load("singan", SinGANStageParams)
        self.gen = load("generate", GenerateParams)
        self.sty = load("stylize", StylizeParams)
        self.base = load("baselines", BaselinesParams)
        self.qual = load("quality", QualityParams)
        self.seg = load("segment", SegmentParams)
        self.data = data
        self.pairs = self._pairs()
        self.n = images or self._count()
        self.rgba, self.sample_hw, self.sample_from = self._sample_pair()
        self.bpp = self._png_bytes_per_pixel()

    # ------------------------------------------------------------ inputs

    def _pairs(self):
        from singanseg.io import list_pairs

        try:
            return list_pairs(self.data) if Path(self.data, "images").is_dir() else []
        except UserError:
            return []

    def _count(self) -> int:
        d = self.data_p
        if d.source == "kvasir-seg":
            n = KVASIR_SEG_IMAGES
        elif d.source == "phantom":
            n = d.phantom.count
        else:
            from singanseg.io import list_pairs

            n = len(list_pairs(d.folder)) if d.folder and Path(d.folder, "images").is_dir() else len(self.pairs)
        return min(n, d.limit) if d.limit else n

    def _sample_pair(self):
        from singanseg.io import read_pair
        from singanseg.pyramid import to_rgba

        if self.pairs:
            image, mask, info = read_pair(self.pairs[0])
            return to_rgba(image, mask, ambiguous_px=info.ambiguous_px), mask.shape, f"{self.pairs[0].id} in {self.data}"
        return None, DEFAULT_HW, f"no pairs in {self.data}: a {DEFAULT_HW[1]}x{DEFAULT_HW[0]} image assumed"

    def _png_bytes_per_pixel(self) -> tuple[float, float]:
        """(image, mask) PNG bytes per pixel, from encoding the sample pair (else typical values)."""
        if self.rgba is None:
            return 2.0, 0.05
        from PIL import Image

        sizes = []
        for arr in (self.rgba[..., :3], self.rgba[..., 3]):
            buf = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG")
            sizes.append(buf.tell() / arr.shape[0] / arr.shape[1])
        return sizes[0], sizes[1]

    # ------------------------------------------------------------ shapes

    def pyramid(self) -> list[tuple[int, int]]:
        """(h, w) per scale of the sample pair's pyramid (singanseg.pyramid.adjust_scales)."""
        from singanseg.pyramid import adjust_scales

        cfg = self.singan.model
        h, w = self.sample_hw
        spec = adjust_scales(h, w, cfg)
        h1, w1 = math.ceil(h * spec.scale1), math.ceil(w * spec.scale1)
        return [(math.ceil(h1 * spec.scale_factor ** (spec.stop_scale - i)), math.ceil(w1 * spec.scale_factor ** (spec.stop_scale - i)))
                for i in range(spec.n_scales)]  # fmt: skip

    def pair_bytes(self, h: int, w: int) -> float:
        return h * w * (self.bpp[0] + self.bpp[1])

    def models(self, shard: int | None = None, num_shards: int = 4) -> int:
        n = min(self.n, self.singan.limit) if self.singan.limit else self.n
        return n if shard is None else len(range(shard, n, num_shards))

    def singan_model_bytes(self) -> float:
        import torch

        from singanseg.models import init_models

        cfg, total = self.singan.model, 0.0
        for k, (h, w) in enumerate(self.pyramid()):
            D, G = init_models(cfg, k, torch.Generator().manual_seed(0))
            total += 4 * (sum(p.numel() for p in D.parameters()) + sum(p.numel() for p in G.parameters()))
            total += 4 * 2 * cfg.nc_im * (h + 2 * cfg.pad) * (w + 2 * cfg.pad)  # real + z_opt
        return total

    def segment_trainings(self, grid: str) -> list[dict[str, int]]:
        """One entry per UNet++ training of the grid: epochs, batch, train / val / test images.

        The runs come from pipeline.segment.experiments.grid_runs; the set sizes follow its
        rules from the image count (np.array_split folds; clean: the last fraction of the
        training real ids held out, their SinGANs too)."""
        from pipeline.segment.experiments import grid_runs, parse

        p = self.seg
        folds = [len(a) for a in np.array_split(np.arange(self.n), self.data_p.folds)]
        out = []
        for name, fold in grid_runs(p):
            if not name.startswith(f"{grid}/"):
                continue
            exp = parse(name, p)
            tp = p.train_scarce if exp.scarce else p.train_rich
            test = self.n - folds[fold] if exp.scarce else folds[fold]
            real = exp.n_real if exp.scarce else self.n - folds[fold]
            for protocol in p.protocols:
                val = test if protocol == "paper" else max(1, math.ceil(p.clean_val_fraction * real))
                r = real if protocol == "paper" else real - val
                singan_src = exp.source is not None and exp.source.startswith("singan")
                synth = exp.samples * r if singan_src else exp.samples if exp.source else 0
                out.append({"epochs": tp.epochs, "batch": tp.batch_size,
                            "train": (r if exp.use_real else 0) + synth, "val": val, "test": test})  # fmt: skip
        return out


def _fmt_int(n: float) -> str:
    return f"{n:,.0f}"


def work_rows(plan: Plan, stages: list[tuple[str, str, Any]]) -> list[Row]:
    """The work and disk of every stage (no timing)."""
    from baselines.common import get_gan

    rows = []
    pyr = plan.pyramid()
    fh, fw = pyr[-1]
    cfg = plan.singan.model
    for name, base, item in stages:
        if base == "data":
            rows.append(Row(name, f"{_fmt_int(plan.n)} pairs ({plan.data_p.source}), {plan.data_p.folds} folds",
                            {"pairs": plan.n}, plan.n * plan.pair_bytes(*plan.sample_hw)))  # fmt: skip
        elif base == "train_singan":
            m = plan.models(int(item))
            rows.append(Row(name, f"{m} models x {len(pyr)} scales ({pyr[0][1]}x{pyr[0][0]}..{fw}x{fh} px) x {cfg.niter} iterations",
                            {"models": m, "scales": len(pyr), "iterations": cfg.niter}, m * plan.singan_model_bytes()))  # fmt: skip
        elif base == "generate":
            s = plan.models() * len(plan.gen.gen_start_scales) * plan.gen.num_samples
            rows.append(Row(name, f"{_fmt_int(s)} samples ({plan.models()} models x {len(plan.gen.gen_start_scales)} start scales x "
                            f"{plan.gen.num_samples})", {"samples": s}, s * plan.pair_bytes(fh, fw)))  # fmt: skip
        elif base == "stylize":
            imgs = plan.models() * plan.gen.num_samples
            rows.append(Row(name, f"{_fmt_int(imgs)} images x {plan.sty.num_epochs} steps (VGG16 at {fw}x{fh} px, batch {plan.sty.batch_size})",
                            {"images": imgs, "steps": plan.sty.num_epochs}, imgs * plan.pair_bytes(fh, fw)))  # fmt: skip
        elif base in ("train_baselines", "generate_baselines"):
            gan, conf = str(item), plan.base.gan_config(str(item))
            spec = get_gan(gan)
            subs = plan.base.subsets_of(gan)
            ks = [plan.n if s == "all" else min(int(s), plan.n) for s in subs]
            if base == "train_baselines":
                iters = sum(spec.total_iterations(conf, k) for k in ks)
                rows.append(Row(name, f"{len(subs)} model(s) ({', '.join(subs)} images), {_fmt_int(iters)} iterations in all at "
                                f"{conf.resolution} px, batch {conf.batch_size}", {"models": len(subs), "iterations": iters},
                                len(subs) * 4e6))  # fmt: skip
                rows[-1].units["ks"] = ks
            else:
                size = getattr(conf, "sample_size", None) or conf.resolution
                s = len(subs) * plan.base.num_samples
                rows.append(Row(name, f"{_fmt_int(s)} samples at {size} px ({len(subs)} model(s) x {plan.base.num_samples})",
                                {"samples": s}, s * plan.pair_bytes(size, size)))  # fmt: skip
        elif base == "quality":
            q = plan.qual
            per_set = plan.models() * plan.gen.num_samples
            singan_sets = len(plan.gen.gen_start_scales) + len(plan.sty.ratios)
            sifid = singan_sets * per_set
            n_base = sum(len(plan.base.subsets_of(g)) for g in ("dcgan", "progan", "fastgan"))
            fid = (sifid if q.fid_singan else 0) + n_base * plan.base.num_samples + plan.n
            pairs_per_model = min(q.lpips.max_pairs_per_model, plan.gen.num_samples * (plan.gen.num_samples - 1) // 2)
            lp = singan_sets * plan.models() * pairs_per_model + n_base * min(q.lpips.max_pairs_per_model, plan.base.num_samples ** 2 // 2)
            mask_stats = singan_sets * plan.models() * fh * fw * 4 * 2 if q.masks.pixelwise else 0
            rows.append(Row(name, f"{_fmt_int(sifid)} SIFID pairs, {_fmt_int(fid)} FID images (299 px), {_fmt_int(lp)} LPIPS pairs",
                            {"sifid_pairs": sifid, "fid_images": fid, "lpips_pairs": lp}, mask_stats + 1e6))  # fmt: skip
        elif base == "segment":
            tr = plan.segment_trainings(str(item))
            imgs = sorted({t["train"] for t in tr}) or [0]
            epochs = sorted({t["epochs"] for t in tr}) or [0]
            tp = plan.seg.train_scarce if item == "B" else plan.seg.train_rich
            total = sum(t["epochs"] * t["train"] for t in tr)
            rows.append(Row(name, f"{len(tr)} UNet++ trainings ({plan.seg.model.encoder_name}, {tp.img_size} px) x {epochs[-1]} epochs x "
                            f"{imgs[0]:,}..{imgs[-1]:,} images ({_fmt_int(total)} image-epochs)",
                            {"trainings": len(tr), "image_epochs": total, "runs": tr}, len(tr) * (50e3 + 300 * epochs[-1])))  # fmt: skip
        elif base == "report":
            rows.append(Row(name, "tables and figures from the metrics", {}, 5e6, 0.0, note="not calibrated: minutes at most"))
        else:
            rows.append(Row(name, "unknown to pipeline.plan: add it to pipeline/plan.py", {}, 0.0, note="not priced"))
    return rows


def calibrate(plan: Plan, rows: list[Row], device_name: str, pairs: int, budget_s: float, log) -> None:
    """Fill hours and peak memory of every row from timed units (pipeline/plan_calibrate.py)."""
    import torch

    from pipeline import plan_calibrate as cal
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
    sg, *_ = unit("singan", lambda b: cal.singan(plan.singan.model, plan.rgba, device, 4 * b), budget_s)
    model = sg["model"]
    fake = model.sample(1, 0, seed=0)[0][0]
    for row in rows:
        base, item = row.stage.partition("@")[0], row.stage.partition("@")[2]
        if base == "data":
            out, mb, cmb = unit("data", lambda b: {"per_pair_s": cal.io_pairs(plan.data, pairs, b)}, budget_s / 4)
            secs = row.units["pairs"] * out["per_pair_s"]
            row.note = "read + validate + PNG write (no download)"
        elif base == "train_singan":
            out, mb, cmb = units["singan"]
            secs = row.units["models"] * out["seconds_per_model"]
            row.calibration = {"scales": out["scales"], "seconds_per_model": out["seconds_per_model"]}
            row.note = "one model at a time (batch 1); executor jobs / batch K not modelled"
        elif base == "generate":
            out, mb, cmb = unit("generate", lambda b: {"per_sample_s": cal.generate(model, device, b)}, budget_s / 2)
            secs = row.units["samples"] * out["per_sample_s"]
        elif base == "stylize":
            from PIL import Image

            style = np.asarray(Image.fromarray(real_img).resize((fake.shape[1], fake.shape[0]), Image.BICUBIC))
            out, mb, cmb = unit("stylize", lambda b: {"per_image_step_s": cal.stylize(plan.sty, fake, style, device, b)}, budget_s)
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
            secs = sum(t["epochs"] * (t["train"] * out["per_train_image_s"] + t["val"] * out["per_eval_image_s"])
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.plan", description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    ap.add_argument("--dvc", type=Path, default=Path("dvc.yaml"))
    ap.add_argument("--profile", default=None, help="default: params.yaml `profile`")
    ap.add_argument("--data", type=Path, default=Path("data/real"), help="real pairs (images/, masks/); default the data stage's output")
    ap.add_argument("--images", type=int, default=None, help="image count (default: from the data source: 1000 for kvasir-seg)")
    ap.add_argument("--calibrate", action="store_true", help="time each stage's unit of work here and project hours")
    ap.add_argument("--pairs", type=int, default=2, help="real pairs the calibration runs on")
    ap.add_argument("--budget-s", type=float, default=45.0, help="seconds per calibrated unit (SinGAN-Seg gets 4x)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--json", action="store_true", help="JSON instead of the table")
    args = ap.parse_args(argv)
    try:
        if not args.dvc.is_file():
            raise ConfigError(f"{args.dvc}: dvc.yaml not found (run from the repository root or give --dvc)")
        if args.pairs < 1:
            raise ConfigError(f"--pairs: must be >= 1, got {args.pairs}")
        t0 = time.perf_counter()
        plan = Plan(args.params, args.profile, args.data, args.images)
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

"""The work of every dvc.yaml stage for a profile, in its own units, and the disk it writes
(pipeline/plan/cli.py prices it; this module only counts)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.infra.params import load_section, read_yaml
from singanseg.errors import UserError
from singanseg.profiles import resolve

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
        from pipeline.data.config import DataParams
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

    def styled_per_model(self) -> int:
        """Samples per model the stylize stage styles (stylize.samples_per_model; null = all)."""
        cut = self.sty.samples_per_model
        return min(self.gen.num_samples, cut) if cut else self.gen.num_samples

    def singan_model_bytes(self) -> float:
        import torch

        from singanseg.networks import init_models

        cfg, total = self.singan.model, 0.0
        for k, (h, w) in enumerate(self.pyramid()):
            D, G = init_models(cfg, k, torch.Generator().manual_seed(0))
            total += 4 * (sum(p.numel() for p in D.parameters()) + sum(p.numel() for p in G.parameters()))
            total += 4 * 2 * cfg.nc_im * (h + 2 * cfg.pad) * (w + 2 * cfg.pad)  # real + z_opt
        return total

    def segment_trainings(self, grid: str) -> list[dict[str, int]]:
        """One entry per UNet++ training of the grid (per seed): epochs (passes over the training set;
        fractional under `clean_steps`), batch, train / val / test images, validation rounds.

        The runs come from pipeline.segment.experiments.grid_runs; the set sizes follow its
        rules from the image count (np.array_split folds; clean: the last fraction of the
        training real ids held out, their SinGANs too)."""
        from pipeline.segment.experiments import grid_runs, parse

        p = self.seg
        folds = [len(a) for a in np.array_split(np.arange(self.n), self.data_p.folds)]
        out = []
        # one training per seed of every (experiment, fold) (issue 22 s3)
        for name, fold in [r for r in grid_runs(p) for _ in p.seeds]:
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
                train = (r if exp.use_real else 0) + synth
                epochs = tp.epochs
                if protocol == "clean" and tp.clean_steps:  # the same steps for every set: passes of the data
                    epochs = tp.clean_steps / max(1, math.ceil(train / tp.batch_size))
                out.append({"epochs": epochs, "batch": tp.batch_size, "train": train, "val": val, "test": test,
                            "val_rounds": math.ceil(epochs / tp.val_every)})  # fmt: skip
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
        elif base == "train_singan" and plan.singan.source == "authors":
            # issue 24: the authors' checkpoints are imported, not trained (a few MB read and
            # written per model); generators only, about half of a trained folder
            m = plan.models(int(item))
            rows.append(Row(name, f"{m} models imported from the authors' checkpoints ({plan.singan.authors_dir}), no training",
                            {"models": m, "imported": True}, m * plan.singan_model_bytes() / 2,
                            note="import: not calibrated, seconds per model"))  # fmt: skip
        elif base == "train_singan":
            m = plan.models(int(item))
            at_once = f", up to {plan.singan.batch} same-shape models at a time" if plan.singan.batch > 1 else ""
            rows.append(Row(name, f"{m} models x {len(pyr)} scales ({pyr[0][1]}x{pyr[0][0]}..{fw}x{fh} px) x {cfg.niter} iterations{at_once}",
                            {"models": m, "scales": len(pyr), "iterations": cfg.niter}, m * plan.singan_model_bytes()))  # fmt: skip
        elif base == "generate":
            s = plan.models() * len(plan.gen.gen_start_scales) * plan.gen.num_samples
            rows.append(Row(name, f"{_fmt_int(s)} samples ({plan.models()} models x {len(plan.gen.gen_start_scales)} start scales x "
                            f"{plan.gen.num_samples})", {"samples": s}, s * plan.pair_bytes(fh, fw)))  # fmt: skip
        elif base == "stylize":
            imgs = plan.models() * plan.styled_per_model()
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
            # samples per model of each SinGAN-Seg set: every generated one, the styled ones
            # (stylize.samples_per_model) in the style-transferred sets
            per_model = [plan.gen.num_samples] * len(plan.gen.gen_start_scales) + [plan.styled_per_model()] * len(plan.sty.ratios)
            singan_sets = len(per_model)
            sifid = plan.models() * sum(per_model)
            # the set FIDs read the first quality.fid_singan_samples of each model (0 = all)
            fid_singan = plan.models() * sum(min(k, q.fid_singan_samples or k) for k in per_model) if q.fid_singan else 0
            n_base = sum(len(plan.base.subsets_of(g)) for g in ("dcgan", "progan", "fastgan"))
            fid = fid_singan + n_base * plan.base.num_samples + plan.n
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
            rows.append(Row(name, "unknown to pipeline.plan: add it to pipeline/plan/work.py", {}, 0.0, note="not priced"))
    return rows

"""The report's figures beside its tables: grid B, learning curves, sample grids, and each
figure's caption (what it shows, and which network weights are behind it).

Every figure carries the run's mark (`figures.run_mark`: smoke run, phantom data) inside
the image, and every name in it is said as a reader says it (`pipeline.results.names.display_name`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.report import plots as figures
from pipeline.report.quality_tables import style_summary
from pipeline.results import verdicts as V
from pipeline.results.names import display_name, experiment_order
from singanseg.io import InputError, list_pairs, read_image, read_mask

if TYPE_CHECKING:
    from pipeline.report.config import ReportParams


def grid_b_figure(per_image: pd.DataFrame, path: Path, mark: str = "", boot: V.Bootstrap | None = None) -> Path | None:
    """Grid B: the test IoU of each training set against N, with its bootstrap interval (issue
    22 s4; the report's one bootstrap: images within the fold, seeds within the cell)."""
    from pipeline.report.claims import BOOT, cell

    boot = boot or BOOT
    rows = []
    for protocol in ("paper", "clean"):
        sub = cell(per_image, "B", protocol)
        if sub.empty:
            continue
        scores = V.scores_from_frame(sub, where=f"grid B, {protocol} protocol")
        est = V.paired_bootstrap(scores, {e: {e: 1} for e in scores}, boot)
        for e in scores:
            kind, _, n = e.rpartition("_N")
            if kind.startswith("TRIVIAL") and kind != "TRIVIAL_TUNED_MASK":
                continue  # the best trivial row only: the others are flat lines below it
            iv = est.interval(e)
            rows.append({"kind": kind, "N": int(n), "protocol": f"{protocol} protocol", "estimate": iv.estimate,
                         "low": iv.low, "high": iv.high})  # fmt: skip
    if not rows:
        return None
    plot = pd.DataFrame(rows)
    plot = plot.assign(rank=plot.kind.map(lambda k: (k.startswith("TRIVIAL"), k != "REAL", k))).sort_values(["rank", "N"])
    plot = plot.assign(**{"training set": plot.kind.map(display_name)})
    return figures.intervals(plot, "N", "training set", "protocol", path, "real training images N (count)",
                             "test IoU (per-image mean, 0-1)",
                             f"Grid B: UNet++ test IoU with few real images ({boot.level:.0%} intervals)", mark)  # fmt: skip


def learning_curves(root: Path, path: Path, mark: str = "") -> Path | None:
    frames = []
    for csv in sorted(root.glob("A/*/fold*_curves/*.csv")):
        df = pd.read_csv(csv)
        if df.empty or "val_per_image_iou" not in df:
            continue
        frames.append(df.assign(experiment=csv.parent.parent.name, protocol=csv.stem, fold=csv.parent.name))
    if not frames:
        return None
    df = pd.concat(frames)
    protocol = "paper" if (df.protocol == "paper").any() else str(df.protocol.iloc[0])
    df = df[df.protocol == protocol]
    df = df.assign(**{"training set": df.experiment.map(display_name)})
    return figures.lines(df, "epoch", "val_per_image_iou", "training set", path,
                         title=f"Grid A learning curves, {protocol} protocol (mean ± sd over folds and seeds)",
                         xlabel="epoch", ylabel="validation IoU (per-image mean, 0-1)", integer_x=True, mark=mark)  # fmt: skip


def predictions_figure(root: Path, path: Path, mark: str = "") -> Path | None:
    """Grid A, first fold and seed: a few test images with their true masks, then the masks that
    the REAL, FAKE and REAL+FAKE models predict (the segment stage's `<cell>_predictions/`)."""
    folders = sorted(root.glob("A/*/fold*_seed*_predictions"))
    if not folders:
        return None
    protocols = sorted({p.name for f in folders for p in f.iterdir() if p.is_dir()})
    protocol = "paper" if "paper" in protocols else protocols[0]
    by_exp = {f.parent.name: f / protocol for f in folders if (f / protocol).is_dir()}

    def read(folder: Path, what: str) -> list[tuple[str, np.ndarray]]:
        files = sorted(folder.glob(f"*_{what}.png"))
        return [(f.name[: -len(f"_{what}.png")], read_image(f) if what == "image" else read_mask(f)[0]) for f in files]

    first = next(iter(by_exp.values()))
    images = dict(read(first, "image"))
    rows = [("test images and their true masks", [(images[i], m) for i, m in read(first, "mask")])]
    for exp in experiment_order([f"A/{e}" for e in by_exp]):
        short = exp.split("/", 1)[1]
        preds = dict(read(by_exp[short], "pred"))
        rows.append((f"{display_name(short)}: predicted masks ({protocol} protocol)",
                     [(images[i], preds[i]) for i in images if i in preds]))  # fmt: skip
    return figures.sample_grid(rows, path, mark=mark)


def _pairs_of(folder: Path, prefix: str, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    try:
        pairs = [p for p in list_pairs(folder) if p.id.startswith(prefix)]
    except InputError:
        return out
    for p in pairs[:n]:
        out.append((read_image(p.image), read_mask(p.mask)[0]))
    return out


def sample_grids(params: ReportParams, out: Path, mark: str = "") -> list[Path]:
    """Paper Fig 4/7: a real pair, then its synthetic pairs (per gen_start_scale, with/without ST)."""
    real = Path(params.real)
    syn = Path(params.synthetic)
    try:
        ids = [p.id for p in list_pairs(real)][: params.sample_models]
    except InputError:
        return []
    variants = sorted(p for p in syn.glob("singan*/gss*") if (p / "images").is_dir())
    written = []
    for i in ids:
        rows = [(f"real image {i} and its mask", _pairs_of(real, i, 1))]
        for v in variants:
            pairs = _pairs_of(v, f"{i}_", params.samples_per_model)
            if pairs:
                rows.append((display_name(f"{v.parent.name}/{v.name}"), pairs))
        if len(rows) > 1:
            written.append(figures.sample_grid(rows, out / f"samples_{i}.png", mark=mark))
    gans = sorted(p for p in syn.glob("*/n*") if (p / "images").is_dir() and not p.parent.name.startswith("singan"))
    if gans:
        # issue 23: the baselines' samples beside a reference strip of real pairs, each labelled
        reference = [(f"real images (reference): the first {params.samples_per_model} training pairs",
                      _pairs_of(real, "", params.samples_per_model))]  # fmt: skip
        rows = reference + [(display_name(f"{g.parent.name}/{g.name}"), _pairs_of(g, "", params.samples_per_model)) for g in gans]
        written.append(figures.sample_grid([r for r in rows if r[1]], out / "samples_baselines.png", mark=mark))
    return written


def _weights_of(provenance: dict[str, set[str]], prefix: str) -> str:
    """The weights of the provenance entries under `prefix`, short: "inception_fid pretrained", "RANDOM-INIT"."""
    parts = [(f"{k.split(': ', 1)[1]} " if ": " in k else "") + ("RANDOM-INIT" if "random" in w else w.split(":")[0])
             for k, ws in sorted(provenance.items()) if k.startswith(prefix) for w in sorted(ws)]  # fmt: skip
    return ", ".join(parts) or "none recorded"


def figure_caption(stem: str, provenance: dict[str, set[str]], style: set[str],
                   samples_per_image: int | None = None) -> tuple[str, str]:
    """(what a figure shows, the network weights behind it), for its caption in the report."""
    unet = "UNet++ encoder " + _weights_of(provenance, "UNet++ encoder")
    vgg = "style-transfer " + style_summary(style, " ")
    gens = "generators trained from scratch in this run"
    if stem.startswith("samples_") and stem != "samples_baselines":
        return (f"Samples of real image {stem[len('samples_'):]}. The real image and its mask, then samples of its "
                "SinGAN-Seg models per gen_start_scale and style transfer (paper Fig 4, 7); each image above its mask.",
                f"{gens}; {vgg}")  # fmt: skip
    what = {
        "samples_baselines": ("Samples of the baseline GANs. A strip of real training pairs for reference, then the first "
                              "samples of DCGAN, Progressive GAN and FastGAN, each image above its mask.", gens),
        "gan_by_k": ("GAN comparison at equal training size K. FID and KID of K fakes vs the same K real images, mean "
                     "and sd over sets; lower is better; FID is biased upwards at small K, so compare at equal K.",
                     "Inception " + _weights_of(provenance, "quality: inception")),
        "mask_foreground": ("Mask foreground of real and synthetic masks. The distribution of the percentage of "
                            "foreground pixels per mask (paper Fig 3, 6); similar shapes mean realistic masks. Style transfer "
                            "changes images only, so its sets share the masks of the plain SinGAN-Seg set.",
                            "none (pixel counts of masks)"),
        "mask_mean_std": ("Pixel-wise mean and std of sampled masks. Per SinGAN-Seg model (gen_start_scale 0, no "
                          "style transfer), the percentage of its samples with foreground at each pixel and its std "
                          "(paper Fig 5).", "none (pixel counts of masks)"),
        "grid_b": ("Grid B, data-scarce segmentation. UNet++ test IoU (higher is better) against the number N of real "
                   "training images, per training set and protocol"
                   + (f"; SinGAN-Seg adds {samples_per_image} samples per real image." if samples_per_image else "."),
                   unet),
        "predictions": ("UNet++ predictions. A few test images of grid A's first fold, each above its true mask, "
                        "then the masks the models trained on each training set predict for them (first seed).", unet),
        "learning_curves": ("Grid A learning curves. UNet++ validation IoU per epoch, mean and sd over folds and seeds "
                            "(higher is better).", unet),
    }  # fmt: skip
    return what.get(stem, (f"{stem.replace('_', ' ')}.", "see the header"))

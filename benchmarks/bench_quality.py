"""The `quality` stage on a stand-in of the cpu profile's inputs, timed and profiled (issue 23).

    python benchmarks/bench_quality.py build [--data ../shared/data/kvasir-seg-200] [--out /tmp/hq]
    python benchmarks/bench_quality.py run [--root /tmp/hq] [--profile cpu] [--cprofile /tmp/hq/q.prof] [--out DIR]
                                       [--set quality.gan_by_k.bootstrap.replicates=200 ...]

`build` writes, under `--out` (never in the repository: the images are the shared pairs):
- `data/real`, `data/folds.csv` as the data stage writes them (pipeline/data/prepare.py);
- `synthetic/` with the cpu run's sets and sizes: singan/gss0 and gss2 and the two
  style-transfer sets (200 ids x 4 samples at max side 40, the cpu SinGAN's output size;
  each a seeded perturbation of the real image downsized, its mask beside it), dcgan/nall and
  progan/nall (200 at 64 px), fastgan/n5 and n20 (200 each at 256 px).
`--singan-ids 40 --baseline-samples 100` scales the synthetic sets down (the reals, their folds
and the K=5/20 comparison stay as in the cpu run) for a loaded machine.
`--stub-inception` swaps Inception for a cheap stand-in with the same taps and counts the
images each pass takes: the rest of the stage timed at full size, and the passes to multiply
by the network's measured cost per image (`passes`).
`run` runs `pipeline.quality.evaluate` with the profile's quality params (tracking off) in a
fresh feature cache (`SINGANSEG_CACHE` a temporary folder holding only the mapped Inception
weights, as a new synthetic set meets an empty cache), prints the wall time and, with
`--cprofile`, writes the profile and prints its top entries.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SINGAN_SETS = ("singan/gss0", "singan/gss2", "singan_st1to1/gss0", "singan_st1to1000/gss0")
BASELINE_SETS = {"dcgan/nall": 64, "progan/nall": 64, "fastgan/n5": 256, "fastgan/n20": 256}


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    w, h = size
    s = max_side / max(w, h)
    return max(16, round(w * s)), max(16, round(h * s))


def _perturb(im: np.ndarray, rng, shift: int) -> np.ndarray:
    x = np.roll(im.astype(np.float64), (rng.integers(-shift, shift + 1), rng.integers(-shift, shift + 1)), (0, 1))
    x = x * rng.uniform(0.9, 1.1, 3) + rng.normal(0, 6, x.shape)
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _mask(m: Image.Image, size, rng) -> np.ndarray:
    a = np.asarray(m.resize(size, Image.NEAREST)) > 127
    a = np.roll(a, (rng.integers(-2, 3), rng.integers(-2, 3)), (0, 1))
    return np.where(a, 255, 0).astype(np.uint8)


def build(data: Path, out: Path, samples: int = 4, singan_ids: int | None = None, baseline_samples: int = 200) -> None:
    from pipeline.data.config import DataParams
    from pipeline.data.prepare import build as build_real
    from singanseg.io import natural_sorted, write_png

    if not (out / "data" / "real").is_dir():
        build_real(DataParams(source="folder", folder=str(data), track=False), out / "data")
    real = out / "data" / "real"
    ids = natural_sorted(p.stem for p in (real / "images").glob("*.png"))
    syn = out / "synthetic"
    shutil.rmtree(syn, ignore_errors=True)
    for si, name in enumerate(SINGAN_SETS):
        rng = np.random.default_rng(si)
        for i in ids[:singan_ids]:
            im, m = Image.open(real / "images" / f"{i}.png").convert("RGB"), Image.open(real / "masks" / f"{i}.png")
            size = _fit(im.size, 40)
            small = np.asarray(im.resize(size, Image.BICUBIC))
            if "_st" in name:  # style transfer: a colour shift of the same samples
                small = np.clip(small.astype(np.int16) + (8 * si, -4 * si, 0), 0, 255).astype(np.uint8)
            for n in range(samples):
                write_png(syn / name / "images" / f"{i}_{n}.png", _perturb(small, rng, 1 + 2 * ("gss0" in name)))
                write_png(syn / name / "masks" / f"{i}_{n}.png", _mask(m, size, rng))
    for bi, (name, side) in enumerate(BASELINE_SETS.items()):
        rng = np.random.default_rng(100 + bi)
        gan = name.split("/")[0]
        for n in range(baseline_samples):
            i = ids[rng.integers(len(ids))]
            im, m = Image.open(real / "images" / f"{i}.png").convert("RGB"), Image.open(real / "masks" / f"{i}.png")
            write_png(syn / name / "images" / f"{gan}_{n}.png", _perturb(np.asarray(im.resize((side, side), Image.BICUBIC)), rng, side // 16))
            write_png(syn / name / "masks" / f"{gan}_{n}.png", _mask(m, (side, side), rng))
    print(f"build: {len(ids)} reals in {real}, {len(SINGAN_SETS)} SinGAN-Seg sets x {len(ids[:singan_ids]) * samples}, "
          f"{len(BASELINE_SETS)} baseline sets x {baseline_samples} in {syn}")  # fmt: skip


def _override(params, assignments: list[str]):
    """`quality.a.b=value` (YAML value) on the frozen dataclasses."""
    import yaml

    for a in assignments:
        key, _, value = a.partition("=")
        path = key.split(".")[1:] if key.startswith("quality.") else key.split(".")
        params = _replace(params, path, yaml.safe_load(value))
    return params


def _replace(obj, path, value):
    if len(path) == 1:
        return dataclasses.replace(obj, **{path[0]: value})
    return dataclasses.replace(obj, **{path[0]: _replace(getattr(obj, path[0]), path[1:], value)})


# spatial side of each tap at a 299 px input (InceptionFeatures)
TAP_SIDE = {"conv2b": 147, "pool1": 73, "conv4a": 71, "pool2": 35, "mixed6e": 17, "pool3": 1}
FULL = ("mixed6e", "pool3")


def count_passes(stub: bool) -> dict[str, int]:
    """Count the images through Inception, by how deep the pass goes ('full' = to Mixed_6e or
    pool3, 'conv2b' = SIFID's early tap only); with `stub`, replace the network by a cheap
    stand-in of the same interface (features: tanh of a fixed projection of the average-pooled
    input), so that the rest of the stage is timed at full size with the passes counted."""
    import torch
    import torch.nn.functional as F

    from pipeline.metrics import inception

    counts = {"full": 0, "conv2b": 0, "calls": 0}
    real_forward = inception.InceptionFeatures.forward
    g = torch.Generator().manual_seed(0)
    proj = {t: torch.randn(inception.TAPS[t], 3, generator=g) for t in inception.TAPS}

    def forward(self, x, taps=("pool3",), normalized=False):
        counts["full" if any(t in FULL for t in taps) else "conv2b"] += x.shape[0]
        counts["calls"] += 1
        if not stub:
            return real_forward(self, x, taps, normalized)
        if self.resize and tuple(x.shape[-2:]) != (299, 299):
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return {t: torch.tanh(torch.einsum("nchw,dc->ndhw", F.adaptive_avg_pool2d(x, TAP_SIDE[t]), proj[t]) * 2) for t in taps}

    inception.InceptionFeatures.forward = forward
    return counts


def run(root: Path, profile: str, out: Path | None, prof: Path | None, sets: list[str], stub: bool = False) -> float:
    from pipeline.infra.params import load_section
    from pipeline.metrics.inception import CACHE_NAME, cache_dir

    counts = count_passes(stub)

    params = load_section("quality", __import__("pipeline.quality", fromlist=["QualityParams"]).QualityParams, "params.yaml", profile)
    params = _override(dataclasses.replace(params, track=False), sets)
    weights = cache_dir() / CACHE_NAME
    with tempfile.TemporaryDirectory(prefix="hq-cache-") as cache:
        if weights.is_dir():  # the mapped Inception only: features start cold
            shutil.copytree(weights, Path(cache) / CACHE_NAME)
        os.environ["SINGANSEG_CACHE"] = cache
        from pipeline.quality import evaluate

        out = out or Path(tempfile.mkdtemp(prefix="hq-out-"))
        out.mkdir(parents=True, exist_ok=True)
        args = (params, root / "data" / "real", root / "synthetic", out)
        t0 = time.perf_counter()
        if prof is not None:
            import cProfile
            import pstats

            pr = cProfile.Profile()
            pr.runcall(evaluate, *args)
            elapsed = time.perf_counter() - t0
            pr.dump_stats(prof)
            pstats.Stats(str(prof)).sort_stats("cumulative").print_stats(45)
        else:
            evaluate(*args)
            elapsed = time.perf_counter() - t0
    cpu = time.process_time()
    print(f"quality: {elapsed:.1f} s wall, {cpu:.1f} s CPU of this process ({profile} profile, {root}"
          f"{', STUB Inception' if stub else ''}) -> {out}; Inception images: {counts}")  # fmt: skip
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--data", type=Path, default=Path("../shared/data/kvasir-seg-200"))
    b.add_argument("--out", type=Path, default=Path("/tmp/hq"))
    b.add_argument("--singan-ids", type=int, default=None, help="SinGAN-Seg models of the first N ids only (default: all 200)")
    b.add_argument("--baseline-samples", type=int, default=200, help="samples per baseline set (cpu profile: 200)")
    r = sub.add_parser("run")
    r.add_argument("--root", type=Path, default=Path("/tmp/hq"))
    r.add_argument("--profile", default="cpu")
    r.add_argument("--out", type=Path, default=None)
    r.add_argument("--cprofile", type=Path, default=None)
    r.add_argument("--stub-inception", action="store_true", help="a cheap stand-in for Inception: times the rest, counts the passes")
    r.add_argument("--set", action="append", default=[], help="quality.<key>=<yaml value>, e.g. quality.gan_by_k.bootstrap.replicates=200")
    a = ap.parse_args(argv)
    if a.cmd == "build":
        build(a.data, a.out, singan_ids=a.singan_ids, baseline_samples=a.baseline_samples)
    else:
        run(a.root, a.profile, a.out, a.cprofile, a.set, a.stub_inception)
    return 0


if __name__ == "__main__":
    sys.exit(main())

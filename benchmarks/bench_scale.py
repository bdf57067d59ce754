"""Models per hour: the reference one image at a time, our single-model loop, batched K.

Per scale and method, the cost of one scale is modelled as `setup + niter * per_iter`,
measured from two runs (niter = 1 and 1 + iters) after a warm-up run (oneDNN / cuDNN set
up each new shape once). Projections then use the profile's niter (smoke: 30; paper: 2000,
paper.md s1), so a few iterations per scale are enough. K models of one pyramid (the same
image under K seeds: speed does not depend on content) cost one batched run; models per
hour = 3600 * K / sum over scales. Coarser generators are freshly initialised (speed does
not depend on their weights). CPU time is process time (time.process_time: on a shared
machine wall time measures the neighbours); CUDA time is wall time after synchronize.

    OMP_NUM_THREADS=1 python benchmarks/bench_scale.py --threads 1 --ks 2,4,8 \
        --paper-scales 0,1,2,3 --markdown benchmarks/README_scale.md
    python benchmarks/bench_scale.py --device cuda --profiles paper --ks 1,4,8,16   # gpu_check.sh

Without the Kvasir sample (../shared/data) a seeded random 529x622 pair is used: the size of
HyperKvasir image #1, which gives the paper's 9-scale pyramid (paper.md s1).
"""

from __future__ import annotations

import argparse
import builtins
import dataclasses
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from singanseg.config import SinGANConfig, preset
from singanseg.networks import init_models
from singanseg.pyramid import build_pyramid, to_rgba
from singanseg.training import Member, pad, train_scale

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kvasir-seg-200"


def _rgba(data: str | None) -> tuple[np.ndarray, str]:
    if data and Path(data, "images").is_dir():
        from singanseg.io import list_pairs, read_image, read_mask

        pair = list_pairs(data)[0]
        mask, info = read_mask(pair.mask)
        return to_rgba(read_image(pair.image), mask, ambiguous_px=info.ambiguous_px), pair.id
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (529, 622, 3), dtype=np.uint8)
    mask = np.zeros((529, 622), np.uint8)
    mask[150:350, 200:420] = 255
    return to_rgba(image, mask), "random 529x622"


class Clock:
    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()


def _frozen(n, reals, cfg, device, seed=0):
    """n coarser scales, freshly initialised: (G, D, padded z, amp) per scale."""
    gen, out = torch.Generator().manual_seed(seed), []
    for k in range(n):
        D, G = init_models(cfg, k, gen)
        h, w = reals[k].shape[2:]
        z = pad(torch.randn(1, cfg.nc_z, h, w, generator=gen) * (k == 0), cfg.pad)
        out.append(
            (
                G.to(device).eval().requires_grad_(False),
                D.to(device),
                z.to(device),
                1.0 if k == 0 else 0.1,
            )
        )
    return out


def run_batched(n, reals, spec, cfg, *, frozen, device, k):
    """training.train_scale of k models of one pyramid (k = 1: "single", the same loop)."""
    scales = [{"G": f[0], "D": f[1], "z_opt": f[2], "noise_amp": f[3]} for f in frozen]
    members = [
        Member(str(i), None, i, torch.Generator().manual_seed(i), reals, spec, {}, scales)
        for i in range(k)
    ]
    train_scale(n, members, cfg, device)


def run_reference(n, reals, cfg, *, sf, frozen, device, outf):
    from singan_seg_polyp.SinGAN import training as RT  # the authors' code (singan-seg-polyp 1.0.7)

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_singan import reference_opt

    opt = reference_opt(cfg, sf, cfg.niter, outf)
    opt.device, opt.not_cuda = device, device.type != "cuda"
    saved = builtins.print
    builtins.print = lambda *a, **k: None  # the reference prints every network it builds
    try:
        opt.nfc, opt.min_nfc = cfg.nfc_at(n)
        D, G = RT.init_models(opt)
        in_s = torch.full([1, 4, *reals[0].shape[2:]], 0, dtype=torch.bool, device=device)
        RT.train_single_scale(D, G, reals, [f[0] for f in frozen], [f[2] for f in frozen],
                              in_s if n else 0, [f[3] for f in frozen], opt)  # fmt: skip
    finally:
        builtins.print = saved


def measure(fn, cfg, iters, clock) -> tuple[float, float]:
    """(setup seconds, seconds per iteration) of one scale run by fn(cfg)."""
    fn(dataclasses.replace(cfg, niter=1))  # warm-up: per-shape kernel set-up
    t = clock()
    fn(dataclasses.replace(cfg, niter=1))
    t1 = clock() - t
    t = clock()
    fn(dataclasses.replace(cfg, niter=1 + iters))
    tn = clock() - t
    per_iter = max(tn - t1, 0.0) / iters
    return max(t1 - per_iter, 0.0), per_iter


def bench_profile(name, cfg, rgba, methods, scales, iters, device, deadline, log):
    """{method: [(scale, setup, per_iter, models_per_run)]} for one profile."""
    reals, spec = build_pyramid(rgba, cfg)
    reals = [r.to(device) for r in reals]
    scales = [s for s in (scales if scales is not None else range(len(reals))) if s < len(reals)]
    shapes = " ".join(f"{h}x{w}" for h, w in (r.shape[2:] for r in reals))
    log(
        f"[{name}] {len(reals)} scales: {shapes}; timing scales {scales}, {iters} iterations, {device}"
    )
    clock, out = Clock(device), {m: [] for m, _ in methods}
    failed: set[str] = set()
    with tempfile.TemporaryDirectory() as outf:
        for n in scales:  # scale-outer: a spent budget leaves every method with the same scales
            frozen = _frozen(n, reals, cfg, device)
            for method, k in methods:
                if method in failed:
                    continue
                if time.monotonic() > deadline:
                    log(f"  time budget spent: scale {n} and above not timed")
                    return out, len(reals)
                if method == "reference":
                    fn = partial(run_reference, n, reals, sf=spec.scale_factor, frozen=frozen,
                                 device=device, outf=outf)  # fmt: skip
                else:
                    fn = partial(run_batched, n, reals, spec, frozen=frozen, device=device, k=k)
                try:
                    setup, per_iter = measure(fn, cfg, iters, clock)
                except Exception as e:  # noqa: BLE001 - e.g. the reference not installed, OOM
                    log(f"  {method} scale {n}: not measured ({type(e).__name__}: {str(e)[:160]})")
                    failed.add(method)  # its earlier scales stay; the table says it is incomplete
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    continue
                out[method].append((n, setup, per_iter, k))
                log(
                    f"  {method:>12} scale {n}: setup {setup:.3f} s, {per_iter:.4f} s/it for {k} model(s)"
                )
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return out, len(reals)


def table(name, results, niter, n_scales, unit) -> list[str]:
    """One markdown table: seconds per model at `niter` over the timed scales, models/h, ratios."""
    timed = sorted({n for rows in results.values() for n, *_ in rows})
    complete = {m: r for m, r in results.items() if r and sorted(n for n, *_ in r) == timed}
    lines = [
        f"**{name}**: niter {niter}, scales {timed} of {n_scales}",
        "",
        f"| method | models per run | s/it per run (sum over scales) | {unit}-s per model | models per {unit}-hour "
        f"| vs single | vs reference | {unit}-hours per 1000 models |",
        "|---|---|---|---|---|---|---|---|",
    ]
    per_model = {}
    for m, rows in complete.items():
        k = rows[0][3]
        per_model[m] = (
            sum(s + niter * it for _, s, it, _ in rows) / k,
            sum(it for _, _, it, _ in rows),
            k,
        )
    for m, (spm, it, k) in per_model.items():
        vs_s = per_model["single"][0] / spm if "single" in per_model else float("nan")
        vs_r = per_model["reference"][0] / spm if "reference" in per_model else float("nan")
        lines.append(
            f"| {m} | {k} | {it:.4f} | {spm:.1f} | {3600 / spm:.1f} | {vs_s:.2f} | {vs_r:.2f} | {1000 * spm / 3600:.1f} |"
        )
    for m, rows in results.items():
        if m not in complete:
            lines.append(
                f"| {m} | not measured at every scale (only {[n for n, *_ in rows]}) | | | | | | |"
            )
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data", default=str(DEFAULT_DATA), help="dataset folder (first pair); random if absent"
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--profiles", default="smoke,paper", help="comma-separated: smoke, paper")
    ap.add_argument("--ks", default="2,4,8", help="batch sizes K for the batched trainer")
    ap.add_argument(
        "--iters", type=int, default=2, help="timed iterations per scale (beyond the first)"
    )
    ap.add_argument(
        "--paper-scales", default=None, help="paper scales to time, e.g. 0,1,2,3 (default all)"
    )
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument(
        "--budget-s", type=float, default=1e9, help="stop timing new scales after this long"
    )
    ap.add_argument("--markdown", default=None, help="also write the tables to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            "bench_scale: --device cuda but CUDA is not available; use --device cpu",
            file=sys.stderr,
        )
        return 2
    rgba, source = _rgba(args.data)
    deadline = time.monotonic() + args.budget_s
    methods = ([] if args.no_reference else [("reference", 1)]) + [("single", 1)]
    methods += [(f"batched K={k}", k) for k in (int(x) for x in args.ks.split(","))]
    lines = []

    def log(msg):
        print(msg, flush=True)

    hw = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {args.threads} thread(s)"
    )
    head = (
        f"input {source}; {hw}; torch {torch.__version__}; {args.iters} timed iterations per scale"
    )
    log(head)
    for name in args.profiles.split(","):
        cfg = preset(name)
        scales = None
        if name == "paper" and args.paper_scales:
            scales = [int(s) for s in args.paper_scales.split(",")]
        results, n_scales = bench_profile(
            name, cfg, rgba, methods, scales, args.iters, device, deadline, log
        )
        unit = "GPU" if device.type == "cuda" else "CPU"
        lines += table(
            f"{name} ({SinGANConfig.__name__} preset)", results, cfg.niter, n_scales, unit
        ) + [""]
    print("\n" + "\n".join(lines))
    if args.markdown:
        Path(args.markdown).write_text(f"{head}\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Seconds per training iteration: the one loop vs the two loops it replaced (issue 25 s1).

The old side is read from a git revision: singanseg/training.py's `train_single_scale` (the
single-model loop) for K = 1 and singanseg/training_batched.py's `train_scale_batched` for
`--ks` K > 1; the new side is `training.train_iterations` at K = 1 and `training.train_scale`
at K. Same pair (K > 1: under K seeds), config, thread count and coarser chain (freshly
initialised: speed does not depend on weights); marginal process CPU time per iteration,
(t(1 + iters) - t(1)) / iters after a warm-up, old and new interleaved `--repeat` times
(median). K > 1 times whole scales, so its marginal is per iteration of K models.

    OMP_NUM_THREADS=1 python benchmarks/bench_loop.py --old bb1328f --profile smoke --iters 5 --repeat 5 --ks 4,8
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

from singanseg.config import preset
from singanseg.io import list_pairs, read_image, read_mask
from singanseg.networks import init_models
from singanseg.pyramid import build_pyramid, to_rgba
from singanseg.training import Member, init_scale, pad, train_iterations

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "kvasir-seg-200"


def old_training(rev: str) -> types.ModuleType:
    src = subprocess.check_output(["git", "show", f"{rev}:singanseg/training.py"], cwd=ROOT, text=True)
    mod = types.ModuleType("_old_training")
    sys.modules[mod.__name__] = mod  # dataclasses look their module up
    exec(compile(src, f"{rev}:singanseg/training.py", "exec"), mod.__dict__)
    return mod


def _chain(n, reals, cfg, gen):
    out = []
    for k in range(n):
        D, G = init_models(cfg, k, gen)
        h, w = reals[k].shape[2:]
        z = pad(torch.randn(1, 4, h, w, generator=gen) * (k == 0), cfg.pad)
        out.append((G.eval().requires_grad_(False), z, 1.0 if k == 0 else 0.1, D))
    return out


def time_new(n, reals, spec, cfg, niter) -> float:
    gen, c = torch.Generator().manual_seed(0), dataclasses.replace(cfg, niter=niter)
    scales = [{"G": G, "D": D, "z_opt": z, "noise_amp": a} for G, z, a, D in _chain(n, reals, c, gen)]
    m = Member("bench", None, 0, gen, reals, spec, {}, scales)
    t = time.process_time()
    train_iterations(init_scale(n, [m], c, "cpu"), c)
    return time.process_time() - t


def time_old(old, n, reals, spec, cfg, niter) -> float:
    gen, c = torch.Generator().manual_seed(0), dataclasses.replace(cfg, niter=niter)
    chain = _chain(n, reals, c, gen)
    frozen = old.Frozen([g for g, *_ in chain], [z for _, z, *_ in chain], [a for _, _, a, _ in chain])
    t = time.process_time()
    netD, netG = init_models(c, n, gen)
    torch.randn(1, c.nc_z, *reals[n].shape[2:], generator=gen)
    inputs = old.scale_inputs(frozen, reals, c, spec.scale_factor)
    opts = old.make_optimizers(netD, netG, c)

    def draw_prev():
        return pad(old.draw_concat(frozen, reals, "rand", c, spec.scale_factor, gen), c.pad)

    old.train_single_scale(netD, netG, *opts, inputs, draw_prev, c, gen)
    return time.process_time() - t


def old_batched(rev: str) -> types.ModuleType:
    src = subprocess.check_output(["git", "show", f"{rev}:singanseg/training_batched.py"], cwd=ROOT, text=True)
    mod = types.ModuleType("_old_training_batched")
    sys.modules[mod.__name__] = mod
    exec(compile(src, f"{rev}:singanseg/training_batched.py", "exec"), mod.__dict__)
    return mod


def time_scale(member_cls, fn, k, n, reals, spec, cfg, niter) -> float:
    """One whole scale of k models through fn(n, members, cfg, device) (the batched entry)."""
    gen, c = torch.Generator().manual_seed(0), dataclasses.replace(cfg, niter=niter)
    scales = [{"G": G, "D": D, "z_opt": z, "noise_amp": a} for G, z, a, D in _chain(n, reals, c, gen)]
    members = [member_cls(str(i), None, i, torch.Generator().manual_seed(i), reals, spec, {}, scales) for i in range(k)]
    t = time.process_time()
    fn(n, members, c, "cpu")
    return time.process_time() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="git revision whose singanseg/training.py is the old loop")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--scales", default=None, help="comma-separated scale indices (default: all)")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--ks", default="", help="also K > 1 models, comma-separated (old: train_scale_batched)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    old = old_training(args.old)
    cfg = preset(args.profile)
    pair = list_pairs(args.data)[0]
    mask, info = read_mask(pair.mask)
    reals, spec = build_pyramid(to_rgba(read_image(pair.image), mask, ambiguous_px=info.ambiguous_px), cfg)
    scales = range(len(reals)) if args.scales is None else [int(s) for s in args.scales.split(",")]
    print(f"{pair.id}, profile {args.profile}: {len(reals)} scales; old = {args.old}:singanseg/training.py; "
          f"threads {args.threads}, torch {torch.__version__}, {args.iters} iterations x {args.repeat}")  # fmt: skip
    print(f"{'scale':>5} {'h x w':>9} {'old s/it':>9} {'new s/it':>9} {'new/old':>7}")
    ks = [int(k) for k in args.ks.split(",") if k]
    timers = {"old": lambda n, k: time_old(old, n, reals, spec, cfg, k),
              "new": lambda n, k: time_new(n, reals, spec, cfg, k)}  # fmt: skip
    if ks:
        import singanseg.training as new_training

        ob = old_batched(args.old)
        for K in ks:
            timers[f"old K={K}"] = lambda n, k, K=K: time_scale(ob.Member, ob.train_scale_batched, K, n, reals, spec, cfg, k)
            timers[f"new K={K}"] = lambda n, k, K=K: time_scale(Member, new_training.train_scale, K, n, reals, spec, cfg, k)
    tot = {k: 0.0 for k in timers}
    for n in scales:
        runs = {k: [] for k in timers}
        for timer in timers.values():
            timer(n, 1)  # warm-up: oneDNN's per-shape set-up
        for _ in range(args.repeat):
            for name, timer in timers.items():
                runs[name].append((timer(n, 1 + args.iters) - timer(n, 1)) / args.iters)
        med = {k: statistics.median(v) for k, v in runs.items()}
        for k in tot:
            tot[k] += med[k]
        h, w = reals[n].shape[2:]
        print(f"{n:>5} {f'{h}x{w}':>9} {med['old']:>9.4f} {med['new']:>9.4f} {med['new'] / med['old']:>7.3f}"
              + "".join(f"   K={K}: old {med[f'old K={K}']:.4f} new {med[f'new K={K}']:.4f} "
                        f"{med[f'new K={K}'] / med[f'old K={K}']:.3f}" for K in ks), flush=True)  # fmt: skip
    print(f"{'all':>5} {'':>9} {tot['old']:>9.4f} {tot['new']:>9.4f} {tot['new'] / tot['old']:>7.3f}"
          + "".join(f"   K={K}: old {tot[f'old K={K}']:.4f} new {tot[f'new K={K}']:.4f} "
                    f"{tot[f'new K={K}'] / tot[f'old K={K}']:.3f}" for K in ks))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Seconds per training iteration, ours vs the authors' `train_single_scale`, at every scale.

Same image (a Kvasir-SEG pair), same config (paper's by default: max_size 250, nfc 32..128),
same thread count. Coarser generators are freshly initialised (speed does not depend on
their weights). The marginal cost per iteration is (t(1 + iters) - t(1)) / iters, so set-up
and the reference's end-of-scale saving are excluded on both sides. t is this process's CPU
time (time.process_time): on a shared machine wall time mostly measures the neighbours.
"critic" times only the Dsteps critic steps (training.critic_step, op for op the
reference's D loop): no implementation of the identical algorithm can skip them, so
reference / critic is the ceiling of the ratio ("ceiling").

    OMP_NUM_THREADS=1 python benchmarks/bench_singan.py --threads 1 --iters 2 [--repeat 3] [--scales 0,4,8] [--resize torch]
"""

from __future__ import annotations

import argparse
import builtins
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from singanseg.config import SinGANConfig
from singanseg.io import list_pairs, read_image, read_mask
from singanseg.networks import init_models
from singanseg.pyramid import build_pyramid, to_rgba
from singanseg.training import Member, critic_step, init_scale, pad, train_iterations

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kvasir-seg-200"


def reference_opt(cfg: SinGANConfig, scale_factor: float, niter: int, outf: str):
    return argparse.Namespace(
        nc_im=4,
        nc_z=4,
        nfc=cfg.nfc,
        min_nfc=cfg.min_nfc,
        nfc_init=cfg.nfc,
        min_nfc_init=cfg.min_nfc,
        ker_size=3,
        num_layer=5,
        stride=1,
        padd_size=0,
        scale_factor=scale_factor,
        scale_factor_init=0.75,
        noise_amp=0.1,
        noise_amp_init=0.1,
        min_size=cfg.min_size,
        max_size=cfg.max_size,
        niter=niter,
        gamma=0.1,
        lr_g=5e-4,
        lr_d=5e-4,
        beta1=0.5,
        Gsteps=3,
        Dsteps=3,
        lambda_grad=0.1,
        alpha=10,
        mode="train",
        device=torch.device("cpu"),
        not_cuda=True,
        netG="",
        netD="",
        outf=outf,
    )


def time_reference(n, reals, cfg, scale_factor, niter, outf) -> float:
    from singan_seg_polyp.SinGAN import training as RT

    opt = reference_opt(cfg, scale_factor, niter, outf)
    quiet, saved = (lambda *a, **k: None), builtins.print
    builtins.print = quiet
    try:
        Gs, Zs, amps = [], [], []
        for k in range(n):
            opt.nfc, opt.min_nfc = cfg.nfc_at(k)
            _, G = RT.init_models(opt)
            G.requires_grad_(False)
            Gs.append(G.eval())
            h, w = reals[k].shape[2:]
            Zs.append(pad(torch.randn(1, 4, h, w) * (k == 0), cfg.pad))
            amps.append(1.0 if k == 0 else 0.1)
        in_s = torch.full([1, 4, *reals[0].shape[2:]], 0, dtype=torch.bool)
        opt.nfc, opt.min_nfc = cfg.nfc_at(n)
        D, G = RT.init_models(opt)
        t = time.process_time()
        RT.train_single_scale(D, G, reals, Gs, Zs, in_s if n else 0, amps, opt)
        return time.process_time() - t
    finally:
        builtins.print = saved


def _member(n, reals, spec, cfg, gen) -> Member:
    """One model with n coarser scales freshly initialised (speed does not depend on weights)."""
    scales = []
    for k in range(n):
        D, G = init_models(cfg, k, gen)
        G.requires_grad_(False)
        h, w = reals[k].shape[2:]
        z = pad(torch.randn(1, 4, h, w, generator=gen) * (k == 0), cfg.pad)
        scales.append({"G": G.eval(), "D": D, "z_opt": z, "noise_amp": 1.0 if k == 0 else 0.1})
    return Member("bench", None, 0, gen, reals, spec, {}, scales)


def _setup(n, reals, spec, cfg, niter):
    """A model of n coarser scales, config with `niter`, scale n initialised (training.init_scale)."""
    gen = torch.Generator().manual_seed(0)
    c = dataclasses.replace(cfg, niter=niter)
    return init_scale(n, [_member(n, reals, spec, c, gen)], c, "cpu"), c


def time_critic(n, reals, spec, cfg, niter) -> float:
    """Only the critic steps (training.critic_step, op for op the reference's D loop), niter x Dsteps.

    What no implementation of the identical algorithm can skip: the ceiling of the ratio is
    reference / this.
    """
    t = time.process_time()
    s, c = _setup(n, reals, spec, cfg, niter)
    h, w = reals[n].shape[2:]
    zeros = torch.zeros(1, c.nc_z, h + 2 * c.pad, w + 2 * c.pad)
    for _ in range(niter):
        noise_ = pad(torch.randn(1, c.nc_z, h, w, generator=s.gens[0]), c.pad)
        for _ in range(c.Dsteps):
            prev = zeros if n == 0 else s.draw_prev(c)
            critic_step(s, noise_ + prev, prev, c)
    return time.process_time() - t


def time_ours(n, reals, spec, cfg, niter) -> float:
    t = time.process_time()
    s, c = _setup(n, reals, spec, cfg, niter)
    train_iterations(s, c)
    return time.process_time() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--index", type=int, default=0, help="which pair (ids in natural-sort order)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--scales", default=None, help="comma-separated scale indices (default: all)")
    ap.add_argument("--resize", default="torch", choices=("torch", "reference"))
    ap.add_argument("--max-size", type=int, default=250)
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--no-critic", action="store_true", help="skip the critic-only column")
    ap.add_argument(
        "--repeat", type=int, default=1, help="measurements per side and scale (median; interleaved)"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    pair = list_pairs(args.data)[args.index]
    cfg = SinGANConfig(resize=args.resize, max_size=args.max_size)
    mask, info = read_mask(pair.mask)
    reals, spec = build_pyramid(
        to_rgba(read_image(pair.image), mask, ambiguous_px=info.ambiguous_px), cfg
    )
    scales = range(len(reals)) if args.scales is None else [int(s) for s in args.scales.split(",")]
    print(
        f"{pair.id}: {len(reals)} scales, finest {tuple(reals[-1].shape[2:])}, threads {args.threads}, "
        f"resize {args.resize}, torch {torch.__version__}"
    )
    print(
        f"{'scale':>5} {'h x w':>9} {'nfc':>4} {'ref s/it':>9} {'ours s/it':>9} {'ratio':>6} "
        f"{'critic s/it':>11} {'ceiling':>7}"
    )
    tot = {"ref": 0.0, "ours": 0.0, "critic": 0.0}
    with tempfile.TemporaryDirectory() as outf:
        timers = {
            "ours": lambda n, k: time_ours(n, reals, spec, cfg, k),
            "ref": lambda n, k: time_reference(n, reals, cfg, spec.scale_factor, k, outf),
            "critic": lambda n, k: time_critic(n, reals, spec, cfg, k),
        }
        if args.no_reference:
            del timers["ref"]
        if args.no_critic:
            del timers["critic"]
        for n in scales:
            runs: dict[str, list[float]] = {k: [] for k in timers}
            for timer in timers.values():
                timer(n, 1)  # a first call pays oneDNN's per-shape set-up: warm every side
            for _ in range(args.repeat):  # interleaved, so drifting load hits every side alike
                for name, timer in timers.items():
                    runs[name].append((timer(n, 1 + args.iters) - timer(n, 1)) / args.iters)
            med = {k: statistics.median(v) for k, v in runs.items()}
            ref, ours, critic = (med.get(k, float("nan")) for k in ("ref", "ours", "critic"))
            for k in tot:
                tot[k] += med.get(k, float("nan"))
            h, w = reals[n].shape[2:]
            print(
                f"{n:>5} {f'{h}x{w}':>9} {cfg.nfc_at(n)[0]:>4} {ref:>9.3f} {ours:>9.3f} {ref / ours:>6.2f} "
                f"{critic:>11.3f} {ref / critic:>7.2f}",
                flush=True,
            )
    print(
        f"{'all':>5} {'':>9} {'':>4} {tot['ref']:>9.3f} {tot['ours']:>9.3f} {tot['ref'] / tot['ours']:>6.2f} "
        f"{tot['critic']:>11.3f} {tot['ref'] / tot['critic']:>7.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

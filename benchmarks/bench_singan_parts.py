"""The parts behind benchmarks/README_singan.md's "where the time goes": one Adam step per
implementation (`adam_impl`), and the paper's 3x3 convolutions (forward GFLOP/s, forward +
backward in both memory formats) at the coarsest and the finest scale of a Kvasir pyramid.

    OMP_NUM_THREADS=1 python benchmarks/bench_singan_parts.py --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F

from singanseg.config import SinGANConfig
from singanseg.networks import init_models


def per_call_ms(fn, n: int) -> float:
    fn()  # warm-up: oneDNN's per-shape set-up
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e3


def adam_rows(cfg: SinGANConfig) -> list[str]:
    rows = []
    for scale in (0, 8):
        netD, _ = init_models(cfg, scale, torch.Generator().manual_seed(0))
        for name, kw in (("loop", {"foreach": False, "fused": False}), ("foreach", {"foreach": True}), ("fused", {"fused": True})):
            opt = torch.optim.Adam(netD.parameters(), lr=5e-4, betas=(0.5, 0.999), **kw)
            for p in netD.parameters():
                p.grad = torch.randn_like(p)
            rows.append(f"| Adam step, critic of scale {scale} | {name} | {per_call_ms(opt.step, 200):.3f} ms |")
    return rows


def conv_rows() -> list[str]:
    rows = []
    # (channels, padded input h x w): scale 0 and scale 8's body layers of the README's pyramid
    for c, h, w, n in ((32, 33, 38, 100), (64, 80, 93, 10), (128, 221, 258, 3)):
        x = torch.randn(1, c, h, w)
        weight, bias = torch.randn(c, c, 3, 3), torch.randn(c)
        gflop = 2 * c * c * 9 * (h - 2) * (w - 2) / 1e9
        fwd = per_call_ms(lambda x=x, weight=weight, bias=bias: F.conv2d(x, weight, bias), n)
        rows.append(f"| conv {c}->{c} 3x3 at {h}x{w}, forward | contiguous | {fwd:.2f} ms ({gflop / fwd * 1e3:.0f} GFLOP/s) |")
        for fmt in (torch.contiguous_format, torch.channels_last):
            xi = x.contiguous(memory_format=fmt).requires_grad_()
            wi = weight.contiguous(memory_format=fmt).requires_grad_()

            def fwd_bwd(xi=xi, wi=wi, bias=bias):
                F.conv2d(xi, wi, bias).sum().backward()

            name = "channels_last" if fmt is torch.channels_last else "contiguous"
            rows.append(f"| conv {c}->{c} 3x3 at {h}x{w}, forward + backward | {name} | {per_call_ms(fwd_bwd, n):.2f} ms |")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)\n\n| what | variant | time |\n|---|---|---|")
    print("\n".join(adam_rows(SinGANConfig()) + conv_rows()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

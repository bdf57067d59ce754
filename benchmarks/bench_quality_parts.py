"""Per-image cost of the quality stage's Inception passes and the cost of one Fréchet distance,
side by side in one process (CPU seconds of the process, and wall): benchmarks/README.md, issue 23.

    python benchmarks/bench_quality_parts.py
"""

from __future__ import annotations

import time

import numpy as np
import torch

from pipeline.metrics import fair, frechet
from pipeline.metrics.inception import load_inception

N = 10


def timed(label: str, fn, n: int = N) -> None:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    c, w = time.process_time() - c0, time.perf_counter() - w0
    print(f"{label:45s} {c / n:7.3f} CPU-s {w / n:7.3f} wall-s" + (" per image" if n > 1 else ""), flush=True)


def main() -> None:
    net = load_inception("inception_fid", "pretrained", None, resize=True)
    torch.manual_seed(0)
    x = torch.rand(N, 3, 299, 299)
    with torch.no_grad():
        net(x[:2], ("pool3",))  # warm-up
        timed("full pass (pool3), batch 10", lambda: net(x, ("pool3",)))
        timed("shared pass (conv2b+pool3), batch 10", lambda: net(x, ("conv2b", "pool3")))
        timed("conv2b only, batch 10", lambda: net(x, ("conv2b",)))
        timed("conv2b only, one image at a time", lambda: [net(x[i : i + 1], ("conv2b",)) for i in range(N)])
        f = net(x[:1], ("conv2b",))["conv2b"][0]
    s = f.permute(1, 2, 0).reshape(-1, 64).double().numpy()
    timed("SIFID statistics (np.cov 21609x64)", lambda: [frechet.gaussian_statistics(s) for _ in range(N)])
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(2048, 2048)) * (np.arange(1, 2049) ** -0.7)  # a decaying spectrum, like Inception's
    a = np.maximum(rng.normal(size=(800, 2048)) @ basis.T, 0)
    b = np.maximum((rng.normal(size=(200, 2048)) * 1.1 + 0.1) @ basis.T, 0)
    (m1, s1), (m2, s2) = frechet.gaussian_statistics(b), frechet.gaussian_statistics(a)
    out = {}
    timed("Frechet 2048-d eigen (200 vs 800 images)", lambda: out.setdefault("eigen", frechet.frechet_distance(m1, s1, m2, s2)), 1)
    timed("the same, sigma1's root again", lambda: frechet.frechet_distance(m1, s1, m2, s2), 1)
    timed("Frechet lowrank (fid.frechet: lowrank)", lambda: out.setdefault("lowrank", fair.fid_lowrank(b, a)), 1)
    print(f"eigen {out['eigen']!r} lowrank {out['lowrank']!r} relative difference {abs(out['eigen'] - out['lowrank']) / out['eigen']:.1e}")


if __name__ == "__main__":
    main()

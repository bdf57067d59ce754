"""Functional check of training and sampling on a device (the first step of gpu_check.sh).

Trains the same smoke-size SinGAN-Seg model (one synthetic image + mask, fixed seed) on
`--device` and on the CPU through the public API, samples on the device, and prints one
markdown line: whether it worked, the seconds each side took, and how far the two sets of
generator weights ended apart (the same noise stream on both sides, so only float rounding,
amplified by training, separates them). Exits 1 if anything fails.

    python benchmarks/gpu_device_check.py --device cuda [--niter 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from singanseg.api import train
from singanseg.config import preset


def _pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:64, :80]
    image = np.stack([100 + 60 * np.sin(x / 7), 80 + 50 * np.cos(y / 5), 120 + 0 * x], -1)
    image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
    mask = (((y - 30) / 14) ** 2 + ((x - 42) / 18) ** 2 < 1).astype(np.uint8) * 255
    return image, mask


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--niter", type=int, default=20)
    args = ap.parse_args(argv)
    image, mask = _pair()
    cfg = preset("smoke", niter=args.niter)
    models, seconds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for side, dev in (("device", args.device), ("cpu", "cpu")):
            t = time.perf_counter()
            models[side] = train(image, mask, Path(tmp) / side, cfg, seed=1, progress=False, device=dev)
            if dev.startswith("cuda"):
                torch.cuda.synchronize()
            seconds[side] = time.perf_counter() - t
    on_dev, on_cpu = models["device"], models["cpu"]
    problems = []
    if on_dev.num_scales != on_cpu.num_scales:
        problems.append(f"{on_dev.num_scales} scales on {args.device} vs {on_cpu.num_scales} on cpu")
    if str(on_dev.device).split(":")[0] != args.device.split(":")[0]:
        problems.append(f"model came back on {on_dev.device}, not {args.device}")
    diff = max(
        (a.detach().cpu() - b.detach().cpu()).abs().max().item()
        for Ga, Gb in zip(on_dev.Gs, on_cpu.Gs, strict=True)
        for a, b in zip(Ga.state_dict().values(), Gb.state_dict().values(), strict=True)
        if a.is_floating_point()
    )
    pairs = on_dev.sample(4, 0, seed=3)
    for img, msk in pairs:
        if img.shape[:2] != msk.shape or not set(np.unique(msk)) <= {0, 255}:
            problems.append(f"sample: image {img.shape}, mask {msk.shape} values {np.unique(msk)[:5]}")
            break
    status = "OK" if not problems else "FAILED: " + "; ".join(problems)
    print(
        f"- device check ({args.device}, torch {torch.__version__}): {status}. Smoke model of a "
        f"64x80 pair, {on_dev.num_scales} scales x {args.niter} iterations: {seconds['device']:.1f} s on "
        f"{args.device}, {seconds['cpu']:.1f} s on cpu ({torch.get_num_threads()} threads); max |G weight "
        f"difference| {diff:.2e}; 4 samples on {args.device}, masks binary and image-sized."
    )
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())

"""FastGAN-4ch training speed: iterations per second of `FastGANTrainer.step`.

Smoke sizes on the CPU by default (issue 5, item 7); `--profile paper --device cuda` gives
the paper's sizes on a GPU. LPIPS runs with a random VGG trunk here (`weights: random`):
the weights do not change the cost. Data: real pairs from `--data` if given, else random
4-channel tensors in [-1, 1] with a binary mask channel (the cost does not depend on them).

    python -m benchmarks.bench_fastgan [--profile smoke] [--device cpu] [--steps 5] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from baselines import common
from baselines.fastgan import FastGANTrainer


def bench_fastgan(
    profile: str = "smoke", device: str = "cpu", steps: int = 5, warmup: int = 1, data_dir: str | None = None, seed: int = 0
) -> dict[str, Any]:
    """Time `steps` training iterations after `warmup` untimed ones; returns a JSON-able record."""
    config = common.make_config("fastgan", profile, {"weights": "random"})
    dev = torch.device(device)
    if data_dir:
        data, _ = common.load_dataset(data_dir, config.resolution, num_images=config.batch_size)
    else:
        g = torch.Generator().manual_seed(seed)
        data = torch.rand(config.batch_size, 4, config.resolution, config.resolution, generator=g) * 2 - 1
        data[:, 3] = torch.where(data[:, 3] > 0, 1.0, -1.0)
    data = data.to(dev)
    torch.manual_seed(seed)
    trainer = FastGANTrainer(config, dev)
    rng = torch.Generator().manual_seed(seed)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for i in range(warmup):
        trainer.step(data, i, rng)
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        trainer.step(data, warmup + i, rng)
    sync()
    seconds = time.perf_counter() - t0
    return {
        "gan": "fastgan",
        "profile": profile,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "batch_size": config.batch_size,
        "resolution": config.resolution,
        "ngf": config.ngf,
        "ndf": config.ndf,
        "lpips_size": config.lpips_size,
        "steps": steps,
        "seconds": round(seconds, 3),
        "it_per_s": round(steps / seconds, 4),
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="smoke", choices=["smoke", "paper"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--data", default=None)
    args = ap.parse_args(argv)
    print(json.dumps(bench_fastgan(args.profile, args.device, args.steps, args.warmup, args.data), indent=2))


if __name__ == "__main__":
    main()

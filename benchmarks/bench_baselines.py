"""Baseline GAN training speed: iterations per second of each GAN's `Trainer.step`.

Smoke sizes on the CPU by default (issue 5, item 7); `--profile paper --device cuda` gives
the paper's sizes on a GPU. Progressive GAN is timed in its last phase (the largest
resolution, alpha 1), where it spends the last sixth of training at the highest cost; its
first phase (8 px) is reported as well. FastGAN comes from `benchmarks/bench_fastgan.py`
(its own engineer's) when present. Data: random 4-channel tensors in [-1, 1] with a binary
mask channel, or real pairs from `--data` (the cost does not depend on them).

    python -m benchmarks.bench_baselines [--profile smoke] [--device cpu] [--steps 5] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from baselines import common


def _data(spec: common.GANSpec, config: Any, data_dir: str | None, seed: int) -> torch.Tensor:
    size = spec.load_resolution(config) if spec.load_resolution else config.resolution
    if data_dir:
        data, _ = common.load_dataset(
            data_dir, size, num_images=config.batch_size, resize=spec.resize
        )
        return data
    g = torch.Generator().manual_seed(seed)
    data = torch.rand(config.batch_size, 4, size, size, generator=g) * 2 - 1
    data[:, 3] = torch.where(data[:, 3] > 0, 1.0, -1.0)
    return data


def bench_gan(
    gan: str,
    profile: str = "smoke",
    device: str = "cpu",
    steps: int = 5,
    warmup: int = 1,
    data_dir: str | None = None,
    seed: int = 0,
    iteration: int = 0,
) -> dict[str, Any]:
    """Time `steps` training iterations from `iteration` after `warmup` untimed ones."""
    spec = common.get_gan(gan)
    config = common.make_config(gan, profile)
    dev = torch.device(device)
    data = _data(spec, config, data_dir, seed).to(dev)
    torch.manual_seed(seed)
    trainer = spec.make_trainer(config, dev)
    rng = torch.Generator().manual_seed(seed)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for i in range(warmup):
        trainer.step(data, iteration + i, rng)
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        trainer.step(data, iteration + warmup + i, rng)
    sync()
    seconds = time.perf_counter() - t0
    return {
        "gan": gan,
        "profile": profile,
        "device": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "batch_size": config.batch_size,
        "resolution": config.resolution,
        "iteration": iteration,
        "steps": steps,
        "seconds": round(seconds, 3),
        "it_per_s": round(steps / seconds, 4),
        "torch": torch.__version__,
    }


def bench_all(
    profile: str = "smoke",
    device: str = "cpu",
    steps: int = 5,
    warmup: int = 1,
    data_dir: str | None = None,
) -> list[dict[str, Any]]:
    from baselines.progan import schedule

    records = [bench_gan("dcgan", profile, device, steps, warmup, data_dir)]
    config = common.make_config("progan", profile)
    for label, it in (("first phase", 0), ("last phase", config.total_iter - warmup - steps)):
        rec = bench_gan("progan", profile, device, steps, warmup, data_dir, iteration=it)
        step, alpha = schedule(it + warmup, config)
        rec.update(phase=label, step=step, step_px=4 * 2**step, alpha=round(alpha, 3))
        records.append(rec)
    try:
        from benchmarks.bench_fastgan import bench_fastgan
    except ImportError as e:  # FastGAN's benchmark is another module, landed separately
        records.append(
            {"gan": "fastgan", "skipped": f"benchmarks.bench_fastgan not importable ({e})"}
        )
    else:
        records.append(bench_fastgan(profile, device, steps, warmup, data_dir))
    return records


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="smoke", choices=["smoke", "paper"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--data", default=None)
    args = ap.parse_args(argv)
    print(
        json.dumps(
            bench_all(args.profile, args.device, args.steps, args.warmup, args.data), indent=2
        )
    )


if __name__ == "__main__":
    main()

"""One UNet++ training step of the cpu profile's segmenter, contiguous (NCHW) against
channels_last (`train_*.memory_format`), interleaved in one process so that a loaded machine
slows both alike; prints the least and second-least seconds per step of each and their ratio.

    python benchmarks/bench_segment_layout.py --threads 2 --reps 6

The step: EfficientNet-Lite0 ImageNet UNet++ with the slim decoder (params.yaml profiles.cpu),
batch 8 at 128 px, forward, a sum loss, backward. Random pixels: the time does not depend on them.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from pipeline.segment.model import ModelParams, build_model


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=6)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = build_model(ModelParams(encoder_name="tu-tf_efficientnet_lite0", encoder_weights="lite0_imagenet",
                                    encoder_depth=5, decoder_channels=(64, 32, 16, 16, 8)))  # fmt: skip
    x = torch.rand(8, 3, 128, 128) * 255
    nhwc = copy.deepcopy(model).to(memory_format=torch.channels_last)
    variants = {"contiguous": (model, x), "channels_last": (nhwc, x.contiguous(memory_format=torch.channels_last))}

    def step(m, inp):
        m.zero_grad()
        m(inp).sum().backward()

    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.reps):
        for name, (m, inp) in variants.items():
            step(m, inp)  # warm-up
            t = time.perf_counter()
            step(m, inp)
            step(m, inp)
            times[name].append((time.perf_counter() - t) / 2)
    for name, v in times.items():
        v.sort()
        print(f"{name}: {v[0]:.3f} s/step (second least {v[1]:.3f})")
    print(f"ratio contiguous / channels_last: {times['contiguous'][0] / times['channels_last'][0]:.2f}")


if __name__ == "__main__":
    main()

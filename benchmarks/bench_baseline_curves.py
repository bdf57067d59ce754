"""Baseline GANs' learning curves: KID and FID of their samples against training iterations (issue 23 s1).

One training run per GAN at the cpu profile's sizes (params.yaml `profiles.cpu.baselines`, with
`--set key=value` on top), on the first `--k` real pairs of `--data` (natural-sort order, as the
pipeline's subsets). At each iteration of `--at` it draws `--sets` x K samples and scores them as
the report's gan_by_k table does: Inception (FID weights) pool3 features of images brought to 299 px
with antialiasing, KID and FID of K fakes against the same K training reals (and against K held-out
reals, the next K pairs of the folder), averaged over the sets. A row for the trivial generator
(mean colour + Gaussian noise) and one for real-vs-real give the scale.

The samples come from the network the pipeline samples (FastGAN and ProGAN: the EMA generator);
`--ema d1,d2` adds shadow EMA copies with other decays, updated after every step exactly as the
trainers update theirs, so one run shows what the sampling network's decay costs at this length
(the EMA does not feed back into training). `--ema raw` scores the trained generator itself.

    python benchmarks/bench_baseline_curves.py --gan fastgan --k 20 --at 60,120,240,480 --ema 0.99,raw
    python benchmarks/bench_baseline_curves.py --gan dcgan --k all --at 500,1000,2000,3000

Prints one row per (iteration, sampling network) and writes `--out` (JSON) when given.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from baselines.common import BaselineModel, get_gan, make_config
from baselines.data import batch_indices, load_dataset, stream_indices
from pipeline.infra.params import read_yaml
from pipeline.metrics.equal_k import kid
from pipeline.metrics.fair import ResizeOptions, fid_lowrank, trivial_images
from pipeline.metrics.features import load_rgb, pooled_features
from pipeline.metrics.inception import load_inception
from singanseg.io import list_pairs
from singanseg.profiles import resolve


def _features(net, images, resize):
    return pooled_features(net, list(images), resize=resize)["pool3"]


def _score(real: np.ndarray, held: np.ndarray, fakes: list[np.ndarray]) -> dict:
    out = {}
    for name, ref in (("train", real), ("held", held)):
        kids = [kid(ref, f) for f in fakes]
        fids = [fid_lowrank(ref, f) for f in fakes]
        out[f"kid_{name}"], out[f"kid_{name}_sd"] = float(np.mean(kids)), float(np.std(kids))
        out[f"fid_{name}"] = float(np.mean(fids))
    return out


def _sample_images(gan: str, config, net: torch.nn.Module, n: int, seed: int) -> list[np.ndarray]:
    """n RGB uint8 images from a sampler, drawn as the pipeline's generate_baselines draws them."""
    net.eval()  # as baselines.common.load leaves a loaded sampler
    return [img for img, _mask in BaselineModel(gan, config, net, {}).sample(n, seed)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gan", required=True, choices=["dcgan", "progan", "fastgan"])
    ap.add_argument("--data", default="../shared/data/kvasir-seg-200")
    ap.add_argument("--k", default="20", help="training pairs: a number or 'all'")
    ap.add_argument("--eval-k", type=int, default=20, help="K of the scored sets (<= training pairs)")
    ap.add_argument("--at", required=True, help="iterations to score at, comma-separated")
    ap.add_argument("--ema", default="", help="extra sampling networks: EMA decays and/or 'raw'")
    ap.add_argument("--sets", type=int, default=4)
    ap.add_argument("--set", action="append", default=[], help="config key=value over the cpu profile's")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    spec = get_gan(args.gan)
    overrides = dict(resolve(read_yaml(), "params.yaml", "cpu")[1]["baselines"].get(args.gan) or {})
    for kv in args.set:
        key, value = kv.split("=", 1)
        overrides[key] = json.loads(value) if value[:1] in "0123456789[{-tfn" else value
    at = sorted(int(a) for a in args.at.split(","))
    if spec.name == "progan":
        overrides["total_iter"] = at[-1]  # its phases follow total_iter: one curve = the last point's run
    config = make_config(spec, "paper", overrides, f"--gan {args.gan}")
    config.validate(args.gan)
    num = None if args.k == "all" else int(args.k)
    load_res = spec.load_resolution(config) if spec.load_resolution else config.resolution
    data, ids = load_dataset(args.data, load_res, num, spec.resize)
    n = len(ids)
    indices = stream_indices if spec.stream_batches else batch_indices

    # the scale: K training reals, the next K pairs as held-out reals
    inception = load_inception("inception_fid", device="cpu")
    resize = ResizeOptions(size=299, antialias=True)
    pairs = list_pairs(args.data)
    k = args.eval_k
    real_imgs = [load_rgb(p.image) for p in pairs[:k]]
    held_imgs = [load_rgb(p.image) for p in pairs[n if num else k : (n if num else k) + k]]
    real, held = _features(inception, real_imgs, resize), _features(inception, held_imgs, resize)
    rows = []
    trivial = [_features(inception, trivial_images(real_imgs, k, (load_res, load_res), seed=s), resize) for s in range(args.sets)]
    rows.append({"iteration": 0, "sampler": "trivial: mean colour + noise", **_score(real, held, trivial)})
    print(json.dumps(rows[-1]), flush=True)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        trainer = spec.make_trainer(config, torch.device("cpu"))
    rng = torch.Generator().manual_seed(args.seed)
    has_ema = "G_ema" in trainer.nets
    decays = [float(d) for d in args.ema.split(",") if d and d != "raw"]
    shadows = {d: copy.deepcopy(trainer.nets["G"]).requires_grad_(False) for d in decays} if has_ema else {}
    variants = ["pipeline"] + [f"ema {d}" for d in shadows] + (["raw"] if "raw" in args.ema.split(",") and has_ema else [])
    t0, train_s = time.perf_counter(), 0.0
    for it in range(at[-1]):
        real_batch = data[indices(args.seed, it, n, config.batch_size)]
        t = time.perf_counter()
        trainer.step(real_batch, it, rng)
        with torch.no_grad():
            for d, shadow in shadows.items():
                for e, p in zip(shadow.parameters(), trainer.nets["G"].parameters(), strict=True):
                    e.lerp_(p, 1.0 - d)
        train_s += time.perf_counter() - t
        if it + 1 not in at:
            continue
        for variant in variants:
            if variant == "pipeline":
                net, _ = trainer.sampler()
            else:
                saved = copy.deepcopy(trainer.nets["G_ema"].state_dict())
                source = trainer.nets["G"] if variant == "raw" else shadows[float(variant.split()[1])]
                trainer.nets["G_ema"].load_state_dict(source.state_dict())
                net, _ = trainer.sampler()
                net = copy.deepcopy(net)
                trainer.nets["G_ema"].load_state_dict(saved)
            fakes = [_features(inception, _sample_images(spec.name, config, copy.deepcopy(net), k, 1000 + s), resize) for s in range(args.sets)]
            trainer.nets["G"].train()
            rows.append({"iteration": it + 1, "sampler": variant, "train_s": round(train_s, 1), **_score(real, held, fakes)})
            print(json.dumps(rows[-1]), flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s, of which training {train_s:.0f} s", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "config": overrides, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

"""DVC stage generate_baselines: sample synthetic pairs from one trained baseline GAN.

    python -m pipeline.generate_baselines --gan {dcgan,progan,fastgan} [--subset {K,all}]

Reads `models/<gan>/n<K>/`, writes `synthetic/<gan>/n<K>/{images,masks}/<gan>_<n>.png`
(the SinGAN-Seg layout; masks thresholded at 0.5 into {0, 255}, paper.md section 6),
atomically: a crash never leaves a half-written folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from baselines.common import GANS, load, to_pairs, write_samples
from pipeline.infra.mlflow_tracker import log_metrics, stage_run
from pipeline.stage import Stage
from pipeline.train_baselines import (
    BaselinesParams,
    _child,
    model_dir,
    parse_subset,
)
from singanseg.device import resolve_device
from singanseg.io import atomic_dir

CHUNK = 64  # pairs generated and written at a time (bounded memory at 1000 x 256 px)


def sample_seed(seed: int, gan: str, subset: str) -> int:
    """A sampling seed of its own for each model, fixed by the training seed."""
    import zlib

    return (seed * 7919 + zlib.crc32(f"{gan}/n{subset}".encode())) % (2**31)


def main(argv: list[str] | None = None) -> int:
    stage = Stage("generate_baselines", __doc__.split("\n\n")[0], BaselinesParams, section="baselines")
    ap = stage.parser
    ap.add_argument("--gan", required=True, choices=sorted(GANS))
    ap.add_argument("--subset", help="K or all, as in train_baselines; default: every subset in params")
    ap.add_argument("--root", default=".", help="folder holding models/ and synthetic/")
    return stage.run(_work, argv)


def _work(args, params: BaselinesParams) -> None:
    subsets = [args.subset] if args.subset else params.subsets_of(args.gan)
    for sub in subsets:
        parse_subset(sub)
    root = Path(args.root)
    with stage_run("generate_baselines", params, run_name=f"generate_baselines@{args.gan}",
                   provenance={"weights": f"models/{args.gan}"}, tags={"gan": args.gan},
                   enabled=params.track) as mlrun:  # fmt: skip
        device = resolve_device(params.device, "baselines.device")
        for sub in subsets:
            model = load(model_dir(root, args.gan, sub), device)
            out = root / "synthetic" / args.gan / f"n{sub}"
            seed = sample_seed(params.seed, args.gan, sub)
            tags = {"gan": args.gan, "subset": sub, "sample_seed": str(seed)}
            with _child(mlrun, f"generate_baselines/{args.gan}/n{sub}", tags) as child:
                fg = []
                with atomic_dir(out) as tmp:
                    # one seeded latent draw for all samples, generated and written in chunks
                    for k, x in enumerate(model.generate_chunks(params.num_samples, seed, CHUNK)):
                        pairs = to_pairs(x)
                        write_samples(pairs, tmp, args.gan, start=k * CHUNK)
                        fg += [float((m > 0).mean()) for _, m in pairs]
                log_metrics(child, {"num_samples": params.num_samples, "mask_fg_mean": float(np.mean(fg)),
                                    "mask_empty_fraction": float(np.mean([f == 0 for f in fg]))})  # fmt: skip
            print(f"generate_baselines: {params.num_samples} pairs -> {out}")


if __name__ == "__main__":
    sys.exit(main())

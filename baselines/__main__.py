"""Command line of the baseline GANs.

    python -m baselines train {dcgan,progan,fastgan} DATA_DIR --out DIR
        [--profile smoke|paper] [--set key=value ...] [--num-images K] [--seed S]
    python -m baselines sample DIR --num N --out OUT [--seed S] [--prefix P]

Bad input gives one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from baselines.common import GANS, load, make_config, train, write_samples
from singanseg.errors import UserError, message_for_cli
from singanseg.io import check_plain_name
from singanseg.profiles import profile_names
from singanseg.typed import parse_sets

# the params keys the GANs' errors name, as this command's --set (issue 18 s4)
CLI_FLAGS = {"set fastgan weights_path": "pass --set weights_path=FILE", "set weights: random": "pass --set weights=random"}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m baselines",
        description="Baseline GANs (DCGAN, Progressive GAN, FastGAN) on image+mask pairs",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one GAN on a folder with images/ and masks/")
    t.add_argument("gan", choices=sorted(GANS), help="which GAN: " + ", ".join(sorted(GANS)))
    t.add_argument("data_dir", help="dataset folder with images/ and masks/ (matching file names)")
    t.add_argument("--out", required=True, help="model folder (resumed if it holds a checkpoint)")
    t.add_argument("--profile", default="paper", choices=profile_names(), help="a profile of params.yaml")
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (repeatable)",
    )
    t.add_argument(
        "--num-images",
        type=int,
        default=None,
        metavar="K",
        help="train on the first K pairs (ids in natural-sort order)",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu")
    t.add_argument("--no-progress", action="store_true")
    s = sub.add_parser("sample", help="sample image/mask pairs from a trained model folder")
    s.add_argument("model_dir", help="a model folder written by `train` (its --out)")
    s.add_argument("--num", type=int, required=True)
    s.add_argument("--out", required=True, help="output folder; gets images/ and masks/")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--prefix", default=None, help="file name prefix (default: the GAN's name)")
    s.add_argument("--device", default="cpu")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        if args.command == "train":
            config = make_config(args.gan, args.profile, parse_sets(args.set))
            train(
                args.gan,
                args.data_dir,
                args.out,
                config,
                seed=args.seed,
                num_images=args.num_images,
                progress=not args.no_progress,
                device=args.device,
            )
            print(f"{args.gan}: model in {args.out}")
        else:
            if args.prefix is not None:
                check_plain_name(args.prefix, "--prefix")
            model = load(args.model_dir, args.device)
            ids = write_samples(
                model.sample(args.num, args.seed), args.out, args.prefix or model.gan
            )
            print(f"{len(ids)} pairs written to {args.out}")
    except (UserError, FloatingPointError) as e:  # the user's to fix, or training diverged
        print(f"error: {message_for_cli(e, CLI_FLAGS)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`singanseg` command line: train | sample | info | import-authors (singanseg.authors) | stylize (singanseg.stylize_folder) | train-many (singanseg.train_many).

Errors the user can fix (bad input, config, checkpoint) print one line to stderr and exit 2,
never a traceback (conventions.md "Code").
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from singanseg._version import __version__
from singanseg.config import PRESETS, preset
from singanseg.errors import UserError
from singanseg.io import InputError, check_plain_name
from singanseg.typed import parse_sets

USER_ERRORS = (UserError,)  # singanseg.errors: input, config, checkpoint, weights, executor


def _train(args: argparse.Namespace) -> int:
    from singanseg.api import train

    cfg = preset(args.profile, **parse_sets(args.set))
    model = train(
        args.image, args.mask, args.out, cfg, seed=args.seed, progress=not args.quiet, device=args.device
    )
    print(f"trained {model.num_scales} scales into {args.out} ({model.device})")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from singanseg.api import load
    from singanseg.sample_folder import record_path, sample_into

    sample_id = check_plain_name(args.id or Path(args.model).resolve().name, "sample --id")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; choose another --out")
    model = load(args.model, device=args.device)
    # One run per id in --out, recorded in <id>.sample.json, moved in only once every pair
    # is written (singanseg.sample_folder); other ids' runs in the same folder (models
    # sampled in parallel) are never touched.
    action, req = sample_into(
        model, out, sample_id, args.num, args.gen_start_scale, seed=args.seed,
        mask_post_processing=not args.soft_mask, replace=args.replace,
    )  # fmt: skip
    what = "wrote" if action == "written" else "already holds this run:"
    print(
        f"{what} {req.num} pairs (seed {req.seed}) to {out / 'images'} and {out / 'masks'}; "
        f"record {record_path(out, sample_id)}"
    )  # Path: no "samples//images"
    return 0


def _info(args: argparse.Namespace) -> int:
    from singanseg.saved_model import SinGANSeg

    model = SinGANSeg.load(args.model, allow_incomplete=True)
    print(json.dumps(model.info(), indent=2, default=str))
    return 0


def _import_authors(args: argparse.Namespace) -> int:
    from singanseg.authors import import_authors

    written = import_authors(args.src, args.out)
    print(f"imported {len(written)} model(s) of the authors into {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="singanseg",
        description="SinGAN-Seg: synthetic polyp image/mask pairs from one image (Thambawita et al. 2022)",
    )
    parser.add_argument("--version", action="version", version=f"singanseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train", help="train one SinGAN-Seg model on an image and its mask (resumes if interrupted)"
    )
    t.add_argument("image", help="RGB image file")
    t.add_argument("mask", help="binary mask file (binarised at 127), same size as the image")
    t.add_argument("--out", required=True, help="model folder")
    t.add_argument(
        "--profile", default="paper", choices=sorted(PRESETS), help="config preset (default: paper)"
    )
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set niter=20 (repeatable)",
    )
    t.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random seed (default: random, recorded in model.json)",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument(
        "--device",
        default="auto",
        help="auto (cuda when available, else cpu), cpu, cuda, cuda:N, mps (default: auto)",
    )
    t.set_defaults(func=_train)

    s = sub.add_parser(
        "sample", help="write synthetic pairs images/<id>_<n>.png, masks/<id>_<n>.png"
    )
    s.add_argument("model", help="trained model folder")
    s.add_argument("--num", type=int, required=True, help="number of pairs")
    s.add_argument(
        "--gen-start-scale",
        type=int,
        default=0,
        help="0 = most random (the paper's experiments); number of scales = reconstruction",
    )
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument(
        "--id", default=None, help="id prefix of the files (default: the model folder's name)"
    )
    s.add_argument(
        "--soft-mask",
        action="store_true",
        help="keep the soft mask as grayscale instead of thresholding at 0.5",
    )
    s.add_argument(
        "--replace",
        action="store_true",
        help="replace an earlier run of this --id in --out (by default a folder holds one run "
        "per id and another seed or count is refused; other ids' files are kept either way)",
    )
    s.add_argument(
        "--device",
        default="auto",
        help="auto (cuda when available, else cpu), cpu, cuda, cuda:N, mps (default: auto)",
    )
    s.set_defaults(func=_sample)

    i = sub.add_parser("info", help="describe a model folder")
    i.add_argument("model", help="trained model folder (model.json; an interrupted one too)")
    i.set_defaults(func=_info)

    a = sub.add_parser(
        "import-authors",
        help="import the authors' released SinGAN-Seg checkpoints (Gs/Zs/reals/NoiseAmp.pth) without running their pickles",
        description="Each checkpoint folder of SRC (one folder, a folder of them named by id, or a release zip) "
        "becomes one model folder OUT/<id>, the layout `train` writes. The pickles are read under an allow-list "
        "(singanseg.authors); anything else in them is refused, naming the global and the file.",
    )
    a.add_argument("src", help="a checkpoint folder, a folder of them, or one of the released zips")
    a.add_argument("--out", required=True, help="folder that receives one model folder per checkpoint id")
    a.set_defaults(func=_import_authors)

    from singanseg.stylize_folder import add_stylize_command
    from singanseg.train_many import add_train_many_command

    add_stylize_command(sub)
    add_train_many_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="singanseg: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as e:
        print(f"singanseg: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("singanseg: interrupted (finished scales are kept; rerun to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

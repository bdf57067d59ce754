"""Command line for the numbers alone, in the manner of pytorch-fid's `python -m pytorch_fid`.

    python -m pipeline.metrics fid DIR_A DIR_B [--dims 2048]
    python -m pipeline.metrics sifid REAL_DIR FAKE_DIR [--dims 64] [--no-resize] [--network inception_fid]
    python -m pipeline.metrics lpips DIR [--real REAL_DIR] [--net alex]
    python -m pipeline.metrics masks DIR [--out OUT_DIR]

Common: `--weights pretrained|random`, `--weights-dir DIR`, `--device cpu|cuda`. Each prints
one JSON object (value, count, options, weights provenance) on stdout; bad input prints a
one-line error on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from singanseg.errors import UserError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline.metrics", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, weights=True):
        sp.add_argument("--device", default="cpu", help="torch device (default cpu)")
        if weights:
            sp.add_argument("--weights", choices=("pretrained", "random"), default="pretrained",
                            help="pretrained (default; error if absent) or random (plumbing checks only)")
            sp.add_argument("--weights-dir", default=None, help="folder with weight files (docs/weights.md)")

    f = sub.add_parser("fid", help="FID between two image folders")
    f.add_argument("dir_a")
    f.add_argument("dir_b")
    f.add_argument("--dims", type=int, default=2048, choices=(64, 192, 768, 2048))
    f.add_argument("--batch-size", type=int, default=50)
    f.add_argument("--no-cache", action="store_true", help="do not cache set statistics")
    common(f)

    s = sub.add_parser("sifid", help="SIFID per (real, synthetic) pair, paired by id")
    s.add_argument("real_dir")
    s.add_argument("fake_dir")
    s.add_argument("--dims", type=int, default=64, choices=(64, 192))
    s.add_argument("--no-resize", action="store_true", help="native size instead of the authors' 299x299")
    s.add_argument("--network", default="inception_imagenet", choices=("inception_imagenet", "inception_fid"))
    s.add_argument("--pairs", action="store_true", help="include the per-pair table in the JSON")
    common(s)

    lp = sub.add_parser("lpips", help="mean pairwise LPIPS among samples of each model")
    lp.add_argument("dir")
    lp.add_argument("--real", default=None, help="folder of training images (LPIPS of samples to them)")
    lp.add_argument("--net", default="alex", choices=("alex", "vgg"))
    lp.add_argument("--dims", type=int, default=None, help=argparse.SUPPRESS)
    common(lp)

    m = sub.add_parser("masks", help="foreground percentages and per-model pixel-wise mean/std")
    m.add_argument("dir")
    m.add_argument("--out", default=None, help="write <model>_{mean,std}.{npy,png} here")
    m.add_argument("--bin-width", type=float, default=5.0)
    m.add_argument("--dims", type=int, default=None, help=argparse.SUPPRESS)
    common(m, weights=False)
    return p


def run(args: argparse.Namespace) -> dict:
    if args.cmd == "fid":
        from .fid import FIDOptions, fid_folders

        opts = FIDOptions(dims=args.dims, weights=args.weights, weights_dir=args.weights_dir, batch_size=args.batch_size, cache=not args.no_cache)
        return fid_folders(args.dir_a, args.dir_b, opts, device=args.device)
    if args.cmd == "sifid":
        from .sifid import SIFIDOptions, sifid_folders

        opts = SIFIDOptions(dims=args.dims, resize=not args.no_resize, network=args.network, weights=args.weights, weights_dir=args.weights_dir)
        res = sifid_folders(args.real_dir, args.fake_dir, opts, device=args.device)
        out = res.summary()
        if args.pairs:
            out["pairs"] = [{"real_id": a, "synthetic_id": b, "sifid": v} for a, b, v in res.rows]
        return out
    if args.cmd == "lpips":
        from .lpips_diversity import LPIPSOptions, lpips_diversity

        return lpips_diversity(args.dir, args.real, LPIPSOptions(net=args.net, weights=args.weights, weights_dir=args.weights_dir), device=args.device)
    from .masks import mask_summary, pixelwise_stats

    out = mask_summary(args.dir, args.bin_width)
    out["per_model"] = pixelwise_stats(args.dir, args.out)
    out["weights"] = "none (no network)"
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # keep stderr to the one-line error
            out = run(args)
    except UserError as e:  # the user's to fix (singanseg.errors); a bug keeps its traceback
        msg = " ".join(str(e).split())
        print(f"error: {msg}", file=sys.stderr)
        return 2
    print(json.dumps(out, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

from pipeline.stage import Stage

from .fid import FIDOptions
from .lpips_diversity import LPIPSOptions
from .masks import MaskOptions
from .registry import MetricContext, calc_metric
from .sifid import SIFIDOptions


def _parser(p: argparse.ArgumentParser) -> None:
    # each subcommand names a registered metric and says how its arguments become
    # (synthetic, real, options) for calc_metric
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, weights=True):
        sp.add_argument("--device", default="cpu", help="torch device (default cpu)")
        if weights:
            sp.add_argument("--weights", choices=("pretrained", "random"), default="pretrained",
                            help="pretrained (default; error if absent) or random (plumbing checks only)")
            sp.add_argument("--weights-dir", default=None, help="folder with weight files (docs/weights.md)")

    f = sub.add_parser("fid", help="FID between two image folders")
    f.add_argument("dir_a", help="the reference image folder (e.g. the real images)")
    f.add_argument("dir_b", help="the image folder to compare (e.g. the synthetic images)")
    f.add_argument("--dims", type=int, default=2048, choices=(64, 192, 768, 2048))
    f.add_argument("--batch-size", type=int, default=50)
    f.add_argument("--no-cache", action="store_true", help="do not cache set statistics")
    common(f)
    f.set_defaults(inputs=lambda a: (a.dir_b, a.dir_a, FIDOptions(  # DIR_A: the reference set
        dims=a.dims, weights=a.weights, weights_dir=a.weights_dir, batch_size=a.batch_size, cache=not a.no_cache)))

    s = sub.add_parser("sifid", help="SIFID per (real, synthetic) pair, paired by id")
    s.add_argument("real_dir", help="real images <id>.*")
    s.add_argument("fake_dir", help="synthetic images <id>_<n>.*, each paired with real <id>")
    s.add_argument("--dims", type=int, default=64, choices=(64, 192))
    s.add_argument("--no-resize", action="store_true", help="native size instead of the authors' 299x299")
    s.add_argument("--network", default="inception_imagenet", choices=("inception_imagenet", "inception_fid"))
    s.add_argument("--pairs", action="store_true", help="include the per-pair table in the JSON")
    common(s)
    s.set_defaults(inputs=lambda a: (a.fake_dir, a.real_dir, SIFIDOptions(
        dims=a.dims, resize=not a.no_resize, network=a.network, weights=a.weights, weights_dir=a.weights_dir)))

    lp = sub.add_parser("lpips", help="mean pairwise LPIPS among samples of each model")
    lp.add_argument("dir", help="synthetic images <id>_<n>.*; pairs among the samples of each <id>")
    lp.add_argument("--real", default=None, help="folder of training images (LPIPS of samples to them)")
    lp.add_argument("--net", default="alex", choices=("alex", "vgg"))
    lp.add_argument("--dims", type=int, default=None, help=argparse.SUPPRESS)
    common(lp)
    lp.set_defaults(inputs=lambda a: (a.dir, a.real, LPIPSOptions(net=a.net, weights=a.weights, weights_dir=a.weights_dir)))

    m = sub.add_parser("masks", help="foreground percentages and per-model pixel-wise mean/std")
    m.add_argument("dir", help="a folder with masks/ (or of mask files)")
    m.add_argument("--out", default=None, help="write <model>_{mean,std}.{npy,png} here")
    m.add_argument("--bin-width", type=float, default=5.0)
    m.add_argument("--dims", type=int, default=None, help=argparse.SUPPRESS)
    common(m, weights=False)
    m.set_defaults(inputs=lambda a: (a.dir, None, MaskOptions(bin_width=a.bin_width)))


def run(args: argparse.Namespace) -> dict:
    """The chosen metric, by name from the registry (pipeline/metrics/registry.py)."""
    synthetic, real, options = args.inputs(args)
    ctx = MetricContext(device=args.device, out=getattr(args, "out", None))
    out = calc_metric(args.cmd, synthetic, real, options, ctx).summary
    if not getattr(args, "pairs", True):  # sifid: the per-pair rows only when asked
        del out["pairs"]
    return out


# the params keys the metrics' errors name, as this command line's flags (issue 18 s4)
CLI_FLAGS = {
    "quality.sifid.network: inception_fid": "--network inception_fid",
    "set weights: random": "pass --weights random",
}


def main(argv: list[str] | None = None) -> int:
    stage = Stage("metrics", __doc__.split("\n\n")[0], prefix="", params_flag=False, cli_flags=CLI_FLAGS)
    _parser(stage.parser)

    def work(args, _params) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # keep stderr to the one-line error
            out = run(args)
        print(json.dumps(out, sort_keys=False))

    return stage.run(work, argv)


if __name__ == "__main__":
    sys.exit(main())

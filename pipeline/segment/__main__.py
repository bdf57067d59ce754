"""DVC stage entry point: `python -m pipeline.segment --grid A` (dvc.yaml's `segment@A`, `segment@B`).

`--grid G` runs every (experiment, fold) of grid G in the active params, skipping results
that are up to date (pipeline/segment/grid.py); `--experiment A/REAL --fold 1` runs one;
`--list` prints the (experiment, fold) runs of the active params, one `NAME FOLD` a line.
A grid run ends by writing its headline numbers, `metrics/headline/segment_<G>.{json,csv}`
(`--headline`; pipeline/results/headline.py), which dvc.yaml declares as metrics and plots.
Reads params section `segment` (pipeline/segment/config.py) with the active profile.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.infra.params import active_profile
from pipeline.segment.config import SegmentParams
from pipeline.segment.experiments import grid_runs
from pipeline.stage import Stage
from singanseg.typed import parse_sets, replace

# the params key of the encoder-weights error, as this command's --set (issue 18 s4)
CLI_FLAGS = {"or set encoder_weights: null": "or pass --set model.encoder_weights=null"}


def main(argv: list[str] | None = None) -> int:
    stage = Stage("segment", __doc__.splitlines()[0], SegmentParams, prefix="", cli_flags=CLI_FLAGS)
    ap = stage.parser
    ap.add_argument("--experiment", help="e.g. A/FAKE_3_ST1to1000 or B/REAL_N10 (see --list)")
    ap.add_argument("--fold", type=int, help="grid A: the held-out test fold; grid B: the training fold")
    ap.add_argument("--seed", type=int, default=None, help="with --experiment: this seed (default: the first of segment.seeds)")
    ap.add_argument("--list", action="store_true", help="print the experiment/fold runs of the active params")
    ap.add_argument("--grid", choices=["A", "B"], help="run every experiment and fold of grid A or B (resumable)")
    ap.add_argument("--profile", default=None, help="override params.yaml's profile")
    ap.add_argument("--headline", default="metrics/headline", help="where --grid writes segment_<G>.json (dvc metrics)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a segment.* value")

    def work(args, params: SegmentParams) -> None:
        if args.set:
            params = replace(params, parse_sets(args.set), "--set segment")
        runs = grid_runs(params)
        if args.list:
            for name, fold in runs:
                print(f"{name} {fold}")
            return
        profile = args.profile or active_profile(args.params)
        if args.grid:
            from pipeline.results.headline import write_segment
            from pipeline.segment.grid import run_grid

            summary = run_grid(args.grid, params, profile=profile)
            write_segment(args.grid, Path(params.paths.out), Path(args.headline))
            print(f"segment {args.grid}: {summary['runs']} runs, {summary['trained']} trained, "
                  f"{summary['skipped']} up to date")
            return
        if args.experiment is None or args.fold is None:
            ap.error("--experiment and --fold are required (or --grid, or --list)")
        if (args.experiment, args.fold) not in runs:
            print(f"note: {args.experiment} fold {args.fold} is not in the active grid", file=sys.stderr)
        from pipeline.segment.run import run_experiment

        record = run_experiment(args.experiment, args.fold, params, profile=profile, seed=args.seed)
        for protocol, r in record["protocols"].items():
            s = r["test"]["per_image"]
            print(f"{args.experiment} fold {args.fold} seed {record['seed']} [{protocol}] best epoch {r['best_epoch']}: "
                  f"IoU {s['iou']:.4f} F1 {s['f1']:.4f} (per-image mean, {r['test_size']} test images)")

    return stage.run(work, argv)


if __name__ == "__main__":
    sys.exit(main())

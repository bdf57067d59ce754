"""Models per CPU-hour of `train-many --batch K` vs `--batch 1` at a profile's sizes (issue 23 s4).

The real path (singanseg.train_many.train_many, in this process, 1 thread): `--n` pairs of
one bucket of the data folder (pyramids of the same shapes, as train-many groups them)
trained from scratch with each K in `--ks`, the Ks interleaved `--repeat` times; this
process's CPU time per model (time.process_time: on a shared machine wall time measures the
neighbours). Then the whole data folder's buckets at this profile give a projection: every
bucket in chunks of up to K, a chunk of j models costing what the measured sizes give
(linear between them), against every model alone.

    OMP_NUM_THREADS=1 python benchmarks/bench_cpu_batch.py --profile cpu --n 8 --ks 1,2,4,8
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from singanseg.config import config_from_dict
from singanseg.executors import ExecutorConfig, Skipped
from singanseg.io import list_pairs
from singanseg.train_many import train_many
from singanseg.train_many_batched import UNPLANNED, plan_key
from singanseg.typed import parse_sets

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "kvasir-seg-200"


def profile_model(profile: str, sets: list[str]):
    """params.yaml's singan.model with profiles.<profile>.singan.model over it."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    model = dict(params["singan"]["model"])
    model.update(params.get("profiles", {}).get(profile, {}).get("singan", {}).get("model", {}))
    model.update(parse_sets(sets))
    return config_from_dict(model, f"params.yaml profiles.{profile}.singan.model")


def buckets(pairs, cfg) -> dict:
    out = collections.defaultdict(list)
    with tempfile.TemporaryDirectory() as nowhere:
        for p in pairs:
            key = plan_key(p, Path(nowhere) / p.id, cfg, 0)
            if not isinstance(key, Skipped) and key != UNPLANNED:
                out[key].append(p)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--n", type=int, default=8, help="pairs trained per K (from the largest bucket)")
    ap.add_argument("--ks", default="1,2,4,8")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = profile_model(args.profile, args.set)
    ks = [int(k) for k in args.ks.split(",")]
    groups = buckets(list_pairs(args.data), cfg)
    key, chosen = max(groups.items(), key=lambda kv: len(kv[1]))
    chosen = chosen[: args.n]
    print(f"profile {args.profile}: max_size {cfg.max_size}, nfc {cfg.nfc}, niter {cfg.niter}, "
          f"{len(key[0])} scales {'/'.join(f'{h}x{w}' for h, w in key[0])}; {len(chosen)} pairs of one bucket; "
          f"torch {torch.__version__}, 1 thread", flush=True)  # fmt: skip
    cpu = {k: [] for k in ks}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp, "data")
        for sub in ("images", "masks"):
            (data / sub).mkdir(parents=True)
        for p in chosen:
            (data / "images" / p.image.name).symlink_to(p.image)
            (data / "masks" / p.mask.name).symlink_to(p.mask)
        for r in range(args.repeat):
            for k in ks:
                out = Path(tmp, f"models-{r}-{k}")
                t, w = time.process_time(), time.perf_counter()
                res = train_many(data, out, cfg, ExecutorConfig(), seed=0, batch=k, progress=False)
                cpu[k].append((time.process_time() - t) / len(chosen))
                assert not res.ids("failed"), res.summary
                print(f"  K={k}: {cpu[k][-1]:.2f} CPU-s per model ({time.perf_counter() - w:.0f} s wall for {len(chosen)})", flush=True)
    per_model = {k: statistics.median(v) for k, v in cpu.items()}
    base = per_model[ks[0]]
    print(f"\n| K | CPU-s per model | models per CPU-hour | vs K = {ks[0]} |\n|---|---|---|---|")
    for k in ks:
        print(f"| {k} | {per_model[k]:.2f} | {3600 / per_model[k]:.0f} | {base / per_model[k]:.2f} |")
    # projection to the whole folder: chunks of up to K per bucket
    sizes = sorted((len(v) for v in groups.values()), reverse=True)
    chunk_cost = lambda j: j * float(np.interp(j, ks, [per_model[k] for k in ks]))  # noqa: E731
    alone = sum(sizes) * per_model[1] if 1 in per_model else float("nan")
    print(f"\n{sum(sizes)} pairs of {args.data} in {len(sizes)} buckets at this profile (sizes {sizes})")
    for k in ks[1:]:
        chunks = [min(k, s - i) for s in sizes for i in range(0, s, k)]
        cost = sum(chunk_cost(j) for j in chunks)
        print(f"  K={k}: {len(chunks)} chunks (mean {sum(sizes) / len(chunks):.2f} models), "
              f"{cost / 60:.1f} CPU-min vs {alone / 60:.1f} alone: {alone / cost:.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

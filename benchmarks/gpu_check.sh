#!/usr/bin/env bash
# Batched SinGAN-Seg training on a GPU (issue 8 item 6): models per GPU-hour and the
# projected GPU-hours for 1000 images at the paper configuration (9 scales x 2000
# iterations, nfc 32..128; paper.md s1), for our single-model loop and batched K = 4, 8, 16
# (+ the authors' code when singan-seg-polyp is installed), after a functional check of
# training and sampling on the GPU (gpu_device_check.py); then (issue 16) K = 1..16, a Ray run
# at 0.25 GPU per task and `pipeline.plan --calibrate --device cuda` of the whole paper run,
# and one summary table. Offline; about 15-20 minutes. Not a requirement of the tests.
#
#   bash benchmarks/gpu_check.sh                  # table on stdout and in gpu_check.md
#   PYTHON=/path/to/python KS=4,8,16 ITERS=3 BUDGET_S=300 bash benchmarks/gpu_check.sh
#
# Needs torch with CUDA, numpy, pyyaml, pillow, safetensors (singanseg imports them); run
# from a checkout (this script puts the repository on PYTHONPATH, no install needed).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python3}
KS=${KS:-1,2,4,8,16}   # batched K = 1..16 at the paper sizes (issue 16 s4)
ITERS=${ITERS:-3}
BUDGET_S=${BUDGET_S:-300}   # stop timing new scales after this; the whole run stays < 8 min
OUT=${OUT:-gpu_check.md}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 PYTHONUNBUFFERED=1

"$PY" - <<'PYEOF' || exit 2
import importlib.util, sys
missing = [m for m in ("torch", "numpy", "yaml", "PIL", "safetensors") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu_check: missing Python modules {missing} (pip install torch numpy pyyaml pillow safetensors)")
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA device (torch %s); nothing to measure" % torch.__version__)
p = torch.cuda.get_device_properties(0)
print(f"gpu_check: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, "
      f"cuDNN {torch.backends.cudnn.version()}, cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}")
PYEOF
if "$PY" -c "import singan_seg_polyp" 2>/dev/null; then REF=""; else
  REF="--no-reference"; echo "gpu_check: singan_seg_polyp not installed: no reference column (CPU ratios: benchmarks/README_scale.md)"
fi
nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu --format=csv 2>/dev/null || true

# first: does training run on the GPU at all through the public API (singanseg.api.train
# with device=cuda), and how far do its weights end from a CPU run of the same seed
timeout 60 "$PY" benchmarks/gpu_device_check.py --device cuda > "$OUT.device"
dev_rc=$?
cat "$OUT.device"
# paper (the projection that matters), then smoke; BUDGET_S bounds the paper part, the
# smoke part takes well under a minute on a GPU; the outer timeout is the hard stop.
timeout 360 "$PY" benchmarks/bench_scale.py --device cuda --profiles paper --ks "$KS" \
  --iters "$ITERS" --budget-s "$BUDGET_S" $REF --markdown "$OUT.paper"
rc=$?
timeout 45 "$PY" benchmarks/bench_scale.py --device cuda --profiles smoke --ks "$KS" \
  --iters "$ITERS" $REF --markdown "$OUT.smoke" || true
# Ray with GPU fractions (issue 16 s4): 4 smoke models, 0.25 GPU per task, on a local cluster
# started by train-many itself; a failure is reported, not fatal (Ray may be absent)
RAYDIR=$(mktemp -d)
"$PY" - "$RAYDIR" <<'PYEOF'
import sys, pathlib
from singanseg.pyramid import to_rgba  # noqa: F401  (repository on PYTHONPATH)
import numpy as np
from singanseg.io import write_png
d = pathlib.Path(sys.argv[1]) / "data"
rng = np.random.default_rng(0)
for i in range(4):
    m = np.zeros((64, 80), np.uint8); m[16:48, 20:60] = 255
    write_png(d / "images" / f"r{i}.png", rng.integers(0, 256, (64, 80, 3), dtype=np.uint8))
    write_png(d / "masks" / f"r{i}.png", m)
PYEOF
timeout 180 "$PY" -m singanseg train-many "$RAYDIR/data" --out "$RAYDIR/models" --profile smoke \
  --executor ray --gpus-per-task 0.25 > "$OUT.ray" 2>&1
ray_rc=$?
echo "gpu_check: Ray, 4 smoke models at 0.25 GPU per task: exit $ray_rc" | tee -a "$OUT.ray"
rm -rf "$RAYDIR"
# the whole paper run priced on this GPU: every dvc.yaml stage's unit at the paper sizes
# (pipeline/plan/cli.py; needs the segment / metrics dependencies and real pairs in $PLAN_DATA)
PLAN_DATA=${PLAN_DATA:-../shared/data/kvasir-seg-200}
timeout 900 "$PY" -m pipeline.plan --profile paper --calibrate --device cuda --data "$PLAN_DATA" \
  > "$OUT.plan" 2> "$OUT.plan.err"
plan_rc=$?
cat "$OUT.plan"
# one table: models per GPU-hour and the projected GPU-hours for 1000 images (target < 48 on an H100)
"$PY" - "$OUT.paper" "$OUT.plan" <<'PYEOF' | tee "$OUT.summary"
import re, sys
rows = [l for l in open(sys.argv[1]) if l.startswith("| ") and not l.startswith("| method") and "---" not in l]
print("\n| SinGAN-Seg, paper configuration | models per GPU-hour | GPU-hours for 1000 images | < 48 |\n|---|---|---|---|")
for l in rows:
    cells = [c.strip() for c in l.strip().strip("|").split("|")]
    try:
        per_h, hours = float(cells[4].replace(",", "")), float(cells[-1].replace(",", ""))
    except (ValueError, IndexError):
        continue
    print(f"| {cells[0]} | {per_h:,.0f} | {hours:,.1f} | {'yes' if hours < 48 else 'no'} |")
plan = open(sys.argv[2]).read() if len(sys.argv) > 2 else ""
m = re.search(r"total: ([0-9.,]+) h", plan)
g = re.search(r"models per GPU by memory: (\d+)", plan)
print(f"\npipeline.plan --calibrate on cuda: whole paper run {m.group(1) if m else 'not measured'} GPU-hours (serial, batch 1); "
      f"SinGAN-Seg models per GPU by memory: {g.group(1) if g else 'not measured'}")
PYEOF
cat "$OUT.device" "$OUT.paper" "$OUT.smoke" "$OUT.ray" "$OUT.plan" "$OUT.summary" > "$OUT" 2>/dev/null \
  && rm -f "$OUT.device" "$OUT.paper" "$OUT.smoke" "$OUT.ray" "$OUT.plan" "$OUT.summary"
echo "gpu_check: Ray exit $ray_rc; pipeline.plan exit $plan_rc (its log: $OUT.plan.err)"
echo "gpu_check: tables written to $OUT (exit $rc; 124 = the paper run hit its 360 s timeout; device check exit $dev_rc)"
[ "$rc" -eq 0 ] && exit $dev_rc
exit $rc

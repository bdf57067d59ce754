#!/usr/bin/env bash
# Batched SinGAN-Seg training on a GPU (issue 8 item 6): models per GPU-hour and the
# projected GPU-hours for 1000 images at the paper configuration (9 scales x 2000
# iterations, nfc 32..128; paper.md s1), for our single-model loop and batched K = 4, 8, 16
# (+ the authors' code when singan-seg-polyp is installed), after a functional check of
# training and sampling on the GPU (gpu_device_check.py). Offline; about 5-7 minutes.
#
#   bash benchmarks/gpu_check.sh                  # table on stdout and in gpu_check.md
#   PYTHON=/path/to/python KS=4,8,16 ITERS=3 BUDGET_S=300 bash benchmarks/gpu_check.sh
#
# Needs torch with CUDA, numpy, pyyaml, pillow, safetensors (singanseg imports them); run
# from a checkout (this script puts the repository on PYTHONPATH, no install needed).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python3}
KS=${KS:-4,8,16}
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
cat "$OUT.device" "$OUT.paper" "$OUT.smoke" > "$OUT" 2>/dev/null && rm -f "$OUT.device" "$OUT.paper" "$OUT.smoke"
echo "gpu_check: tables written to $OUT (exit $rc; 124 = the paper run hit its 360 s timeout; device check exit $dev_rc)"
[ "$rc" -eq 0 ] && exit $dev_rc
exit $rc

"""Run `python -m MODULE ARGS...` with torch's oneDNN (mkldnn) kernels switched off.

    python benchmarks/run_without_onednn.py pipeline.train_baselines --gan dcgan --no-progress

Part of the candidate cross-CPU setting measured in benchmarks/README.md ("MKL conditional
numerical reproducibility", issue 26 item 10): no environment variable turns oneDNN off, whose
convolution kernels are chosen per CPU; with it off, torch's convolutions fall back to im2col
and MKL's SGEMM, which MKL_CBWR governs.
"""

import runpy
import sys

import torch

if __name__ == "__main__":
    torch.backends.mkldnn.enabled = False
    sys.argv = sys.argv[1:]  # as `python -m MODULE ARGS` would see them
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)

"""Mutation check of tests/test_singan_equivalence.py (issue 13): apply each single-line
mutation to singanseg/, run the equivalence tests, print what fails, restore the file.

    PYTHONPATH=$PWD python tests/equivalence_mutations.py [N ...]   # all, or only mutations N

Each mutated file is restored in a `finally`; check `git diff` afterwards. Never commit one.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
M = [
    (
        "draw_concat: 1-channel noise at every coarser scale",
        "singanseg/training.py",
        "c = 1 if k == 0 else nc",
        "c = 1",
    ),
    (
        "draw_concat: noise amplitude dropped",
        "singanseg/training.py",
        "G_z = G(amp * z + G_z, G_z)",
        "G_z = G(z + G_z, G_z)",
    ),
    (
        "reconstruction weighted by lambda_grad instead of alpha",
        "singanseg/training.py",
        "rec = torch.stack([cfg.alpha * F.mse_loss(o, r) for o, r in pairs])",
        "rec = torch.stack([cfg.lambda_grad * F.mse_loss(o, r) for o, r in pairs])",
    ),
    (
        "G milestone off by one",
        "singanseg/training.py",
        "optG, milestones=[cfg.lr_milestone], gamma=cfg.gamma",
        "optG, milestones=[cfg.lr_milestone + 1], gamma=cfg.gamma",
    ),
    (
        "weights not copied when the width is unchanged",
        "singanseg/training.py",
        "copy = n > 0 and cfg.nfc_at(n - 1)[0] == cfg.nfc_at(n)[0]",
        "copy = n > 0 and cfg.nfc_at(n - 1)[0] != cfg.nfc_at(n)[0]",
    ),
    (
        "weights copied whenever the width is unchanged from scale 0 (width growth ignored)",
        "singanseg/training.py",
        "copy = n > 0 and cfg.nfc_at(n - 1)[0] == cfg.nfc_at(n)[0]",
        "copy = n > 0 and cfg.nfc_at(0)[0] == cfg.nfc_at(n)[0]",
    ),
    (
        "noise_amp without the square root",
        "singanseg/training.py",
        "float(cfg.noise_amp * torch.sqrt(F.mse_loss(r, z)))",
        "float(cfg.noise_amp * F.mse_loss(r, z))",
    ),
    (
        "accumulate: BatchNorm replay of the 3 G passes dropped",
        "singanseg/training.py",
        "rec_loss = rec_step(netG, Z_opt, z_prev, s.real, cfg, k, repeat=cfg.Gsteps)",
        "rec_loss = rec_step(netG, Z_opt, z_prev, s.real, cfg, k, repeat=1)",
    ),
    (
        "per_step: the generator step moved out of the G loop",
        "singanseg/training.py",
        "                rec_loss = rec_step(netG, Z_opt, z_prev, s.real, cfg, k, repeat=1)\n                optG.step()",
        "                rec_loss = rec_step(netG, Z_opt, z_prev, s.real, cfg, k, repeat=1)\n            optG.step()",
    ),
    (
        "sampling: gen_start_scale off by one",
        "singanseg/sample.py",
        "if n < gen_start_scale:",
        "if n <= gen_start_scale:",
    ),
    (
        "sampling: nc_z-channel noise at the coarsest scale",
        "singanseg/sample.py",
        "z = pad(torch.randn(b, 1, h, w, generator=gen).to(dev).expand(b, cfg.nc_z, h, w), p)",
        "z = pad(torch.randn(b, cfg.nc_z, h, w, generator=gen).to(dev), p)",
    ),
    (
        "sampling: noise amplitude dropped",
        "singanseg/sample.py",
        "I_prev = G(amp * z + I_prev, I_prev)",
        "I_prev = G(z + I_prev, I_prev)",
    ),
    (
        "fused Adam with beta1 0.9 (production path)",
        "singanseg/training.py",
        "optG = torch.optim.Adam(netG.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, 0.999), **impl)",
        "optG = torch.optim.Adam(netG.parameters(), lr=cfg.lr_g, betas=(0.9 if impl.get('fused') else cfg.beta1, 0.999), **impl)",
    ),
]
only = set(map(int, sys.argv[1:]))
for i, (name, path, old, new) in enumerate(M, 1):
    if only and i not in only:
        continue
    p = ROOT / path
    src = p.read_text()
    assert src.count(old) == 1, (i, old)
    p.write_text(src.replace(old, new))
    try:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--tb=line",
                str(ROOT / "tests/test_singan_equivalence.py"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    finally:
        p.write_text(src)
    out = r.stdout
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, re.M)
    lines = [
        line
        for line in out.splitlines()
        if line.startswith("E ") or ": AssertionError" in line or "Error:" in line
    ][:6]
    summary = out.strip().splitlines()[-1]
    print(f"## {i}. {name}\n{path}: -{old.strip()}\n{path}: +{new.strip()}\nresult: {summary}")
    for f in failed:
        print("  failed:", f)
    for line in lines:
        print("  ", line[:300])
    print(flush=True)

"""`python -m pipeline.plan`: every dvc.yaml stage priced; calibration at the profile's sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.plan import cli as plan_mod
from singanseg.io import write_png

ROOT = Path(__file__).resolve().parents[1]


def expected_stages() -> set[str]:
    """dvc.yaml's stages, foreach expanded as `dvc stage list` names them."""
    doc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    names = set()
    for name, body in doc["stages"].items():
        each = body.get("foreach")
        if each is None:
            names.add(name)
            continue
        if isinstance(each, str):
            each = params[each[2:-1].split(".")[0]][each[2:-1].split(".")[1]]
        names |= {f"{name}@{k}" for k in (each.keys() if isinstance(each, dict) else each)}
    return names


def run_plan(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.plan", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_smoke_table_and_json_list_every_stage(tmp_path):
    table = run_plan("--profile", "smoke", "--data", str(tmp_path))
    assert table.returncode == 0, table.stderr
    for stage in expected_stages():
        assert f"| {stage} |" in table.stdout
    assert "train_singan@0 | 2 models x 4 scales" in table.stdout  # 8 phantom images, 4 shards
    out = run_plan("--profile", "smoke", "--json", "--data", str(tmp_path))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert {s["stage"] for s in doc["stages"]} == expected_stages()
    assert doc["total_hours"] is None  # not calibrated
    assert all(s["disk_bytes"] >= 0 for s in doc["stages"])


def test_paper_work_units():
    """The paper's counts: 1000 models x 9 scales x 2000, 10k style-transfer images x 1000
    steps, 19 x 3 x 2 grid A trainings, FastGAN on 11 subsets."""
    p = plan_mod.Plan(ROOT / "params.yaml", "paper", ROOT / "no-such-dir", None)
    rows = {r.stage: r for r in plan_mod.work_rows(p, plan_mod.dvc_stages(ROOT / "dvc.yaml", p.raw))}
    assert p.n == 1000 and len(p.pyramid()) == 9 and max(p.pyramid()[-1]) == 250
    assert sum(rows[f"train_singan@{i}"].units["models"] for i in range(4)) == 1000
    assert rows["train_singan@0"].units["iterations"] == 2000
    assert rows["stylize@1to1000"].units == {"images": 10000, "steps": 1000}
    assert rows["segment@A"].units["trainings"] == 19 * 3 * 2
    assert rows["segment@B"].units["trainings"] == 5 * 10 * 2
    assert rows["train_baselines@fastgan"].units["models"] == 11
    assert rows["generate_baselines@fastgan"].work.startswith("11,000 samples at 512 px")


def test_cpu_work_units_follow_the_styled_and_fid_sample_cuts():
    """stylize.samples_per_model and quality.fid_singan_samples shrink the stylize and quality units."""
    p = plan_mod.Plan(ROOT / "params.yaml", "cpu", ROOT / "no-such-dir", 200)
    rows = {r.stage: r for r in plan_mod.work_rows(p, plan_mod.dvc_stages(ROOT / "dvc.yaml", p.raw))}
    gss, ratios, samples = len(p.gen.gen_start_scales), len(p.sty.ratios), p.gen.num_samples
    styled = p.sty.samples_per_model
    assert styled is not None and styled < samples  # the cpu profile's cut, which this test is about
    assert rows["stylize@1to1000"].units["images"] == 200 * styled
    q = rows["quality"].units
    assert q["sifid_pairs"] == 200 * (gss * samples + ratios * styled)
    n_base = sum(len(p.base.subsets_of(g)) for g in ("dcgan", "progan", "fastgan"))
    f = p.qual.fid_singan_samples
    assert q["fid_images"] == 200 * (gss * min(samples, f) + ratios * min(styled, f)) + n_base * p.base.num_samples + 200


def _tiny_pairs(folder: Path, n: int = 2, side: int = 260) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        mask = np.zeros((side, side), np.uint8)
        mask[60:200, 80:180] = 255
        write_png(folder / "images" / f"p{i}.png", rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
        write_png(folder / "masks" / f"p{i}.png", mask)
    return folder


@pytest.mark.slow  # seconds per unit on an idle machine, but 7 min under this machine's load (measured)
def test_calibrate_smoke_on_two_pairs(tmp_path):
    data = _tiny_pairs(tmp_path / "data")
    out = run_plan("--profile", "smoke", "--calibrate", "--json", "--data", str(data), "--pairs", "2", "--budget-s", "1")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    stages = {s["stage"]: s for s in doc["stages"]}
    assert set(stages) == expected_stages()
    for name, s in stages.items():
        assert s["hours"] is not None and s["hours"] >= 0, name
        if name != "report":
            assert s["peak_memory_mb"] > 0, name
    cal = stages["train_singan@0"]["calibration"]
    assert len(cal["scales"]) == 4 and all(r["per_iter_s"] > 0 for r in cal["scales"])
    assert doc["total_hours"] == pytest.approx(sum(s["hours"] for s in doc["stages"]))


def test_calibrate_without_pairs_is_one_line(tmp_path):
    out = run_plan("--profile", "smoke", "--calibrate", "--data", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip().startswith("plan: error:") and str(tmp_path) in out.stderr


@pytest.mark.long
@pytest.mark.slow
def test_paper_calibration_on_two_real_pairs(kvasir_dir):
    """Every stage's unit at the paper's sizes (9-scale pyramid to 250 px at 128 channels,
    VGG16 at 250 px, ProGAN / FastGAN at 256 px, UNet++ se_resnext50_32x4d at 128 px,
    Inception at 299 px) runs: a paper-size shape or memory regression fails here."""
    out = run_plan("--profile", "paper", "--calibrate", "--json", "--data", str(kvasir_dir), "--pairs", "2", "--budget-s", "10")
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout)
    stages = {s["stage"]: s for s in doc["stages"]}
    assert set(stages) == expected_stages()
    assert len(stages["train_singan@0"]["calibration"]["scales"]) == 9
    assert all(s["hours"] is not None for s in stages.values())
    assert doc["total_hours"] > 0


def test_calibration_models_the_batched_path(tmp_path):
    """singan.batch K > 1: K models are timed as one, and the --data pairs' buckets price the chunks."""
    import torch

    from pipeline.plan import calibrate as cal
    from singanseg.config import SinGANConfig
    from singanseg.io import list_pairs, read_pair
    from singanseg.pyramid import to_rgba

    data = _tiny_pairs(tmp_path / "data", n=3, side=40)
    _tiny_pairs(tmp_path / "other", n=1, side=48)  # another size: a bucket of its own
    for sub in ("images", "masks"):
        (tmp_path / "other" / sub / "p0.png").rename(data / sub / "tall.png")
    cfg = SinGANConfig(max_size=32, min_size=16, nfc=8, min_nfc=8, niter=10)
    pairs = list_pairs(data)
    image, mask, info = read_pair(pairs[0])
    out = cal.singan(cfg, to_rgba(image, mask, ambiguous_px=info.ambiguous_px), torch.device("cpu"), 20.0, batch=2)
    assert all(r["per_iter_batch_s"] > 0 and r["setup_batch_s"] > 0 for r in out["scales"])
    assert set(out["seconds_per_chunk"]) == {1, 2} and out["seconds_per_chunk"][1] == out["seconds_per_model"]
    assert sorted(cal.chunk_sizes(pairs, cfg, 2)) == [1, 1, 2]  # p0 p1 | p2 ; tall
    assert sorted(cal.chunk_sizes(pairs, cfg, 4)) == [1, 3]
    # the line through the two measured chunk costs: 1 model alone, 2 together
    assert cal.seconds_per_model_batched({1: 10.0, 2: 14.0}, [2, 2]) == pytest.approx(7.0)
    assert cal.seconds_per_model_batched({1: 10.0, 2: 14.0}, [1, 2]) == pytest.approx(8.0)
    assert cal.seconds_per_model_batched({1: 10.0, 4: 16.0}, [3]) == pytest.approx(14.0 / 3)


# issue 26 item 8: nonsense counts and a missing --data were planned (`--images 0` ignored,
# -5 planned for -5 images, 1e12 ended in a 7 TiB allocation, /nonexistent "from no pairs").
@pytest.mark.parametrize(
    "args,says",
    [(["--images", "0"], "--images: must be between 1 and"),
     (["--images", "-5"], "--images: must be between 1 and"),
     (["--images", "1e12"], "--images: '1e12' is not a whole number"),
     (["--images", "1000000000000"], "--images: must be between 1 and 1,000,000, got 1,000,000,000,000"),
     (["--pairs", "0"], "--pairs: must be between 1 and"),
     (["--budget-s", "nan"], "--budget-s: must be a positive finite number"),
     (["--data", "/nonexistent"], "--data /nonexistent: folder not found")],
)  # fmt: skip
def test_nonsense_arguments_are_refused_in_one_line(args, says, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert plan_mod.main(["--profile", "smoke", *args]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err.startswith("plan: error: ") and says in cap.err, cap.err
    assert len(cap.err.strip().splitlines()) == 1


def test_data_that_is_a_file_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    (tmp_path / "f.png").write_bytes(b"x")
    assert plan_mod.main(["--profile", "smoke", "--data", str(tmp_path / "f.png")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_a_valid_image_count_is_planned(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert plan_mod.main(["--profile", "smoke", "--json", "--images", "12", "--data", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 12

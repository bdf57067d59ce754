"""The data stage refuses, before any training, data that cannot feed the configured grids."""

import subprocess
import sys

import numpy as np
import yaml
from PIL import Image

from pipeline.data.feasibility import minimum_pairs, problems
from pipeline.data.prepare import assign_folds


def _params(repo_root, tmp_path, profile):
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    raw["profile"] = profile
    raw["data"]["track"] = False
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_every_profile_is_feasible_on_the_data_it_is_made_for(repo_root, tmp_path):
    seq = lambda n: {f"i{k}": k * 3 // n for k in range(n)}  # noqa: E731  (np.array_split of n ids into 3)
    assert problems(seq(8), _params(repo_root, tmp_path, "smoke")) == []  # the 8 phantom pairs
    assert problems(seq(200), _params(repo_root, tmp_path, "cpu")) == []  # the 200 shared Kvasir-SEG pairs


def test_minimum_pairs_is_the_first_count_the_check_accepts_and_the_readme_quotes_it(repo_root, tmp_path):
    readme = (repo_root / "README.md").read_text()
    for profile in ("smoke", "cpu", "paper"):
        params = _params(repo_root, tmp_path, profile)
        need = minimum_pairs(params)
        ids = lambda n: [f"img{k}" for k in range(n)]  # noqa: E731
        assert problems(assign_folds(ids(need), 3), params) == []  # the folds the data stage writes
        assert problems(assign_folds(ids(need - 1), 3), params) != []
        assert f"| `{profile}` | {need} |" in readme  # the README's table


def test_three_pairs_under_smoke_name_every_parameter_to_change(repo_root, tmp_path):
    found = " | ".join(problems({"a": 0, "b": 1, "c": 2}, _params(repo_root, tmp_path, "smoke")))
    for key in ("segment.grid_b.n_values", "baselines.dcgan.batch_size", "baselines.progan.batch_size"):
        assert key in found


def test_the_data_stage_refuses_in_one_line_and_keeps_its_outputs(repo_root, tmp_path):
    data = tmp_path / "own"
    for d in ("images", "masks"):
        (data / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(data / "images" / f"p{i}.png")
        mask = np.zeros((32, 32), np.uint8)
        mask[8:20, 8:20] = 255
        Image.fromarray(mask).save(data / "masks" / f"p{i}.png")
    params = _params(repo_root, tmp_path, "smoke")
    raw = yaml.safe_load(params.read_text())
    raw["profiles"]["smoke"]["data"] = {"phantom": {"count": 8}}  # the folder is the user's choice
    raw["data"].update(source="folder", folder=str(data))
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = tmp_path / "out"
    (out / "real").mkdir(parents=True)
    (out / "real" / "keep.txt").write_text("previous output")
    r = subprocess.run([sys.executable, "-m", "pipeline.data", "--params", str(params), "--out", str(out)],
                       cwd=repo_root, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot feed the configured experiments" in lines[0]
    assert "segment.grid_b.n_values" in lines[0] and "baselines.dcgan.batch_size" in lines[0]
    assert f"profile smoke needs at least {minimum_pairs(params)} pairs, 3 given" in lines[0]
    assert (out / "real" / "keep.txt").read_text() == "previous output"
    assert not (out / "folds.csv").exists()

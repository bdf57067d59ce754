"""The train_singan and generate stages on one real pair, with MLflow tracking."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from pipeline import generate, train_singan
from singanseg.io import list_pairs
from singanseg.typed import ConfigError

TINY = {"max_size": 32, "min_size": 16, "nfc": 8, "min_nfc": 8, "niter": 8}


def test_train_then_generate(kvasir_dir, tmp_path, mlflow_uri):
    params = tmp_path / "params.yaml"
    models, synth = tmp_path / "models", tmp_path / "synthetic"
    params.write_text(
        yaml.safe_dump(
            {
                "singan": {
                    "input_dir": str(kvasir_dir),
                    "out_dir": str(models),
                    "limit": 2,
                    "seed": 1,
                    "model": TINY,
                },
                "generate": {
                    "models_dir": str(models),
                    "out_dir": str(synth),
                    "gen_start_scales": [0, 1],
                    "num_samples": 2,
                },
            }
        )
    )
    assert (
        train_singan.main(["--params", str(params), "--shard", "1", "--num-shards", "2", "--quiet"])
        == 0
    )
    ids = [p.id for p in list_pairs(kvasir_dir)[:2]]
    assert sorted(p.name for p in models.iterdir() if p.is_dir()) == [ids[1]]  # shard 1 of 2 takes the second id
    assert (
        train_singan.main(["--params", str(params), "--shard", "0", "--num-shards", "2", "--quiet"])
        == 0
    )
    stamp = (models / ids[0] / "model.json").stat().st_mtime_ns
    assert (
        train_singan.main(["--params", str(params), "--quiet"]) == 0
    )  # both finished: nothing retrained
    assert (models / ids[0] / "model.json").stat().st_mtime_ns == stamp

    assert generate.main(["--params", str(params)]) == 0
    for gss in (0, 1):
        pairs = list_pairs(synth / f"gss{gss}")
        assert [p.id for p in pairs] == sorted(f"{i}_{n}" for i in ids for n in range(2))
        for p in pairs:
            m = np.asarray(Image.open(p.mask))
            assert (
                set(np.unique(m).tolist()) <= {0, 255}
                and m.shape == np.asarray(Image.open(p.image)).shape[:2]
            )

    # params changed: DVC re-runs the stage and the stale models are retrained, not refused
    changed = yaml.safe_load(params.read_text())
    changed["singan"].update(limit=1, model={**TINY, "niter": 9})
    params.write_text(yaml.safe_dump(changed))
    assert train_singan.main(["--params", str(params), "--quiet"]) == 0
    assert json.loads((models / ids[0] / "model.json").read_text())["config"]["niter"] == 9

    import mlflow

    mlflow.set_tracking_uri(mlflow_uri)
    runs = mlflow.search_runs(experiment_names=["singanseg"], output_format="list")
    children = [r for r in runs if r.data.tags.get("image_id")]
    assert {r.data.tags["image_id"] for r in children} == set(ids)
    assert any(k.startswith("scale.rec_loss_last") for r in children for k in r.data.metrics)


def test_bad_params_name_the_key(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"singan": {"model": {"nitre": 3}}}))
    with pytest.raises(ConfigError, match="singan.model.nitre"):
        train_singan.run(
            train_singan.load_section("singan", train_singan.SinGANStageParams, params)
        )

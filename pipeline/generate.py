"""DVC stage `generate`: synthetic pairs from every trained SinGAN-Seg model.

Writes `<out>/gss<S>/{images,masks}/<id>_<n>.png` for every gen_start_scale S (paper.md
s1/s5: the experiments used S = 0 and up to 10 samples per real image), each gss folder
atomically. Models are found as folders holding model.json under `models_dir` (so sharded
training layouts work too).

    python -m pipeline.generate [--params params.yaml]
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.infra.mlflow_tracker import log_metrics, stage_run
from pipeline.stage import Stage
from singanseg.io import InputError, atomic_dir
from singanseg.sample import SampleError, write_pairs
from singanseg.saved_model import SinGANSeg
from singanseg.typed import ConfigError


@dataclass(frozen=True)
class GenerateParams:
    models_dir: str = "models/singan"
    out_dir: str = "synthetic/singan"
    gen_start_scales: tuple[int, ...] = (0,)  # paper.md s1: every experiment used 0
    num_samples: int = (
        10  # paper.md s1/s3: 10 per real image (the 10k set), folds use the first k <= 5
    )
    mask_post_processing: bool = True  # paper.md s1: threshold 0.5 -> {0, 255}
    seed: int = 0
    track: bool = True

    def validate(self, where: str) -> None:
        if self.num_samples < 1:
            raise ConfigError(f"{where}.num_samples: must be >= 1")
        if not self.gen_start_scales or min(self.gen_start_scales) < 0:
            raise ConfigError(f"{where}.gen_start_scales: a non-empty list of scales >= 0")


def model_folders(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: models folder not found (run the train_singan stage first)")
    found = sorted({p.parent for p in root.rglob("model.json")}, key=lambda p: p.name)
    if not found:
        raise InputError(f"{root}: no trained models (no model.json below it)")
    for a, b in zip(found, found[1:], strict=False):
        if a.name == b.name:  # e.g. an id that moved between shards: which one is current?
            raise InputError(f"{b}: a second model for id '{b.name}' (also {a}); remove the stale one")
    return found


def sample_seed(base: int, image_id: str, gss: int) -> int:
    return int(hashlib.sha256(f"{base}:{image_id}:{gss}".encode()).hexdigest()[:8], 16)


def run(params: GenerateParams) -> dict[int, int]:
    folders = model_folders(params.models_dir)
    models = {f.name: SinGANSeg.load(f) for f in folders}
    counts = {}
    with stage_run("generate", params, enabled=params.track) as run_:
        for gss in params.gen_start_scales:
            with atomic_dir(Path(params.out_dir) / f"gss{gss}") as tmp:
                for image_id, model in models.items():
                    if gss > model.num_scales:
                        raise SampleError(
                            f"{model.path}: gen_start_scale {gss} is out of range 0..{model.num_scales}"
                        )
                    pairs = model.sample(
                        params.num_samples,
                        gss,
                        seed=sample_seed(params.seed, image_id, gss),
                        mask_post_processing=params.mask_post_processing,
                    )
                    write_pairs(pairs, tmp, image_id)
            counts[gss] = len(models) * params.num_samples
            log_metrics(run_, {f"pairs.gss{gss}": counts[gss]})
    return counts


def main(argv: list[str] | None = None) -> int:
    stage = Stage("generate", __doc__, GenerateParams)
    return stage.run(lambda args, params: print(f"generate: {run(params)}"), argv)


if __name__ == "__main__":
    sys.exit(main())

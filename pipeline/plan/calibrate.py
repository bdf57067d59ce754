"""`pipeline.plan --calibrate`: time each stage's unit of work at the profile's real sizes.

Every unit runs the project's own code path (the SinGAN-Seg training step of every scale of
a real image's pyramid, the VGG style-transfer step, the baseline GANs' `Trainer.step`,
their samplers, the Inception / LPIPS passes of the quality stage, a UNet++ training step),
on real pairs from `--data`, for a few iterations: one warm-up call (oneDNN / cuDNN set up
each new shape once), then the least of a few timed calls, within a per-unit budget. The machine
is shared and its neighbours only ever add time (measured here: one 21x23 px SinGAN step
took 0.7 to 9 s in a row), so the minimum, not the mean or median, is the step's cost;
CUDA times after synchronize.

Pretrained weights cannot be assumed offline: every network here is random-init with the
architecture the profile names. Timing does not depend on the weights' values.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

RANDOM_NOTE = "random-init weights (same architecture; timing does not depend on weight values)"


class PeakMemory:
    """Peak RSS (MB) of this process while the block runs (a 20 ms sampler thread), and the
    CUDA peak of torch's allocator on a GPU."""

    def __init__(self, device: torch.device):
        import psutil

        self.proc, self.device = psutil.Process(), device
        self.peak_mb = 0.0
        self.cuda_mb: float | None = None
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self.proc.memory_info().rss / 2**20)
            self._stop.wait(0.02)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.proc.memory_info().rss / 2**20)
        if self.device.type == "cuda":
            self.cuda_mb = torch.cuda.max_memory_allocated(self.device) / 2**20


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def least_seconds(fn: Callable[[], Any], device: torch.device, budget_s: float, reps: int = 3) -> float:
    """One warm-up call, then the least of up to `reps` timed calls (fewer when one call
    would overrun `budget_s`; at least one)."""
    t = _now(device)
    fn()
    warm = _now(device) - t
    times: list[float] = []
    spent = warm
    while len(times) < reps and (not times or spent + warm <= budget_s):
        t = _now(device)
        fn()
        times.append(_now(device) - t)
        spent += times[-1]
    return min(times)


# ---------------------------------------------------------------- SinGAN-Seg


def singan(cfg, rgba: np.ndarray, device: torch.device, budget_s: float, batch: int = 1) -> dict[str, Any]:
    """Per scale of the pyramid of `rgba`: setup seconds (init + the 'rec' chain) and seconds
    per training iteration of one model (singanseg.training.train_iterations at K = 1, niter 1);
    with `batch` K > 1 also of K models trained as one (`train-many --batch K`: the same
    loop, K copies of the pair under K seeds; speed does not depend on content), as
    "setup_batch_s" / "per_iter_batch_s" per scale and "seconds_per_chunk" {1: .., K: ..}.

    The scales are trained for real (one iteration each), so scale n runs on top of the
    frozen generators of scales < n as in a real run. Returns the model too (generate's unit).
    """
    from singanseg.pyramid import build_pyramid
    from singanseg.saved_model import SinGANSeg
    from singanseg.training import Member, init_scale, train_iterations, train_scale

    reals, spec = build_pyramid(rgba, cfg)
    one = dataclasses.replace(cfg, niter=1, snapshot_every=0)
    member = Member("calibrate", None, 0, torch.Generator().manual_seed(0), reals, spec, {})
    rows = []
    per_scale_budget = budget_s / len(reals)
    for n in range(len(reals)):
        t = _now(device)
        (res,) = train_scale(n, [member], one, device)  # also the warm-up
        first = _now(device) - t

        scale = init_scale(n, [member], one, device)  # set-up outside the timed iterations

        def step(scale=scale):  # one more iteration of this scale (its own nets, bound now)
            train_iterations(scale, one)

        # the first call above was the warm-up of this shape: time directly, least of <= 3
        times, spent = [], first
        while len(times) < 3 and (not times or spent + times[-1] <= per_scale_budget):
            t = _now(device)
            step()
            times.append(_now(device) - t)
            spent += times[-1]
        per_iter = min(times)
        h, w = reals[n].shape[2:]
        rows.append({"scale": n, "shape": [int(h), int(w)], "setup_s": max(first - per_iter, 0.0), "per_iter_s": per_iter})
        if batch > 1:  # K models on this model's coarser scales: set-up, then the least of <= 2 iterations
            many = [Member(str(i), None, i, torch.Generator().manual_seed(i), reals, spec, {}, member.scales)
                    for i in range(batch)]  # fmt: skip
            t = _now(device)
            scale_k = init_scale(n, many, one, device)
            setup_k = _now(device) - t
            times = []
            while len(times) < 2 and (not times or sum(times) + setup_k <= per_scale_budget):
                t = _now(device)
                train_iterations(scale_k, one)
                times.append(_now(device) - t)
            rows[-1].update(setup_batch_s=setup_k, per_iter_batch_s=min(times))
        member.scales.append({**res, "losses": {}})
    scales = [{**s, "G": s["G"].to(device), "D": s["D"].to(device), "z_opt": s["z_opt"].to(device),
               "real": s["real"].to(device)} for s in member.scales]  # fmt: skip
    model = SinGANSeg(cfg, scales, spec.scale_factor)
    seconds = sum(r["setup_s"] + cfg.niter * r["per_iter_s"] for r in rows)
    out = {"scales": rows, "seconds_per_model": seconds, "model": model}
    if batch > 1:
        chunk = sum(r["setup_batch_s"] + cfg.niter * r["per_iter_batch_s"] for r in rows)
        out["seconds_per_chunk"] = {1: seconds, batch: chunk}
    return out


def chunk_sizes(pairs, cfg, batch: int) -> list[int]:
    """The chunks `train-many --batch K` trains `pairs` in: each bucket (pyramid shapes, from
    the image headers: singanseg.train_many_batched.plan_key) in chunks of up to K."""
    import tempfile

    from singanseg.executors import Skipped
    from singanseg.train_many_batched import plan_key

    buckets: dict[Any, int] = {}
    with tempfile.TemporaryDirectory() as nowhere:  # no model folders: every pair is to train
        for p in pairs:
            key = plan_key(p, Path(nowhere) / p.id, cfg, 0)
            if not isinstance(key, Skipped):
                buckets[key] = buckets.get(key, 0) + 1
    return [min(batch, n - i) for n in buckets.values() for i in range(0, n, batch)]


def seconds_per_model_batched(seconds_per_chunk: dict[int, float], chunks: list[int]) -> float:
    """Mean seconds per model over `chunks`, a chunk of j models costing the line through
    the measured chunk costs of 1 and K models (j = 1: one model alone)."""
    (k1, t1), (k, tk) = sorted(seconds_per_chunk.items())
    cost = sum(t1 + (j - k1) * (tk - t1) / (k - k1) for j in chunks)
    return cost / sum(chunks)


def generate(model, device: torch.device, budget_s: float, n: int = 4) -> float:
    """Seconds per sample at gen_start_scale 0 (SinGANSeg.sample, the generate stage's call)."""
    return least_seconds(lambda: model.sample(n, 0, seed=0), device, budget_s) / n


# ---------------------------------------------------------------- style transfer


def stylize(params, content: np.ndarray, style: np.ndarray, device: torch.device, budget_s: float) -> float:
    """Seconds per image per Adam step (singanseg.style_transfer.transfer_style_tensors), VGG at the
    generated samples' size, `batch_size` images per pass as the stage; random-init VGG."""
    from singanseg.style_transfer import StyleConfig, load_backbone, transfer_style_tensors

    b = params.batch_size
    cfg = StyleConfig(vgg_model=params.vgg_model, weights="random", download=False, layers=params.layers, capture=params.capture)
    backbone = load_backbone(cfg, device)
    c = torch.from_numpy(content).permute(2, 0, 1)[None].float().div(255).repeat(b, 1, 1, 1)
    s = torch.from_numpy(style).permute(2, 0, 1)[None].float().div(255).repeat(b, 1, 1, 1)

    def run(epochs: int) -> Callable[[], Any]:
        return lambda: transfer_style_tensors(c, s, backbone, dataclasses.replace(cfg, num_epochs=epochs))

    t1 = least_seconds(run(1), device, budget_s / 3, reps=2)
    t3 = least_seconds(run(3), device, budget_s / 2, reps=2)
    per_step = (t3 - t1) / 2 if t3 > t1 else t1  # the targets' feature pass is paid once per image
    return per_step / b


# ---------------------------------------------------------------- baseline GANs


def baseline(gan: str, config, data: Path, pairs: int, device: torch.device, budget_s: float) -> dict[str, Any]:
    """Seconds per training iteration (Trainer.step at the config's batch and resolution;
    for Progressive GAN one figure per phase, weighted by the phase's share of iterations)
    and seconds per generated sample (the sampler the stage uses)."""
    from baselines.common import get_gan
    from baselines.data import load_dataset

    spec = get_gan(gan)
    if hasattr(config, "weights"):  # FastGAN's LPIPS-VGG: no ImageNet weights offline
        config = dataclasses.replace(config, weights="random", weights_path=None)
    load_res = spec.load_resolution(config) if spec.load_resolution else config.resolution
    x, _ = load_dataset(data, load_res, min(pairs, len(list(Path(data, "images").iterdir()))), spec.resize)
    real = x.repeat(math.ceil(config.batch_size / len(x)), 1, 1, 1)[: config.batch_size].to(device)
    torch.manual_seed(0)
    trainer = spec.make_trainer(config, device)
    rng = torch.Generator().manual_seed(0)
    total = spec.total_iterations(config, 1000)
    phases = int(getattr(config, "num_phases", 1)) if gan == "progan" else 1
    # ProGAN grows 8 px -> resolution: time an iteration in each phase (the last dominates)
    points = [int((p + 0.5) * total / phases) for p in range(phases)]
    per_phase = [least_seconds(lambda i=i: trainer.step(real, i, rng), device, budget_s * 0.8 / phases) for i in points]
    sampler, _ = trainer.sampler()
    sampler = sampler.to(device).eval()
    n = 4

    @torch.no_grad()
    def sample():
        sampler(sampler.latent(n, rng).to(device))

    per_sample = least_seconds(sample, device, budget_s * 0.2) / n
    return {"per_iter_s": sum(per_phase) / phases, "per_phase_s": per_phase, "per_sample_s": per_sample}


# ---------------------------------------------------------------- quality


def quality(params, real: np.ndarray, fake: np.ndarray, device: torch.device, budget_s: float) -> dict[str, float]:
    """Seconds per SIFID pair (two Inception passes to Conv2d_2b at 299 px + the Frechet
    distance), per FID image (pool3 at 299 px, in batches) and per LPIPS pair."""
    from pipeline.metrics.inception import load_inception
    from pipeline.metrics.lpips_diversity import load_lpips
    from pipeline.metrics.sifid import sifid_from_arrays

    sifid_net = load_inception(params.sifid.network, "random", resize=params.sifid.resize, device=device)
    per_sifid = least_seconds(lambda: sifid_from_arrays(real, fake, sifid_net, params.sifid.dims, device=device), device, budget_s / 3)
    fid_net = load_inception(params.fid.network, "random", resize=True, device=device)
    b = min(params.fid.batch_size, 8)
    x = torch.from_numpy(fake).permute(2, 0, 1)[None].float().div(255).repeat(b, 1, 1, 1).to(device)
    with torch.no_grad():
        per_fid = least_seconds(lambda: fid_net(x, taps=("pool3",)), device, budget_s / 3) / b
    lp, _ = load_lpips(params.lpips.net, "random", device=device)
    # LPIPS diversity compares two samples of one model (the same size)
    a = torch.from_numpy(fake).permute(2, 0, 1)[None].float().div(127.5).sub(1).to(device)
    r = a.flip(-1)
    with torch.no_grad():
        per_lpips = least_seconds(lambda: lp(a, r), device, budget_s / 3)
    return {"per_sifid_pair_s": per_sifid, "per_fid_image_s": per_fid, "per_lpips_pair_s": per_lpips}


# ---------------------------------------------------------------- segmentation


def segment(model_params, train, data: Path, pairs: int, device: torch.device, budget_s: float) -> dict[str, float]:
    """Seconds per training image (a UNet++ step at the grid's batch and image size: forward,
    Dice loss, backward, Adam) and per evaluated image (forward at val_batch_size)."""
    from pipeline.segment.data import PairDataset
    from pipeline.segment.model import build_model
    from pipeline.segment.train import make_loss, to_memory_format
    from singanseg.io import list_pairs

    model = build_model(dataclasses.replace(model_params, encoder_weights=None)).to(device)
    if train.memory_format == "channels_last":  # the layout the grid trains in, as it costs
        model.to(memory_format=torch.channels_last)
    ds = PairDataset(list_pairs(data)[:pairs], train.img_size, train=True, pyra_size=train.pyra_size, name="plan")
    items = [ds[i] for i in range(len(ds))]
    reps = math.ceil(train.batch_size / len(items))
    x = to_memory_format(torch.stack([it[0] for it in items] * reps)[: train.batch_size].to(device), train.memory_format)
    y = torch.stack([it[1] for it in items] * reps)[: train.batch_size].to(device)
    loss_fn = make_loss(train.dice_loss, train.loss)
    opt = torch.optim.Adam(model.parameters(), lr=train.lr)

    def step():
        model.train()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    per_step = least_seconds(step, device, budget_s * 0.7)
    xv = x[: train.val_batch_size]

    @torch.no_grad()
    def evaluate():
        model.eval()
        model(xv)

    per_eval = least_seconds(evaluate, device, budget_s * 0.3) / len(xv)
    return {"per_train_image_s": per_step / len(x), "per_step_s": per_step, "per_eval_image_s": per_eval}


def io_pairs(data: Path, pairs: int, budget_s: float) -> float:
    """Seconds per pair for the data stage's read, validate and PNG write."""
    import tempfile

    from singanseg.io import list_pairs, read_image, read_mask, write_png

    chosen = list_pairs(data)[:pairs]

    def run():
        with tempfile.TemporaryDirectory() as tmp:
            for p in chosen:
                write_png(Path(tmp, f"{p.id}.png"), read_image(p.image))
                write_png(Path(tmp, f"{p.id}_m.png"), read_mask(p.mask)[0])

    return least_seconds(run, torch.device("cpu"), budget_s) / len(chosen)

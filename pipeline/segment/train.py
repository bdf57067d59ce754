"""Training loop for one UNet++: soft Dice, Adam with the lr drop, selection by validation IoU.

The authors' loop (`singan-polyp-aug-exp: 777_all_in_one_v1.py::train_model`, paper.md
section 5): per epoch `TrainEpoch` then `ValidEpoch` (smp.utils), keep the model whose
validation IoU (threshold 0.5, polyp channel, per-image mean with val batch 1) beats the
best so far, and after epoch `lr_change_point` (50) set the lr to 1e-5. We keep that
order. What the loop validates on is the caller's choice (the protocols live in
experiments.py); `fit` records every id it validated on, so tests can prove the `clean`
protocol never looked at the test fold while selecting.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.segment.config import TrainParams
from pipeline.segment.scores import ScoreAccumulator
from singanseg.device import resolve_device
from singanseg.io import InputError
from singanseg.progress import Progress
from singanseg.typed import ConfigError


class IndexedDataset(Dataset):
    """Yields (x, y, index) so that loops know exactly which pairs they saw."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        x, y = self.ds[i]
        return x, y, i


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def smp_utils_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The removed `smp.utils.losses.DiceLoss(ignore_channels=[0])` on softmax2d output.

    1 - f_score(beta=1, eps=1, threshold=None) over the whole batch's polyp channel:
    1 - (2 sum(gt pr) + 1) / (sum(gt) + sum(pr) + 1). A batch without polyp pixels still
    pushes the prediction towards empty (smp.losses gives it 0 loss instead).
    """
    pr = logits.softmax(dim=1)[:, 1]
    gt = (target == 1).to(pr.dtype)
    tp = (gt * pr).sum()
    return 1 - (2 * tp + 1) / (gt.sum() + pr.sum() + 1)


def make_loss(kind: str, extra: str = "dice") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The Dice loss of formula `kind`; with `extra="dice_ce"` plus the mean pixel-wise
    cross-entropy over both classes (`train_*.loss`, our option; the paper trains on Dice alone)."""
    dice = _dice_loss(kind)
    if extra == "dice":
        return dice
    if extra != "dice_ce":
        raise ConfigError(f"segment.train.loss: unknown {extra!r} (dice, dice_ce)")

    def dice_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dice(logits, target) + torch.nn.functional.cross_entropy(logits, target)

    return dice_ce


def to_memory_format(x: torch.Tensor, memory_format: str) -> torch.Tensor:
    """A 4-D batch in the layout `train_*.memory_format` names (the model is converted once)."""
    return x.contiguous(memory_format=torch.channels_last) if memory_format == "channels_last" else x


def _dice_loss(kind: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if kind == "smp_utils":
        return smp_utils_dice_loss
    if kind == "smp_losses":
        import segmentation_models_pytorch as smp

        # softmax over (background, polyp), Dice on the polyp channel only (= ignore_channels=[0]),
        # batch-wise sums as smp.utils. smp 0.6 computes Dice as a Tversky score
        # (I + s) / (I + fp/2 + fn/2 + s) = (2I + 2s) / (|pr| + |gt| + 2s), so smooth 0.5
        # reproduces smp.utils DiceLoss's (2I + 1) / (|pr| + |gt| + 1) (its eps = 1).
        return smp.losses.DiceLoss(mode="multiclass", classes=[1], from_logits=True, smooth=0.5)
    raise ConfigError(f"segment.train.dice_loss: unknown {kind!r} (smp_losses, smp_utils)")


@torch.no_grad()
def evaluate(model: torch.nn.Module, ds, batch_size: int, device: torch.device, loss_fn=None,
             memory_format: str = "contiguous") -> dict:
    """Scores (both averaging modes), mean loss, the ids evaluated and each image's scores
    (`per_image`: dicts with image_id and the five scores); model put in eval mode."""
    model.eval()
    loader = DataLoader(IndexedDataset(ds), batch_size=batch_size, shuffle=False)
    acc = ScoreAccumulator()
    losses, seen = [], []
    for x, y, idx in loader:
        x, y = to_memory_format(x.to(device), memory_format), y.to(device)
        logits = model(x)
        if loss_fn is not None:
            losses.append(float(loss_fn(logits, y)))
        acc.update(logits.softmax(dim=1), y)
        seen += [ds.pairs[int(i)].id for i in idx]
    return {"scores": acc.compute(), "loss": float(np.mean(losses)) if losses else float("nan"), "ids": seen,
            "per_image": [{"image_id": i, **r} for i, r in zip(seen, acc.per_image(), strict=True)]}


@dataclass
class TrainResult:
    best_epoch: int
    best_val_iou: float
    curves: list[dict]  # one row per epoch
    state: dict[str, torch.Tensor]  # the selected weights (CPU copies)
    val_ids_seen: set[str] = field(default_factory=set)
    train_ids_seen: set[str] = field(default_factory=set)


def fit(
    model: torch.nn.Module,
    train_ds,
    val_ds,
    params: TrainParams,
    seed: int = 0,
    on_epoch: Callable[[dict], None] | None = None,
    steps: int | None = None,
) -> TrainResult:
    """Train for `params.epochs`; keep the weights of the best validation IoU (per-image mean).

    `steps` (issue 22 s4, `train_*.clean_steps`): train exactly this many optimiser steps
    instead, in as many passes over the data as that takes (the last one cut short), so that
    training sets of different sizes get the same training length; the lr drops after the
    same fraction of the steps as `lr_change_epoch` is of `epochs`. Validation runs every
    `val_every` passes and after the last (1 = every epoch, the authors')."""
    if len(train_ds) == 0:
        raise InputError("segment.train: empty training set")
    device = resolve_device(params.device)
    seed_everything(seed)
    model.to(device)
    if params.memory_format == "channels_last":
        model.to(memory_format=torch.channels_last)
    loss_fn = make_loss(params.dice_loss, params.loss)
    # the authors built Adam without weight_decay although they parsed it (paper.md section 5)
    opt = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    bs = params.batch_size
    loader = DataLoader(
        IndexedDataset(train_ds),
        batch_size=bs,
        shuffle=True,  # as the authors' train loader
        generator=torch.Generator().manual_seed(seed),
        num_workers=params.num_workers,
        # BatchNorm cannot train on a last batch of one image at the coarsest scale of a tiny
        # input; the authors (bs 8, 128 px) never hit it. Dropping it only then changes nothing else.
        drop_last=len(train_ds) % bs == 1 and len(train_ds) > 1,
    )
    best_iou, best_epoch, best_state = -1.0, 0, None
    curves: list[dict] = []
    val_seen: set[str] = set()
    train_seen: set[str] = set()
    if steps is not None and steps < 1:
        raise ConfigError(f"segment.train: steps must be >= 1, got {steps}")
    epochs = params.epochs if steps is None else -(-steps // len(loader))
    # the step after which the lr drops: after epoch lr_change_epoch, or the same fraction of `steps`
    drop_at = (params.lr_change_epoch * len(loader) if steps is None
               else round(steps * params.lr_change_epoch / params.epochs))  # fmt: skip
    done = 0
    # at most every 30 s (issue 17); the grid prints each training's end
    line = Progress("segment training", epochs, "epochs", final=False)
    for epoch in range(1, epochs + 1):
        model.train()
        lr = opt.param_groups[0]["lr"]
        total, n = 0.0, 0
        for x, y, idx in loader:
            if steps is not None and done == steps:
                break
            x, y = to_memory_format(x.to(device), params.memory_format), y.to(device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            done += 1
            total += float(loss.detach()) * len(x)
            n += len(x)
            train_seen.update(train_ds.pairs[int(i)].id for i in idx)
            if done == drop_at:  # after the epoch (or step), as the authors
                for g in opt.param_groups:
                    g["lr"] = params.lr_after
        row = {"epoch": epoch, "steps": done, "lr": lr, "train_loss": total / max(n, 1)}
        if epoch % params.val_every == 0 or epoch == epochs:
            val = evaluate(model, val_ds, params.val_batch_size, device, loss_fn, params.memory_format)
            val_seen.update(val["ids"])
            iou = val["scores"]["per_image"]["iou"]
            improved = iou > best_iou  # strict, as `max_score < valid_logs['iou_score']`
            if improved:
                best_iou, best_epoch = iou, epoch
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            row.update({"val_loss": val["loss"],
                        **{f"val_{mode}_{k}": v for mode, d in val["scores"].items() for k, v in d.items()}})  # fmt: skip
        row["best_epoch"] = best_epoch
        curves.append(row)
        if on_epoch is not None:
            on_epoch(row)
        line.advance(note=f"val IoU {best_iou:.4f} (best)")
    model.load_state_dict(copy.deepcopy(best_state))
    return TrainResult(best_epoch, best_iou, curves, best_state, val_seen, train_seen)

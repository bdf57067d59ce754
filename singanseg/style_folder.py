"""Style transfer of whole folders, and the `singanseg stylize` command line.

One concept per module: `singanseg.style` is the paper's style transfer of an image (or a
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
    list_pairs,
    read_image,
    write_png,
    write_text,
)
from singanseg.style import (
    RATIO_PRESETS,
    Backbone,
    StyleConfig,
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
    folder = style_dir / "images" if (style_dir / "images").is_dir() else style_dir
    if not folder.is_dir():
        raise InputError(f"{style_dir}: style folder not found")
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    }


def stylize_folder(
    content_dir: str | Path,
    style_dir: str | Path,
    out_dir: str | Path,
    config: StyleConfig,
    device: str = "cpu",
    network: Backbone | nn.Module | None = None,
    batch_size: int = 4,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Stylise every `images/<srcid>_<n>` of `content_dir` with style `<style_dir>/<srcid>.*`.

    Writes `out_dir/images/<id>.png`, `out_dir/masks/` (the content masks, byte-identical)
    and `out_dir/provenance.json`, atomically. Returns the provenance record.
    """
    content_dir, style_dir, out_dir = Path(content_dir), Path(style_dir), Path(out_dir)
    if batch_size < 1:
        raise ConfigError(f"batch_size: must be >= 1, got {batch_size}")
    pairs = list_pairs(content_dir)
    styles = _style_index(style_dir)
    for p in pairs:  # fail before any compute when a style image is missing
        try:
            style_source_id(p.id)
        except InputError as e:
            raise InputError(f"{p.image}: {e}") from None
        if style_source_id(p.id) not in styles:
            raise InputError(
                f"{p.image}: no style image '{style_source_id(p.id)}.*' in {style_dir}"
            )
    backbone = as_backbone(network, config, device)
    sizes: dict[tuple[int, int], list] = {}
    for p in pairs:
        with Image.open(p.image) as im:
            sizes.setdefault((im.height, im.width), []).append(p)
    start, final_losses = time.perf_counter(), []
    with atomic_dir(out_dir) as tmp:
        for hw, group in sizes.items():
            for b in range(0, len(group), batch_size):
                chunk = group[b : b + batch_size]
                c = torch.stack([_to_tensor(read_image(p.image), str(p.image)) for p in chunk])
                s = torch.stack(
                    [
                        _to_tensor(
                            _resize(read_image(styles[style_source_id(p.id)]), hw), str(p.image)
                        )
                        for p in chunk
                    ]
                )
                res = transfer_style_tensors(c, s, backbone, config)
                for p, img in zip(chunk, to_uint8(res.images, config.quantize), strict=True):
                    write_png(tmp / "images" / f"{p.id}.png", img)
                    (tmp / "masks").mkdir(exist_ok=True)
                    shutil.copyfile(
                        p.mask, tmp / "masks" / p.mask.name
                    )  # mask unchanged (paper.md s2)
                if res.losses:
                    final_losses.append(res.losses[-1] / len(chunk))
                if log:
                    log(
                        f"stylize: {min(b + batch_size, len(group))}/{len(group)} at {hw[1]}x{hw[0]}"
                    )
        record = {
            **backbone.provenance,
            "config": to_mapping(config),
            "content_dir": str(content_dir),
            "style_dir": str(style_dir),
            "images": len(pairs),
            "seconds": round(time.perf_counter() - start, 3),
            "mean_final_loss": float(np.mean(final_losses)) if final_losses else None,
        }
        write_text(tmp / "provenance.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


# ---------------------------------------------------------------- CLI

# the params keys singanseg/vgg.py's errors name, as this command's flags (issue 18 s4)
CLI_FLAGS = {"set `weights:`": "pass `--weights`", "set `weights: random`": "pass `--weights random`"}


def add_stylize_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register `singanseg stylize CONTENT STYLE --out OUT ...`; the handler is `args.func`."""
    p = subparsers.add_parser(
        "stylize",
        help="neural style transfer of generated images (SinGAN-Seg step 2)",
        description="CONTENT/STYLE are image files, or folders: CONTENT holds images/ and masks/ "
        "with ids <srcid>_<n>, STYLE holds <srcid>.png (paper.md section 2).",
    )
    p.add_argument("content", help="generated image file, or a folder with images/ and masks/")
    p.add_argument("style", help="real image file, or a folder of real images")
    p.add_argument("--out", required=True, help="output image file (.png) or output folder")
    p.add_argument(
        "--ratio",
        choices=sorted(RATIO_PRESETS),
        help="content:style preset (overrides the weights)",
    )
    p.add_argument("--content-weight", type=float, default=None)
    p.add_argument("--style-weight", type=float, default=None)
    p.add_argument(
        "--steps", type=int, default=None, help="Adam steps (the authors' num_epochs; 1000)"
    )
    p.add_argument(
        "--weights", default=None, help="imagenet (default), random, or a state dict file"
    )
    p.add_argument("--vgg", choices=sorted(VGG_MODELS), default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=4)
    p.set_defaults(func=run_stylize_command)
    return p


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
                log=lambda m: print(m, file=sys.stderr),
            )
            print(f"wrote {record['images']} image(s) to {out} (weights: {record['weights']})")
            return 0
        if style.is_dir():
            raise InputError(
                f"{style}: a folder, but CONTENT {content} is a file (give both as files or both as folders)"
            )
        image, prov = stylize(read_image(content), read_image(style), config, args.device)
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
        print(f"wrote {out} (weights: {prov['weights']})")
        return 0
    except UserError as e:  # InputError, ConfigError, StyleWeightsError: a clear message, no trace
        print(f"singanseg stylize: error: {message_for_cli(e, CLI_FLAGS)}", file=sys.stderr)
        return 2

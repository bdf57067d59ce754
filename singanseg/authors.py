"""Import the authors' released SinGAN-Seg checkpoints without running code from them (issue 24).

The authors' training loop (singan_seg_polyp/SinGAN/training.py::train) saves each model as
four whole-object pickles: `Gs.pth` (a list of `SinGAN.models.GeneratorConcatSkip2CleanAdd`
modules), `Zs.pth` (z_opt per scale; bool zeros above the coarsest), `reals.pth` (the
pyramid, coarsest first) and `NoiseAmp.pth` (1, then 0-d tensors). Unpickling them the
usual way imports and calls whatever the file names.

Here a file is read in two steps, both of which refuse anything outside ALLOWED:
1. its pickle's opcodes are scanned (pickletools, nothing executed) and every global it
   names must be on the allow-list; the first one that is not is refused, naming it and
   the file;
2. it is then loaded with `torch.load(weights_only=True)` (torch's restricted unpickler)
   where the SinGAN and torch.nn classes are mapped to inert stand-ins (`Inert`) that only
   receive their pickled state. No module of theirs or ours is constructed from the file.

What the pickles do not say as such (channels, kernel, padding, layers, widths, scale
factor, min_size) is read from the tensors' shapes and the lists, checked against each
other and against our networks' state dicts (singanseg.networks builds the same layer
names), and the model is written as one of our folders: the layout `singanseg train`
writes (singanseg.saved_model), with no critic and no random state, and a `source` record
in model.json: the authors' id, each file's sha256, the importer's version.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import pickle
import pickletools
import shutil
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from singanseg.ckpt import CheckpointError, _own_version, save_state
from singanseg.config import SinGANConfig
from singanseg.imresize import output_length
from singanseg.networks import GeneratorConcatSkip2CleanAdd
from singanseg.saved_model import (
    MODEL_JSON,
    NOISE_AMP_MAX,
    is_imported,
    read_model_json,
    scale_name,
    write_model_json,
)
from singanseg.typed import to_mapping

if TYPE_CHECKING:
    from singanseg.io import Pair

log = logging.getLogger(__name__)

FILES = ("Gs.pth", "Zs.pth", "reals.pth", "NoiseAmp.pth")
SOURCE_KIND = "authors"


class Inert:
    """Stand-in for a pickled module class: receives the pickled `__dict__`, has no behaviour.

    torch's weights-only unpickler creates it with `__new__` and fills `__dict__` (it has
    no `__setstate__`); `qualname` says which class of the file it stands for.
    """

    qualname = ""

    def __repr__(self) -> str:
        return f"<inert {self.qualname}>"


def _stand_in(qualname: str) -> type:
    return type(qualname.rsplit(".", 1)[1], (Inert,), {"qualname": qualname, "__module__": __name__})


# The classes of the authors' generator files, under both module paths their code is run
# from (the repository's `SinGAN.models`, the package's `singan_seg_polyp.SinGAN.models`).
SINGAN_CLASSES = ("GeneratorConcatSkip2CleanAdd", "ConvBlock")
SINGAN_MODULES = ("SinGAN.models", "singan_seg_polyp.SinGAN.models")
TORCH_MODULE_CLASSES = (
    "torch.nn.modules.conv.Conv2d",
    "torch.nn.modules.batchnorm.BatchNorm2d",
    "torch.nn.modules.activation.LeakyReLU",
    "torch.nn.modules.activation.Tanh",
    "torch.nn.modules.container.Sequential",
)
STAND_INS: dict[str, type] = {
    q: _stand_in(q) for q in (*(f"{m}.{c}" for m in SINGAN_MODULES for c in SINGAN_CLASSES), *TORCH_MODULE_CLASSES)
}
# Data globals: torch's tensor rebuild functions and storage types, the containers of a
# module's state. torch's weights-only unpickler also allows each of them by default.
DATA_GLOBALS = (
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter",
    "torch.FloatStorage",
    "torch.DoubleStorage",
    "torch.HalfStorage",
    "torch.LongStorage",
    "torch.BoolStorage",
    "collections.OrderedDict",
    "builtins.set",
    "__builtin__.set",  # protocol 2 spells builtins as Python 2 did
)
ALLOWED = frozenset((*STAND_INS, *DATA_GLOBALS))

# Opcodes that push the strings a STACK_GLOBAL names; INST names its global like GLOBAL and
# is checked alike. OBJ (a class from the stack) and EXT* (copyreg's extension registry)
# reach a global by other means: refused, torch never writes them.
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_REFUSED_OPS = {"EXT1", "EXT2", "EXT4", "OBJ"}


class RefusedPickleError(CheckpointError):
    """A checkpoint names a global outside the allow-list; nothing of it was run."""


def pickle_globals(data: bytes, where: str) -> list[str]:
    """Every global (`module.name`) a pickle names, from its opcodes; nothing is executed."""
    found: list[str] = []
    memo: dict[int, Any] = {}
    stack: list[Any] = []  # only the values that matter here: strings (others are None)
    try:
        for op, arg, _pos in pickletools.genops(data):
            name = op.name
            if name in _STRING_OPS:
                stack.append(arg.decode("latin-1") if isinstance(arg, bytes) else arg)
            elif name == "GLOBAL" or name == "INST":
                module, _, attr = str(arg).partition(" ")
                found.append(f"{module}.{attr}")
                stack.append(None)
            elif name == "STACK_GLOBAL":
                if len(stack) < 2 or not all(isinstance(s, str) for s in stack[-2:]):
                    raise RefusedPickleError(f"{where}: refused: a STACK_GLOBAL whose name is not a plain string")
                found.append(f"{stack[-2]}.{stack[-1]}")
                del stack[-2:]
                stack.append(None)
            elif name in _REFUSED_OPS:
                raise RefusedPickleError(f"{where}: refused: pickle opcode {name} (not written by torch.save)")
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[int(arg)] = stack[-1] if stack else None
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1] if stack else None
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                stack.append(memo.get(int(arg)))
            else:
                stack.append(None)  # the exact stack does not matter: strings feed STACK_GLOBAL only
    except (ValueError, EOFError) as e:  # pickletools on a truncated or garbled stream
        raise CheckpointError(f"{where}: not a readable pickle ({e}); the file is truncated or corrupted") from None
    return found


def _pickle_of(raw: bytes, where: str) -> bytes:
    """The data.pkl of a torch zip checkpoint (the format torch.save writes since 1.6)."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            # torch reads <archive>/data.pkl, <archive> being the one top-level folder: the
            # scanned pickle must be the one it loads
            names = [n for n in zf.namelist() if n.endswith("data.pkl")]
            if len(names) != 1 or names[0].count("/") != 1 or not names[0].endswith("/data.pkl"):
                raise CheckpointError(f"{where}: not a torch checkpoint (no single data.pkl inside)")
            return zf.read(names[0])
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise CheckpointError(
            f"{where}: not a torch zip checkpoint ({e}); the file is truncated, corrupted, or in torch's "
            f"pre-1.6 format (re-save it with torch >= 1.6)"
        ) from None


def safe_load(raw: bytes, where: str) -> Any:
    """Unpickle a torch checkpoint's bytes under ALLOWED (see the module docstring)."""
    for qualname in pickle_globals(_pickle_of(raw, where), where):
        if qualname not in ALLOWED:
            raise RefusedPickleError(
                f"{where}: refused: the pickle names global {qualname!r}, which is not on the importer's allow-list "
                f"(a SinGAN-Seg checkpoint needs only the SinGAN generator classes, torch.nn layers and tensors); "
                f"nothing of it was run"
            )
    try:
        with torch.serialization.safe_globals([(cls, q) for q, cls in STAND_INS.items()]):
            return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RefusedPickleError(f"{where}: refused by torch's weights-only unpickler ({first})") from None
    except (RuntimeError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{where}: unreadable torch checkpoint ({type(e).__name__}: {e}); truncated or corrupted") from None


# ---------------------------------------------------------------------------------------
# From inert modules to state dicts, checked


def _is(obj: Any, short: str) -> bool:
    return isinstance(obj, Inert) and obj.qualname.rsplit(".", 1)[1] == short


def _children(obj: Inert, names: list[str], where: str) -> dict[str, Any]:
    mods = obj.__dict__.get("_modules")
    if not isinstance(mods, dict) or list(mods) != names:
        got = list(mods) if isinstance(mods, dict) else mods
        raise CheckpointError(f"{where}: expected the sub-modules {names}, found {got}")
    return mods


def _tensors_of(obj: Inert, where: str) -> dict[str, torch.Tensor]:
    out = {}
    for kind in ("_parameters", "_buffers"):
        entries = obj.__dict__.get(kind, {})
        if not isinstance(entries, dict):
            raise CheckpointError(f"{where}: {kind} is not a dict")
        for k, v in entries.items():
            if v is None:
                continue
            if not isinstance(v, torch.Tensor):
                raise CheckpointError(f"{where}.{k}: expected a tensor, got {type(v).__name__}")
            out[k] = v.detach().clone()
    return out


def _conv(obj: Any, where: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not _is(obj, "Conv2d"):
        raise CheckpointError(f"{where}: expected a Conv2d, found {obj!r}")
    d, t = obj.__dict__, _tensors_of(obj, where)
    w, b = t.get("weight"), t.get("bias")
    if w is None or b is None or w.ndim != 4 or b.shape != (w.shape[0],):
        raise CheckpointError(f"{where}: weight/bias missing or of a wrong shape")
    k = w.shape[2]
    expected = {
        "in_channels": w.shape[1],
        "out_channels": w.shape[0],
        "kernel_size": (k, k),
        "stride": (1, 1),
        "dilation": (1, 1),
        "groups": 1,
        "padding_mode": "zeros",
        "transposed": False,
    }
    for key, want in expected.items():
        got = tuple(d[key]) if isinstance(d.get(key), (tuple, list)) else d.get(key)
        if got != want:
            raise CheckpointError(f"{where}.{key}: {got!r} does not match its weight ({want!r} expected)")
    pad = tuple(d.get("padding", ()))
    if len(pad) != 2 or pad[0] != pad[1] or not isinstance(pad[0], int):
        raise CheckpointError(f"{where}.padding: expected a square integer padding, got {d.get('padding')!r}")
    return t, {"in": int(w.shape[1]), "out": int(w.shape[0]), "ker": int(k), "padd": int(pad[0])}


def _conv_block(obj: Any, where: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not _is(obj, "ConvBlock"):
        raise CheckpointError(f"{where}: expected a SinGAN ConvBlock, found {obj!r}")
    mods = _children(obj, ["conv", "norm", "LeakyRelu"], where)
    t, shape = _conv(mods["conv"], f"{where}.conv")
    norm, act = mods["norm"], mods["LeakyRelu"]
    if not _is(norm, "BatchNorm2d"):
        raise CheckpointError(f"{where}.norm: expected a BatchNorm2d, found {norm!r}")
    nd = norm.__dict__
    for key, want in (("num_features", shape["out"]), ("eps", 1e-5), ("affine", True), ("track_running_stats", True)):
        if nd.get(key) != want:
            raise CheckpointError(f"{where}.norm.{key}: {nd.get(key)!r}, expected {want!r} (models.py::ConvBlock)")
    nt = _tensors_of(norm, f"{where}.norm")
    if set(nt) != {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}:
        raise CheckpointError(f"{where}.norm: tensors {sorted(nt)} are not a BatchNorm2d's")
    if not _is(act, "LeakyReLU") or act.__dict__.get("negative_slope") != 0.2:
        raise CheckpointError(f"{where}.LeakyRelu: expected LeakyReLU(0.2), found {act!r}")
    out = {f"conv.{k}": v for k, v in t.items()}
    out.update({f"norm.{k}": v for k, v in nt.items()})
    return out, shape


def generator_state(obj: Any, where: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """State dict (our layer names = theirs) and architecture of one pickled generator."""
    if not _is(obj, "GeneratorConcatSkip2CleanAdd"):
        raise CheckpointError(f"{where}: expected a SinGAN GeneratorConcatSkip2CleanAdd, found {obj!r}")
    for hooks in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks"):
        if obj.__dict__.get(hooks):
            raise CheckpointError(f"{where}: the module carries {hooks}; refused")
    mods = _children(obj, ["head", "body", "tail"], where)
    state: dict[str, torch.Tensor] = {}
    head, arch = _conv_block(mods["head"], f"{where}.head")
    state.update({f"head.{k}": v for k, v in head.items()})
    body = mods["body"]
    if not _is(body, "Sequential"):
        raise CheckpointError(f"{where}.body: expected a Sequential, found {body!r}")
    n_blocks = len(body.__dict__.get("_modules", {}))
    blocks = _children(body, [f"block{i + 1}" for i in range(n_blocks)], f"{where}.body")
    widths = [arch["out"]]
    for name, block in blocks.items():
        t, s = _conv_block(block, f"{where}.body.{name}")
        if (s["ker"], s["padd"]) != (arch["ker"], arch["padd"]):
            raise CheckpointError(f"{where}.body.{name}: kernel/padding {s['ker']}/{s['padd']} differ from the head's")
        widths.append(s["out"])
        state.update({f"body.{name}.{k}": v for k, v in t.items()})
    tail = mods["tail"]
    if not _is(tail, "Sequential"):
        raise CheckpointError(f"{where}.tail: expected a Sequential, found {tail!r}")
    tmods = _children(tail, ["0", "1"], f"{where}.tail")
    t, s = _conv(tmods["0"], f"{where}.tail.0")
    if not _is(tmods["1"], "Tanh"):
        raise CheckpointError(f"{where}.tail.1: expected a Tanh, found {tmods['1']!r}")
    if s["out"] != arch["in"]:
        raise CheckpointError(f"{where}.tail.0: {s['out']} output channels, but the head takes {arch['in']}")
    state.update({f"tail.0.{k}": v for k, v in t.items()})
    arch.update(num_layer=n_blocks + 2, widths=widths)
    return state, arch


# ---------------------------------------------------------------------------------------
# One checkpoint folder


@dataclass(frozen=True)
class AuthorsCheckpoint:
    """One of the authors' models, read and checked (tensors on the CPU)."""

    id: str
    where: str  # the folder (or zip member prefix) it came from, for messages
    config: SinGANConfig
    scale_factor: float
    Gs: list[dict[str, torch.Tensor]]
    Zs: list[torch.Tensor]
    reals: list[torch.Tensor]
    noise_amps: list[float]
    sha256: dict[str, str]


def _list_of(value: Any, where: str) -> list:
    if not isinstance(value, list) or not value:
        raise CheckpointError(f"{where}: expected a non-empty list, got {type(value).__name__}")
    return value


def _pyramid(reals: list[torch.Tensor], default_min_size: int, where: str) -> tuple[float, int]:
    """(scale_factor, min_size) that rebuild the reals' shapes (functions.py::adjust_scales2image).

    The authors' sampler recomputes scale_factor from the real image with its default
    min_size (25): pow(min_size / min(h, w), 1 / stop_scale) with (h, w) the finest real.
    That min_size is taken when it reproduces every shape, else the smallest one that does.
    """
    stop = len(reals) - 1
    if stop < 1:
        raise CheckpointError(f"{where}: a one-scale pyramid; the authors' code never writes one")
    h, w = reals[-1].shape[2:]
    shapes = [tuple(r.shape[2:]) for r in reals]

    def shapes_for(m: int) -> tuple[float, list[tuple[int, int]]]:
        sf = math.pow(m / min(h, w), 1 / stop)
        s = [(output_length(h, math.pow(sf, stop - i)), output_length(w, math.pow(sf, stop - i))) for i in range(stop + 1)]
        return sf, s

    for m in (default_min_size, *range(1, min(h, w) + 1)):
        sf, s = shapes_for(m)
        if s == shapes:
            return sf, m
    raise CheckpointError(f"{where}: the reals' shapes {shapes} are not a SinGAN pyramid (no min_size rebuilds them)")


def _noise_amps(values: list, where: str) -> list[float]:
    out = []
    for n, v in enumerate(values):
        if isinstance(v, torch.Tensor) and v.numel() == 1 and v.is_floating_point():
            v = float(v.reshape(()).item())
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            v = float(v)
        else:
            raise CheckpointError(f"{where}[{n}]: expected a number, got {type(v).__name__}")
        if not (math.isfinite(v) and 0.0 <= v <= NOISE_AMP_MAX):
            raise CheckpointError(f"{where}[{n}]: noise amplitude {v!r} outside [0, {NOISE_AMP_MAX:g}]")
        out.append(v)
    return out


def read_checkpoint(files: dict[str, bytes], checkpoint_id: str, where: str, base: SinGANConfig | None = None) -> AuthorsCheckpoint:
    """Check the four files' contents against each other; `base`: the config the release was
    trained with where the files do not say (default: the authors' config.py, = ours)."""
    base = base or SinGANConfig()
    missing = [f for f in FILES if f not in files]
    if missing:
        raise CheckpointError(f"{where}: {', '.join(missing)} missing (an authors' checkpoint has {', '.join(FILES)})")
    loaded = {f: safe_load(files[f], f"{where}/{f}") for f in FILES}
    Gs = _list_of(loaded["Gs.pth"], f"{where}/Gs.pth")
    Zs = _list_of(loaded["Zs.pth"], f"{where}/Zs.pth")
    reals = _list_of(loaded["reals.pth"], f"{where}/reals.pth")
    amps = _noise_amps(_list_of(loaded["NoiseAmp.pth"], f"{where}/NoiseAmp.pth"), f"{where}/NoiseAmp.pth")
    counts = {"Gs.pth": len(Gs), "Zs.pth": len(Zs), "reals.pth": len(reals), "NoiseAmp.pth": len(amps)}
    if len(set(counts.values())) != 1:
        raise CheckpointError(f"{where}: the files hold different numbers of scales {counts}; they are not one model")
    for n, r in enumerate(reals):
        if not (isinstance(r, torch.Tensor) and r.ndim == 4 and r.shape[:2] == (1, 4) and r.is_floating_point()):
            raise CheckpointError(f"{where}/reals.pth[{n}]: expected a float (1, 4, h, w) tensor, got {getattr(r, 'shape', r)!r}")
        if not torch.isfinite(r).all() or r.abs().max() > 1 + 1e-6:
            raise CheckpointError(f"{where}/reals.pth[{n}]: values outside [-1, 1]")
    reals = [r.float().contiguous() for r in reals]
    states, archs = zip(*(generator_state(G, f"{where}/Gs.pth[{n}]") for n, G in enumerate(Gs)), strict=True)
    a0 = archs[0]
    for n, a in enumerate(archs):
        for key in ("in", "ker", "padd", "num_layer"):
            if a[key] != a0[key]:
                raise CheckpointError(f"{where}/Gs.pth[{n}]: {key} {a[key]} differs from scale 0's {a0[key]}")
    if a0["in"] != 4:
        raise CheckpointError(f"{where}/Gs.pth[0]: {a0['in']} input channels; SinGAN-Seg generators take 4 (RGB + mask)")
    sf, min_size = _pyramid(reals, base.min_size, f"{where}/reals.pth")
    cfg = replace(
        base,
        nc_im=4,
        nc_z=4,
        nfc=a0["widths"][0],
        min_nfc=min(a0["widths"][1:] or a0["widths"]),
        ker_size=a0["ker"],
        num_layer=a0["num_layer"],
        padd_size=a0["padd"],
        min_size=min_size,
        max_size=max(base.max_size, *reals[-1].shape[2:]),
        # the authors' arithmetic: MATLAB-style resize through uint8 and torch's Adam loop
        resize="reference",
        adam_impl="loop",
    )
    cfg.validate(f"{where}: inferred config")
    for n, (state, real, z) in enumerate(zip(states, reals, Zs, strict=True)):
        ours = GeneratorConcatSkip2CleanAdd(cfg, *cfg.nfc_at(n)).state_dict()
        shapes = {k: tuple(v.shape) for k, v in ours.items()}
        got = {k: tuple(v.shape) for k, v in state.items()}
        if shapes != got:
            diff = sorted(k for k in set(shapes) | set(got) if shapes.get(k) != got.get(k))[:3]
            raise CheckpointError(
                f"{where}/Gs.pth[{n}]: layer shapes do not follow the SinGAN widths (nfc {cfg.nfc} doubled every "
                f"{cfg.nfc_growth_every} scales up to {cfg.nfc_max}): {', '.join(f'{k} {got.get(k)} vs {shapes.get(k)}' for k in diff)}"
            )
        h, w = real.shape[2:]
        p = cfg.pad
        if not (isinstance(z, torch.Tensor) and tuple(z.shape) == (1, cfg.nc_z, h + 2 * p, w + 2 * p)):
            raise CheckpointError(
                f"{where}/Zs.pth[{n}]: shape {tuple(getattr(z, 'shape', ()))} does not match reals.pth[{n}] "
                f"{tuple(real.shape)} padded by {p}"
            )
    Zs = [z.float().contiguous() for z in Zs]
    sha = {f: hashlib.sha256(files[f]).hexdigest() for f in FILES}
    return AuthorsCheckpoint(checkpoint_id, where, cfg, sf, list(states), Zs, reals, amps, sha)


def _source_record(ck: AuthorsCheckpoint) -> dict[str, Any]:
    return {
        "kind": SOURCE_KIND,
        "id": ck.id,
        "from": ck.where,
        "sha256": ck.sha256,
        "importer": f"singanseg {_own_version()} (singanseg.authors)",
        "not_in_the_files": "critic, optimiser and random states, seed, input image, training losses; "
        "training hyper-parameters are the authors' defaults (config.py)",
    }


def write_model(ck: AuthorsCheckpoint, out: str | os.PathLike) -> Path:
    """Write `ck` as one of our model folders at `out` (atomically: a temp folder, renamed)."""
    out = Path(out)
    if out.exists():
        if (out / MODEL_JSON).is_file():
            meta = read_model_json(out)
            src = meta.get("source") or {}
            if src.get("kind") == SOURCE_KIND and src.get("sha256") == ck.sha256:
                log.info("%s: already imported from the same files", out)
                return out
        raise CheckpointError(f"{out}: exists and is not this import; choose another --out or delete it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.import-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        shapes = [list(r.shape[2:]) for r in ck.reals]
        for n, (G, z, real, amp) in enumerate(zip(ck.Gs, ck.Zs, ck.reals, ck.noise_amps, strict=True)):
            tensors = {**{f"G.{k}": v for k, v in G.items()}, "z_opt": z, "real": real}
            save_state(tmp, tensors, {"scale": n, "noise_amp": amp, "shape": shapes[n], "losses": {}}, name=scale_name(n))
        write_model_json(
            tmp,
            {
                "config": to_mapping(ck.config),
                "seed": None,
                "input_sha256": None,
                "input_shape": None,
                "pyramid": {
                    "scale1": None,
                    "stop_scale": len(ck.reals) - 1,
                    "scale_factor": ck.scale_factor,
                    "num_scales": None,
                    "shapes": shapes,
                },
                "z_opt": "tensor 'z_opt' of scale_<n>.safetensors (padded; zeros above the coarsest scale)",
                "finished_scales": len(ck.reals),
                "complete": True,
                "noise_amp": ck.noise_amps,
                "losses": [{} for _ in ck.reals],
                "source": _source_record(ck),
            },
        )
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# ---------------------------------------------------------------------------------------
# Sources: one folder, a folder of folders, a zip


def _folder_files(folder: Path) -> dict[str, bytes]:
    out = {}
    for f in FILES:
        path = folder / f
        if path.is_file():
            out[f] = path.read_bytes()
    return out


def find_checkpoints(src: str | os.PathLike) -> list[tuple[str, str, dict[str, bytes] | None]]:
    """[(id, where, files or None to read later)] of SRC: one checkpoint folder (its name is
    the id), a folder of them, or a zip of the release (ids = the folders holding Gs.pth)."""
    src = Path(src)
    if src.is_file():
        return [(i, w, None) for i, w in _zip_members(src)]
    if not src.is_dir():
        raise CheckpointError(f"{src}: not found (give a checkpoint folder, a folder of them, or a release zip)")
    if (src / "Gs.pth").is_file():
        return [(src.resolve().name, str(src), None)]
    found = sorted(p.parent for p in src.glob("*/Gs.pth"))
    if not found:
        found = sorted(p.parent for p in src.rglob("Gs.pth"))
    if not found:
        raise CheckpointError(f"{src}: no Gs.pth in it or in its sub-folders (not an authors' checkpoint folder)")
    return [(p.name, str(p), None) for p in found]


def _zip_members(path: Path) -> list[tuple[str, str]]:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{path}: not a readable zip ({e})") from None
    parents = sorted({n[: -len("/Gs.pth")] for n in names if n.endswith("/Gs.pth")})
    if not parents:
        raise CheckpointError(f"{path}: no <id>/Gs.pth inside (not an authors' release zip)")
    return [(p.rsplit("/", 1)[-1], f"{path}!{p}") for p in parents]


def _read_files(where: str) -> dict[str, bytes]:
    if "!" in where and Path(where.split("!", 1)[0]).is_file():
        zpath, prefix = where.split("!", 1)
        with zipfile.ZipFile(zpath) as zf:
            present = set(zf.namelist())
            return {f: zf.read(f"{prefix}/{f}") for f in FILES if f"{prefix}/{f}" in present}
    return _folder_files(Path(where))


def import_authors(src: str | os.PathLike, out: str | os.PathLike, base: SinGANConfig | None = None) -> list[Path]:
    """Import every checkpoint of SRC into `out/<id>` (a model folder each, as `train` writes).

    Refuses the first bad checkpoint, naming it; the models imported before it are kept, and
    a rerun skips them (an `out/<id>` imported from the same files is left as it is)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out}: exists and is not a folder; choose another --out")
    found = find_checkpoints(src)
    written = []
    for checkpoint_id, where, _ in found:
        ck = read_checkpoint(_read_files(where), checkpoint_id, where, base)
        written.append(write_model(ck, out / checkpoint_id))
    return written


def describe(meta: dict[str, Any]) -> str:
    src = meta.get("source") or {}
    return f"imported from the authors' checkpoint {src.get('id')!r} ({src.get('from')})"


# The coarsest real of the pair an imported model was trained on, against ours of the same
# pair: the same RGBA input gives the same reals bit for bit (`resize: reference`, tested in
# test_singan_equivalence); a JPEG decoded by another library may differ by a level or two.
INPUT_TOLERANCE = 4 / 127.5  # mean |difference| in [-1, 1], about two uint8 levels


def input_mismatch(folder: str | os.PathLike, rgba, cfg: SinGANConfig) -> str | None:
    """None when the imported model at `folder` was trained on `rgba` (its coarsest real is
    this input's at the coarsest scale), else why not (the shapes or the mean difference)."""
    from singanseg.ckpt import load_state

    return _coarsest_mismatch(load_state(folder, scale_name(0))[0]["real"], rgba, cfg, f"{folder}: input")


def _coarsest_mismatch(stored: torch.Tensor, rgba, cfg: SinGANConfig, where: str) -> str | None:
    from singanseg.pyramid import build_pyramid

    ours = build_pyramid(rgba, cfg, where)[0][0]
    if tuple(stored.shape) != tuple(ours.shape):
        return f"its coarsest real is {tuple(stored.shape[2:])}, this input's {tuple(ours.shape[2:])}"
    diff = float((stored - ours).abs().mean())
    if diff > INPUT_TOLERANCE:
        return f"its coarsest real differs from this input's by {diff:.3f} on average (more than {INPUT_TOLERANCE:.3f})"
    return None


def authors_numbering(data_dir: str | os.PathLike) -> list[tuple[int, Pair]]:
    """The pairs of `data_dir` (images/, masks/) with the authors' id of each: (n, pair), n = 1...N.

    The authors' ids 1...N are the positions of the Kvasir-SEG names in natural-sort order
    (paper.md s3, verified; singanseg.io.natural_sorted, the order list_pairs gives). One
    function for every place that maps their ids to ours (their checkpoints, here; their
    released synthetic pairs, pipeline/segment/external.py), so the mapping cannot drift.
    """
    from singanseg.io import list_pairs

    return list(enumerate(list_pairs(data_dir), 1))


def import_for_data(
    src: str | os.PathLike,
    data_dir: str | os.PathLike,
    out: str | os.PathLike,
    base: SinGANConfig | None = None,
    only: set[str] | None = None,
) -> dict[str, Path]:
    """Import the authors' model of every pair of `data_dir` (images/, masks/) into `out/<pair id>`.

    The authors' ids 1...N are the positions of the Kvasir-SEG names in natural-sort order
    (paper.md s3, verified; singanseg.io.natural_sorted, the order list_pairs gives). Every
    pair must have its model, and each model's coarsest real must be its pair's at the
    coarsest scale: a mismatch means the ids are mapped wrong and is refused, naming both
    (the models imported before it matched their pairs and are kept; a rerun leaves them).
    `only`: import these pair ids (a shard); the ids are still positions in the whole folder.
    """
    from singanseg.api import read_inputs

    numbered = [(n, p) for n, p in authors_numbering(data_dir) if only is None or p.id in only]
    pairs = [p for _, p in numbered]
    found = {i: w for i, w, _ in find_checkpoints(src)}
    missing = [f"{p.id} (authors' id {n})" for n, p in numbered if str(n) not in found]
    if missing:
        raise CheckpointError(
            f"{src}: no checkpoint for {len(missing)} of the {len(pairs)} pairs of {data_dir}: {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''} (the authors' ids are the natural-sort positions of the names)"
        )
    written = {}
    for n, p in numbered:  # one model in memory at a time (1000 of them are ~5 GB)
        ck = read_checkpoint(_read_files(found[str(n)]), str(n), found[str(n)], base)
        rgba, _ = read_inputs(p.image, p.mask, ck.config.max_input_pixels)
        problem = _coarsest_mismatch(ck.reals[0], rgba, ck.config, f"{p.image}")
        if problem is not None:
            raise CheckpointError(
                f"{found[str(n)]}: the authors' model {n} is not the model of {p.image} ({problem}); "
                f"the ids are mapped wrong (authors' id n = the n-th name in natural-sort order)"
            )
        written[p.id] = write_model(ck, Path(out) / p.id)  # the ones before a refusal matched
    return written


__all__ = [
    "authors_numbering",
    "import_for_data",
    "input_mismatch",
    "ALLOWED",
    "AuthorsCheckpoint",
    "Inert",
    "RefusedPickleError",
    "describe",
    "find_checkpoints",
    "import_authors",
    "is_imported",
    "pickle_globals",
    "read_checkpoint",
    "safe_load",
    "write_model",
]


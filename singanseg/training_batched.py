"""K independent SinGAN-Seg models laid out as ONE network K times wider (issue 8, items 1 and 3).

One SinGAN is batch-size-1 work on tiny convolutions, latency-bound rather than FLOP-bound
(anchors.md s2.1: tamarott/SinGAN#23, #92). K models whose pyramids have the same shapes
are trained together (singanseg.training, the one training loop) as one set of networks:

- every Conv2d becomes a grouped convolution (groups=K) whose weight is the K models'
  weights stacked along the output channels; activations are laid out (1, K*C, H, W),
  model k owning channels k*C..(k+1)*C, so groups never mix models;
- BatchNorm over K*C channels with batch 1 is each model's batch-1 BatchNorm (paper.md s1:
  the statistics are per channel); LeakyReLU, Tanh, the residual crop and the resize are
  per channel.

At K = 1 the network is the plain one (no widening). Per-model state lives outside the
batch: at every scale the stacked nets are built from the per-model weights and split back
afterwards, so a model that fails to save drops out at the next scale and the others go on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from singanseg.config import SinGANConfig


def _widen(module: nn.Module, k: int) -> nn.Module:
    """Make every Conv2d grouped over k models and every BatchNorm2d k times wider, in place."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d):
            wide = nn.Conv2d(
                k * child.in_channels, k * child.out_channels, child.kernel_size, child.stride,
                child.padding, groups=k * child.groups, bias=child.bias is not None,
            )  # fmt: skip
            setattr(module, name, wide)
        elif isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.BatchNorm2d(k * child.num_features, child.eps, child.momentum))
        else:
            _widen(child, k)
    return module


def stack_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """K state dicts of one architecture -> the grouped network's (concatenated on dim 0)."""
    out = {}
    for key, first in states[0].items():
        if first.ndim == 0:  # BatchNorm's num_batches_tracked: every model counts the same
            if any(not torch.equal(s[key], first) for s in states):
                raise ValueError(f"stack_states: {key} differs between the models")
            out[key] = first.clone()
        else:
            out[key] = torch.cat([s[key] for s in states], 0)
    return out


def unstack_state(state: dict[str, torch.Tensor], k: int) -> list[dict[str, torch.Tensor]]:
    """The inverse of stack_states: k per-model state dicts (copies, on the CPU)."""
    parts = [{} for _ in range(k)]
    for key, t in state.items():
        t = t.detach().cpu()
        chunks = [t] * k if t.ndim == 0 else list(t.chunk(k, 0))
        for part, c in zip(parts, chunks, strict=True):
            part[key] = c.clone()
    return parts


def _net(cls, cfg: SinGANConfig, n: int, k: int = 1) -> nn.Module:
    nfc, min_nfc = cfg.nfc_at(n)
    with torch.random.fork_rng(devices=[]):  # constructors draw from the global RNG; we overwrite
        net = cls(cfg, nfc, min_nfc)
        return _widen(net, k) if k > 1 else net


def stacked(cls, cfg: SinGANConfig, n: int, states: Sequence[dict], device) -> nn.Module:
    """The grouped `cls` (generator or critic of scale n) holding the K models' weights."""
    net = _net(cls, cfg, n, len(states))
    net.load_state_dict(stack_states(states))
    return net.to(device)


def frozen_copy(cls, cfg: SinGANConfig, n: int, state: dict) -> nn.Module:
    """One model's network of scale n from its state dict, frozen (eval, no gradients)."""
    net = _net(cls, cfg, n)
    net.load_state_dict(state)
    net.eval()
    return net.requires_grad_(False)


__all__ = ["frozen_copy", "stack_states", "stacked", "unstack_state"]

"""Optimisers for training: Adam, AdamW (torch's fused/foreach kernels) and AdaBelief.

AdaBelief (Zhuang et al., NeurIPS 2020; DeepFaceLab's default) is Adam with the second moment
taken of the gradient's deviation from its running mean ("belief") instead of the raw gradient:

    m_t = β1·m + (1 − β1)·g
    s_t = β2·s + (1 − β2)·(g − m_t)² + ε
    θ  ← θ − lr · (m_t / (1 − β1ᵗ)) / (√(s_t / (1 − β2ᵗ)) + ε)

with optional decoupled weight decay (θ ← θ·(1 − lr·wd) first). The update uses torch's
``_foreach`` kernels (a handful of launches per step, not one per parameter).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor


class AdaBelief(torch.optim.Optimizer):
    """AdaBelief optimiser (see the module docstring).

    Args:
        params: Parameters or parameter groups.
        lr: Learning rate.
        betas: (β1, β2).
        eps: ε, added to s_t and to the denominator (the paper's default 1e-16).
        weight_decay: Decoupled weight decay (AdamW-style); 0 = off.

    State per parameter: ``step`` (0-d float32 tensor), ``exp_avg`` (m), ``exp_avg_var`` (s).
    """

    def __init__(self, params: Iterable[Any], lr: float = 5e-5,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-16,
                 weight_decay: float = 0.0) -> None:
        if lr <= 0 or eps < 0 or weight_decay < 0:
            raise ValueError("AdaBelief: lr must be > 0, eps and weight_decay ≥ 0")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"AdaBelief: betas must be in [0, 1), got {betas}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params: list[Tensor] = []
            grads: list[Tensor] = []
            ms: list[Tensor] = []
            ss: list[Tensor] = []
            bc1: list[float] = []
            bc2: list[float] = []
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdaBelief does not support sparse gradients")
                st = self.state[p]
                if not st:
                    st["step"] = torch.zeros((), dtype=torch.float32)
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_var"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["step"] += 1
                t = float(st["step"])
                params.append(p)
                grads.append(p.grad)
                ms.append(st["exp_avg"])
                ss.append(st["exp_avg_var"])
                bc1.append(1.0 - b1 ** t)
                bc2.append(1.0 - b2 ** t)
            if not params:
                continue
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            if wd:
                torch._foreach_mul_(params, 1.0 - lr * wd)
            torch._foreach_lerp_(ms, grads, 1.0 - b1)
            diff = torch._foreach_sub(grads, ms)
            torch._foreach_mul_(ss, b2)
            torch._foreach_addcmul_(ss, diff, diff, value=1.0 - b2)
            torch._foreach_add_(ss, eps)
            denom = torch._foreach_sqrt(ss)
            torch._foreach_div_(denom, [math.sqrt(c) for c in bc2])
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(params, ms, denom, [-lr / c for c in bc1])
        return loss


def build_optimizer(name: str, params: Iterable[Tensor], *, lr: float, weight_decay: float,
                    device: torch.device) -> torch.optim.Optimizer:
    """Create optimiser ``name`` ("adam", "adamw", "adabelief") for ``params``.

    Adam/AdamW use torch's fused kernels where the device supports them (CUDA, and CPU in torch
    ≥ 2.4), else the foreach implementation.
    """
    params = list(params)
    if name == "adabelief":
        return AdaBelief(params, lr=lr, weight_decay=weight_decay)
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(name)
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}")
    try:
        return cls(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return cls(params, lr=lr, weight_decay=weight_decay, foreach=True)

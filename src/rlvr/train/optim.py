"""AdamW with linear warm-up then cosine decay, the schedule every RLVR recipe we know uses."""

from __future__ import annotations

import math

import torch


def make_optimizer(
    model: torch.nn.Module,
    lr: float,
    total_steps: int,
    warmup_ratio: float = 0.0,
    weight_decay: float = 0.0,
    schedule: str = "cosine",
    min_lr_ratio: float = 0.1,
    fused: bool = False,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """``fused``: AdamW's fused kernel, one pass over the parameters instead of a chain of
    foreach ops (~2.5x less optimizer time for a small policy on CPU; the same update rule,
    rounded differently). RL uses it, where the step rate matters; SFT keeps the foreach
    kernel its defaults were tuned with (the embedded cold start's outcome is sensitive even
    to rounding: see the README's main-job notes)."""
    params = [p for p in model.parameters() if p.requires_grad]
    fused = fused and all(
        p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params
    )
    optimizer = torch.optim.AdamW(
        params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99), fused=fused or None
    )
    warmup = int(warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

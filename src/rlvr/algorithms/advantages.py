"""Advantage estimators: rewards of G samples per prompt -> one advantage per sample.

Rewards arrive flat, ordered group by group: ``[p0s0, p0s1, ..., p0s(G-1), p1s0, ...]``.
Every estimator gives exactly 0 to each member of a group whose rewards are all equal: such a
group says nothing about which sample was better, and must not push the policy anywhere.
"""

from __future__ import annotations

import torch

from rlvr.algorithms.registry import ADVANTAGE_ESTIMATORS


def _grouped(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    if rewards.ndim != 1 or group_size < 1 or rewards.numel() % group_size:
        raise ValueError(
            f"rewards must be a flat tensor whose length ({rewards.numel()}) is a multiple of "
            f"group_size ({group_size})"
        )
    return rewards.view(-1, group_size)


def _zero_where_tied(adv: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    tied = (groups == groups[:, :1]).all(dim=1, keepdim=True)
    return torch.where(tied, torch.zeros_like(adv), adv)


@ADVANTAGE_ESTIMATORS.register("grpo")
def group_advantages(
    rewards: torch.Tensor, group_size: int, scale: str = "group", eps: float = 1e-6
) -> torch.Tensor:
    """GRPO (DeepSeekMath eq. 3; the spec's formula): ``(r_i - mean_G) / (std_G + eps)``.

    ``std_G`` is the population std (divides by G, not G - 1), as the spec writes it.
    ``scale="none"`` keeps ``r_i - mean_G`` (Dr. GRPO, Liu et al. 2025: the std division biases
    updates towards too-easy and too-hard prompts); ``scale="batch"`` divides by the population
    std of the whole batch's rewards (TRL's ``scale_rewards="batch"``).
    """
    groups = _grouped(rewards, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if scale == "group":
        adv = centred / (groups.std(dim=1, keepdim=True, correction=0) + eps)
    elif scale == "batch":
        adv = centred / (groups.flatten().std(correction=0) + eps)
    elif scale == "none":
        adv = centred
    else:
        raise ValueError(f"scale must be 'group', 'batch' or 'none', got {scale!r}")
    return _zero_where_tied(adv, groups).flatten()


@ADVANTAGE_ESTIMATORS.register("rloo")
def rloo_advantages(rewards: torch.Tensor, group_size: int, **_: object) -> torch.Tensor:
    """REINFORCE leave-one-out (Ahmadian et al. 2024): ``r_i - mean_{j != i} r_j``."""
    groups = _grouped(rewards, group_size)
    if group_size < 2:
        raise ValueError("rloo needs group_size >= 2")
    others = (groups.sum(dim=1, keepdim=True) - groups) / (group_size - 1)
    return _zero_where_tied(groups - others, groups).flatten()


@ADVANTAGE_ESTIMATORS.register("reinforce++")
def reinforce_pp_advantages(
    rewards: torch.Tensor, group_size: int, eps: float = 1e-6, **_: object
) -> torch.Tensor:
    """REINFORCE++ with a group baseline (Hu 2025; verl's ``reinforce_plus_plus_baseline``):
    subtract the group mean, then normalise by the whole batch's std (global, not per group)."""
    groups = _grouped(rewards, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    adv = (centred - centred.mean()) / (centred.flatten().std(correction=0) + eps)
    return _zero_where_tied(adv, groups).flatten()


def compute_advantages(
    name: str, rewards: torch.Tensor, group_size: int, scale: str = "group", eps: float = 1e-6
) -> torch.Tensor:
    return ADVANTAGE_ESTIMATORS.get(name)(rewards, group_size, scale=scale, eps=eps)

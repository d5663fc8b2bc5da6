"""One data-parallel learner of a ``torch.distributed`` group (a Ray learner actor, or a
torchrun rank): the policy, AdamW and its schedule, the frozen reference, and its share of each
batch.

Every learner gets the whole batch and takes its share of the groups (contiguous, so the rows
of a prompt stay together for the packed forward). ``update_policy`` weights each micro-batch by
the whole batch's normalisers (rows, or tokens with ``aggregation: token``), so the shares'
gradients add up to the gradient of the whole batch's loss; the group sums them with one
all-reduce, and every learner clips and steps with the same sum, so the copies stay equal
(checked: each reports its weights' checksum). With one learner nothing is reduced and the
update is the one-process update, bit for bit (for the same update thread count).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from rlvr.config import RunConfig
from rlvr.scale import share
from rlvr.scale.weights import build_policy
from rlvr.train.grpo import Batch, loss_settings, update_policy
from rlvr.train.learner import LocalLearner, rl_optimizer

# metrics that are the same on every learner (not shares of a sum), and maxima over them
SHARED = ("grad_norm", "learning_rate")
MAXED = ("rollout/mismatch_max_ratio",)


def group_share(n_rows: int, group_size: int, rank: int, world: int) -> torch.Tensor:
    """The rows of learner ``rank``: its share of the groups, whole."""
    groups = torch.tensor(share(n_rows // group_size, rank, world), dtype=torch.long)
    return (groups[:, None] * group_size + torch.arange(group_size)).flatten()


def all_reduce_sum(grads: list[torch.Tensor]) -> None:
    """Sum ``grads`` over the default process group, in place, in one flat message."""
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    for g, summed in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
        g.copy_(summed)


def update_share(learner: LocalLearner, batch: Batch, rank: int, world: int) -> dict[str, float]:
    """This learner's share of one update; its metrics are its shares of the batch's sums."""
    if world == 1:
        return learner.update(batch)
    rows = group_share(len(batch.rollouts), batch.rollouts.group_size, rank, world)
    l = learner  # noqa: E741
    return update_policy(
        l.policy, batch, l.optimizer, l.scheduler, l.settings, l.algo, l.rl, l.reference,
        rows=rows, all_reduce=all_reduce_sum,
    )  # fmt: skip


def combine_metrics(parts: list[dict[str, float]]) -> dict[str, float]:
    """The learners' metrics as one: shares summed; shared values and times from rank 0."""
    out: dict[str, float] = {}
    for part in parts:  # a learner whose rows were all tied reports no per-row diagnostics
        for key, value in part.items():
            if key in SHARED or key.startswith("time/"):
                out.setdefault(key, value)
            elif key in MAXED:
                out[key] = max(out.get(key, value), value)
            else:
                out[key] = out.get(key, 0.0) + value
    return out


def build_learner(
    cfg: RunConfig,
    policy: dict[str, Any],
    reference: dict[str, Any] | None,
    trainer_state: dict[str, Any],
    max_tokens: int,
) -> LocalLearner:
    """A learner whose policy, optimizer, schedule and reference are those the controller
    shipped (``weights.policy_payload``, ``LocalLearner.trainer_state``)."""
    model = build_policy(policy, cfg.model.device).train()
    if cfg.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    ref = None
    if reference is not None:
        ref = build_policy(reference, cfg.model.device).eval().requires_grad_(False)
    optimizer, scheduler = rl_optimizer(model, cfg.rl, cfg.algorithm)
    optimizer.load_state_dict(trainer_state["optimizer"])
    scheduler.load_state_dict(trainer_state["scheduler"])
    settings = loss_settings(cfg.algorithm, max_tokens)
    return LocalLearner(model, optimizer, scheduler, settings, cfg.algorithm, cfg.rl, ref)

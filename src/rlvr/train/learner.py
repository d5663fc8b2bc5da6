"""Where the update runs: a ``Learner`` holds the policy, its optimizer and schedule, and the
frozen reference, and turns a batch into an optimizer step (``grpo.update_policy``).

``LocalLearner`` is the update in this process. ``rlvr.scale`` builds groups of data-parallel
learners (Ray actors, torchrun ranks) from the same pieces and runs the same ``update_policy`` on
each learner's share of the batch; the RL loop (``train.loop``) sees only this interface.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from transformers import PreTrainedModel

from rlvr.algorithms import LossSettings
from rlvr.config import AlgorithmConfig, RLConfig
from rlvr.train.grpo import Batch, update_policy
from rlvr.train.optim import make_optimizer


class Learner(Protocol):
    @property
    def policy(self) -> Any: ...  # the current weights, for held-out checks and checkpoints

    def update(self, batch: Any) -> dict[str, float]: ...

    def trainer_state(self) -> dict[str, Any]: ...


def rl_optimizer(
    policy: PreTrainedModel, rl: RLConfig, algo: AlgorithmConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """RL's AdamW (fused) and its schedule, one step per update."""
    return make_optimizer(
        policy, rl.lr, rl.steps * algo.mu, rl.warmup_ratio, rl.weight_decay, rl.schedule,
        fused=True,
    )  # fmt: skip


class LocalLearner:
    """The update in this process: the policy, its optimizer and schedule, the frozen reference.
    ``rlvr.scale``'s learner groups have the same members and run the same ``update_policy`` on
    each learner's share of the batch."""

    def __init__(
        self,
        policy: PreTrainedModel,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        settings: LossSettings,
        algo: AlgorithmConfig,
        rl: RLConfig,
        reference: PreTrainedModel | None,
    ) -> None:
        self.policy, self.optimizer, self.scheduler = policy, optimizer, scheduler
        self.settings, self.algo, self.rl, self.reference = settings, algo, rl, reference

    def update(self, batch: Batch) -> dict[str, float]:
        return update_policy(
            self.policy, batch, self.optimizer, self.scheduler, self.settings, self.algo,
            self.rl, self.reference,
        )  # fmt: skip

    def trainer_state(self) -> dict[str, Any]:
        """What a checkpoint needs besides the weights."""
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

"""The RL math: pure tensor functions, registered by name. Imports torch, no rlvr I/O."""

from rlvr.algorithms.advantages import (
    compute_advantages,
    group_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
)
from rlvr.algorithms.kl import kl_k1, kl_k2, kl_k3
from rlvr.algorithms.losses import LossSettings, importance_ratio, policy_loss
from rlvr.algorithms.registry import ADVANTAGE_ESTIMATORS, KL_ESTIMATORS, LOSS_AGGREGATIONS

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "KL_ESTIMATORS",
    "LOSS_AGGREGATIONS",
    "LossSettings",
    "compute_advantages",
    "group_advantages",
    "importance_ratio",
    "kl_k1",
    "kl_k2",
    "kl_k3",
    "policy_loss",
    "reinforce_pp_advantages",
    "rloo_advantages",
]

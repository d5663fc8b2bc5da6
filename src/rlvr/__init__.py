"""rlvr: reinforcement learning from verifiable rewards.

The names below are loaded on first use, so ``import rlvr`` (and ``rlvr verify``) stays free of
torch until a training function is touched.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "group_advantages": "rlvr.algorithms.advantages",
    "compute_advantages": "rlvr.algorithms.advantages",
    "policy_loss": "rlvr.algorithms.losses",
    "LossSettings": "rlvr.algorithms.losses",
    "kl_k3": "rlvr.algorithms.kl",
    "pass_at_k": "rlvr.eval",
    "Verdict": "rlvr.verifiers.base",
    "get_verifier": "rlvr.verifiers.base",
    "get_task": "rlvr.tasks.base",
    "load_config": "rlvr.config",
    "RunConfig": "rlvr.config",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rlvr' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)

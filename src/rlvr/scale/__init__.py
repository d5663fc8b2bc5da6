"""Scale-out of the RL stage: rollout, verifier and learner workers as Ray actors
(``--ray``, ``scale:``), or data-parallel ranks under ``torchrun``. The RL loop
(``train.loop.train_rl``) keeps its shape: this process stays the single controller that owns the
data order, the group advantages, the version counter and the run directory; what changes is
where the source's samples and the update come from.

- ``ray_driver``: the controller's side on Ray (a ``RolloutSource`` over rollout and verifier
  actors, a learner group, the versioned weight sync, asynchronous RL with bounded staleness);
  ``ray_actors``: the actors themselves. The only modules that import ``ray``.
- ``torchrun``: the same controller over ``torch.distributed`` alone: rank 0 runs the loop and
  every rank samples, scores and learns its share.
- ``workers`` (a rollout worker), ``verifier_worker`` (a verifier worker, torch-free) and
  ``learner`` (one data-parallel learner): plain classes both back-ends run.
- ``weights``: a policy on the wire and its checksum.

``docs/scale-out.md`` has the architecture, what crosses the wire per step, and the way to a
cluster of 100+ GPUs. This module imports neither ray nor torch.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rlvr.config import RunConfig
    from rlvr.context import RunContext
    from rlvr.rollout.sources import RolloutSource
    from rlvr.train.learner import LocalLearner
    from rlvr.train.prompt_stream import PromptStream


class ScaleError(RuntimeError):
    """A worker or the weight sync failed in a way the run cannot recover from by itself."""


class Learner(Protocol):
    """Where ``train_rl``'s update runs (``train.learner.LocalLearner`` in one process)."""

    @property
    def policy(self) -> Any: ...  # the current weights, for held-out checks and checkpoints

    def update(self, batch: Any) -> dict[str, float]: ...

    def trainer_state(self) -> dict[str, Any]: ...


class Scaled(Protocol):
    """What ``scale_out`` hands the loop: a remote source and learner, and two hooks."""

    source: RolloutSource
    learner: Learner

    def before_update(self, step: int, prompts: PromptStream) -> None:
        """Called between a step's samples and its update (asynchronous RL submits the next
        steps' samples here, so they are generated while the update runs)."""

    def close(self) -> None: ...


def share(n: int, rank: int, world: int) -> range:
    """Worker ``rank``'s share of ``n`` groups: a contiguous run, the runs as even as can be
    (a group's samples depend on its key, not on who samples it)."""
    return range(n * rank // world, n * (rank + 1) // world)


def torchrun_world() -> int:
    """The number of ranks when this process was started by ``torchrun`` (or any launcher that
    sets torch.distributed's ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``), else 1."""
    if not all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR")):
        return 1
    return int(os.environ["WORLD_SIZE"])


def torchrun_rank() -> int:
    return int(os.environ.get("RANK", "0")) if torchrun_world() > 1 else 0


def wanted(cfg: RunConfig) -> bool:
    """Does this run scale out (Ray asked for, or several torchrun ranks)?"""
    return cfg.scale.enabled or torchrun_world() > 1


def scale_out(
    ctx: RunContext, tokenizer: Any, source: RolloutSource, learner: LocalLearner, version: int
) -> Scaled:
    """Start the workers of this run (``version``: the policy's, the number of updates so far)
    and return the remote source and learner the loop uses instead of ``source`` and
    ``learner``."""
    from rlvr.config import ConfigError

    if torchrun_world() > 1:
        if ctx.cfg.scale.enabled:
            raise ConfigError(
                "scale.ray under torchrun: choose one (torchrun ranks, or Ray actors from one "
                "process)"
            )
        from rlvr.scale.torchrun import scale_out_torchrun

        return scale_out_torchrun(ctx, tokenizer, source, learner, version)
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError("scale.ray needs Ray: pip install 'rlvr[ray]'") from None
    from rlvr.scale.ray_driver import scale_out_ray

    return scale_out_ray(ctx, tokenizer, source, learner, version)

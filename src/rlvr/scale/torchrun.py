"""Data-parallel RL without Ray: ``torchrun --standalone --nproc-per-node N -m rlvr train ...``.

The same single controller as on Ray, over ``torch.distributed`` alone. Rank 0 runs the loop and
owns the run directory; every rank, rank 0 included, samples and scores its share of each step's
groups (each group with its key, so the samples are those of one process) and learns from its
share of the batch; the gradients are all-reduced (gloo on CPU, NCCL on GPU). The ranks above 0
write nothing: they serve rank 0's requests (``serve``).

Each rank holds one policy, which samples and learns (as in DDP). The copies stay equal because
every rank steps with the same summed gradient from the same state; each rank reports its
weights' checksum with its samples, and rank 0 checks them against its own.

Messages are pickled objects (``broadcast_object_list`` from rank 0, ``gather_object`` back):
a step's prompts and keys out, each rank's scored samples back, the batch out, each rank's
metrics back. At the start, rank 0 sends the config, the tokenizer, the weights, the reference
and the optimizer state, so every rank starts from the controller's state (a resumed run's
too).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from rlvr.config import ConfigError
from rlvr.context import RunContext
from rlvr.rollout.generate import Rollouts
from rlvr.rollout.prompts import pad_id
from rlvr.rollout.sources import Collected, RolloutSource
from rlvr.scale import ScaleError, share, torchrun_rank, torchrun_world
from rlvr.scale.learner import build_learner, combine_metrics, update_share
from rlvr.scale.weights import checksum, policy_payload
from rlvr.tasks.base import Example
from rlvr.train.grpo import Batch
from rlvr.train.learner import LocalLearner
from rlvr.train.prompt_stream import PromptStream
from rlvr.wiring import build_engine, rollout_source

# rank 0 may evaluate or start up for a long time while the others wait for its next message
TIMEOUT = timedelta(hours=6)
_stopped = False


def init() -> None:
    """Join torchrun's process group (``env://``), on this rank's GPU when there is one."""
    if dist.is_initialized():
        return
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = "nccl"
    dist.init_process_group(backend, timeout=TIMEOUT)


def _send(message: tuple) -> None:
    box = [message]
    dist.broadcast_object_list(box, src=0)


def _receive() -> tuple:
    box: list[Any] = [None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _gather(value: Any) -> list[Any] | None:
    """Every rank's ``value`` on rank 0 (in rank order), None elsewhere."""
    out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(value, out, dst=0)
    return out


def stop() -> None:
    """Release the ranks that serve (rank 0, once, when its command has finished). Not on an
    error: the others may be inside a collective then, and torchrun ends them when rank 0
    exits with an error."""
    global _stopped
    if not _stopped and dist.is_initialized():
        _stopped = True
        _send(("stop",))


def leave() -> None:
    """Every rank, once rank 0 has said stop: wait for the others, then take the process group
    down before the interpreter exits (left to exit, gloo's threads can abort the process)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def serve() -> None:
    """A rank above 0: build what rank 0 sends, then sample, score and learn on its requests
    until it says stop."""
    init()
    _serve()
    leave()  # only after a stop: on an error rank 0 exits and torchrun ends this rank


def _serve() -> None:
    message = _receive()
    if message[0] == "stop":  # rank 0 had nothing to train (a finished run resumed)
        return
    _, setup = message
    cfg = setup["cfg"]
    rank, world = dist.get_rank(), dist.get_world_size()
    if cfg.model.threads:
        torch.set_num_threads(cfg.model.threads)
    learner = build_learner(
        cfg, setup["policy"], setup["reference"], setup["trainer_state"], setup["max_tokens"]
    )
    engine = build_engine(cfg, setup["tokenizer"], learner.policy)
    source = rollout_source(cfg, setup["tokenizer"], _scorer(setup["verifier"]), engine)
    version = setup["version"]
    engine.sync(learner.policy, version)
    while (message := _receive())[0] != "stop":
        if message[0] == "collect":
            _, examples, keys = message
            r = share(len(examples), rank, world)
            part = slice(r.start, r.stop)
            got = source.collect(learner.policy, examples[part], keys[part]) if keys[part] else None
            _gather((got, checksum(learner.policy)))
        elif message[0] == "update":
            _gather(update_share(learner, message[1], rank, world))
            version += 1
            engine.sync(learner.policy, version)


def _scorer(verifier: tuple[str, dict] | None):
    """This rank's own verifier pool for its share of single-turn samples (episodes are scored
    by their environments)."""
    if verifier is None:
        return None
    from rlvr.verifiers.base import get_verifier
    from rlvr.verifiers.pool import VerifierPool

    name, options = verifier
    check, pool = get_verifier(name, **options), VerifierPool()
    return lambda texts, references: pool.score(check, texts, references)


class TorchrunRun:
    """Rank 0's side: a source and a learner whose work is shared by every rank."""

    def __init__(
        self, ctx: RunContext, tokenizer: Any, source: RolloutSource, learner: LocalLearner,
        version: int,
    ) -> None:  # fmt: skip
        self.local_source, self.local = source, learner
        self.group_size, self.max_tokens = source.group_size, source.max_tokens
        self.pad = pad_id(tokenizer)
        self.version = version
        self.world = dist.get_world_size()
        reference = learner.reference
        verifier = None
        if ctx.scoring.verifier_name is not None:
            verifier = (ctx.scoring.verifier_name, dict(ctx.task.verifier_options))
        setup = {
            "cfg": ctx.cfg,
            "tokenizer": tokenizer,
            "policy": policy_payload(learner.policy),
            "reference": policy_payload(reference) if reference is not None else None,
            "trainer_state": learner.trainer_state(),
            "max_tokens": source.max_tokens,
            "verifier": verifier,
            "version": version,
        }
        _send(("setup", setup))
        self.source, self.learner = self, self
        self.engine = None  # every rank syncs its own engine after its share of the update
        if source.engine is not None:
            source.engine.sync(learner.policy, version)

    # -- the source ----------------------------------------------------------------------------
    def collect(self, policy: Any, examples: list[Example], keys: list[int]) -> Collected:
        _send(("collect", examples, keys))
        r = share(len(examples), 0, self.world)
        part = slice(r.start, r.stop)
        mine = None
        if keys[part]:
            mine = self.local_source.collect(self.local.policy, examples[part], keys[part])
        answers = _gather((mine, checksum(self.local.policy)))
        assert answers is not None
        sums = {s for _, s in answers}
        if len(sums) > 1:
            raise ScaleError(f"the ranks' weights differ at version {self.version}: {sums}")
        parts = [c for c, _ in answers if c is not None]
        ro = Rollouts.concat([c.rollouts for c in parts], self.pad)
        ro.versions = torch.full((len(ro),), self.version, dtype=torch.long)
        seconds: dict[str, float] = {}
        for c in parts:
            for k, v in c.seconds.items():
                seconds[k] = max(seconds.get(k, 0.0), v)
        return Collected(ro, [v for c in parts for v in c.verdicts], seconds)

    # -- the learner ---------------------------------------------------------------------------
    @property
    def policy(self):
        return self.local.policy

    def update(self, batch: Batch) -> dict[str, float]:
        _send(("update", batch))
        mine = update_share(self.local, batch, 0, self.world)
        parts = _gather(mine)
        assert parts is not None
        self.version += 1
        if self.local_source.engine is not None:
            self.local_source.engine.sync(self.local.policy, self.version)
        return combine_metrics(parts)

    def trainer_state(self) -> dict[str, Any]:
        return self.local.trainer_state()

    # -- hooks ---------------------------------------------------------------------------------
    def before_update(self, step: int, prompts: PromptStream) -> None:
        """Synchronous only (``scale.mode: async`` needs Ray)."""

    def close(self) -> None:
        """Nothing: the ranks keep serving until rank 0's command has finished (``stop``)."""


def scale_out_torchrun(
    ctx: RunContext, tokenizer: Any, source: RolloutSource, learner: LocalLearner, version: int
) -> TorchrunRun:
    if ctx.cfg.scale.mode == "async":
        raise ConfigError("scale.mode: async runs on Ray (--ray); under torchrun RL is sync")
    return TorchrunRun(ctx, tokenizer, source, learner, version)


def only_train(command: str) -> None:
    """Under torchrun only ``rlvr train`` is data-parallel: any other command is an error."""
    if command != "train":
        raise ConfigError(
            f"under torchrun only `rlvr train` runs data-parallel; run `rlvr {command}` in one "
            "process"
        )


def run_ranks(rank0: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``rlvr train``: ``rank0`` (the command's work) on rank 0 while the other ranks serve it;
    their result is empty."""
    init()
    if torchrun_rank() > 0:
        serve()
        return {}
    result = rank0()
    stop()
    leave()
    return result


__all__ = ["only_train", "run_ranks", "scale_out_torchrun", "serve", "torchrun_world"]

"""A rollout worker: a copy of the policy and the run's rollout source with its engine, built
from the config alone (``wiring.rollout_source``, ``wiring.build_engine``), so it samples exactly
what the controller's own source would: a group's samples depend on its key and the weights
only. Every weight load is synced into the engine (a vLLM engine's in-place reload).

Single-turn workers return completions unscored (verifier workers score them); a multi-turn
episode runs where the policy copy is, here, with its environment (and the environment's
sandbox) on this worker, and comes back scored by the environment's verdict.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from rlvr.config import RunConfig
from rlvr.faults import fault_point
from rlvr.rollout.generate import Rollouts
from rlvr.rollout.sources import Collected, SingleTurn
from rlvr.scale.weights import StateDict, build_policy, checksum, load_weights
from rlvr.tasks.base import Example
from rlvr.wiring import build_engine, rollout_source


@dataclass
class Sampled:
    """A worker's answer to one request: its groups' rollouts (scored when they are episodes),
    the version and checksum of the weights that sampled them, and which process it was."""

    rollouts: Rollouts
    collected: Collected | None  # episodes: scored where they ran
    version: int | None
    checksum: str
    pid: int
    seconds: float


class RolloutWorker:
    def __init__(
        self,
        cfg: RunConfig,
        tokenizer: PreTrainedTokenizerBase,
        policy: dict[str, Any],
        version: int | None = None,
        threads: int | None = None,
    ) -> None:
        """``policy``: ``weights.policy_payload`` (the weights of ``version``), or only its
        ``architecture``: then the first request's weights are loaded before it samples."""
        if threads:
            torch.set_num_threads(threads)
        self.policy = build_policy(policy, cfg.model.device).eval()
        self.version = version if "state" in policy else None
        self.checksum = checksum(self.policy)
        engine = build_engine(cfg, tokenizer, self.policy)  # the run's engine, on this worker
        self.source = rollout_source(cfg, tokenizer, engine=engine)
        if self.version is not None:
            engine.sync(self.policy, self.version)

    def holds(self, version: int) -> bool:
        return self.version == version

    def load(self, version: int, state: StateDict) -> None:
        """The weights of ``version`` (the learner's, from the weight sync)."""
        load_weights(self.policy, state)
        self.version, self.checksum = version, checksum(self.policy)
        self.source.engine.sync(self.policy, version)

    def sample(self, step: int, examples: list[Example], keys: list[int]) -> Sampled:
        fault_point(f"scale:rollout:step:{step}")
        t0 = time.perf_counter()
        if isinstance(self.source, SingleTurn):
            ro, collected = self.source.sample(self.policy, examples, keys), None
        else:
            collected = self.source.collect(self.policy, examples, keys)
            ro = collected.rollouts
        ro.versions = torch.full((len(ro),), self.version, dtype=torch.long)
        seconds = time.perf_counter() - t0
        return Sampled(ro, collected, self.version, self.checksum, os.getpid(), seconds)

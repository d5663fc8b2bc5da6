"""Rollout sources: where the RL loop gets a step's scored samples from.

The loop (``train.loop``) asks a source for ``group_size`` samples of each of a step's problems
and gets back a ``Rollouts`` batch with a verdict per row; it never knows how they were made:

- ``SingleTurn``: one completion per sample, scored by the task's verifier (the R1 recipe);
- ``Episodes``: one multi-turn episode per sample, each with its own environment, scored by the
  environment's verdict (the agentic recipe, ``rlvr train --env``).

A remote source (``rlvr.scale``: rollout workers on other machines) has the same shape: its
workers build these same sources, and a single-turn worker only ``sample``s (verifier workers
score).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlvr.envs.base import Env
from rlvr.rollout.engines import Engine, NativeEngine
from rlvr.rollout.episodes import EpisodeRunner
from rlvr.rollout.generate import Rollouts, generate
from rlvr.rollout.prompts import pad_id
from rlvr.rollout.sampling import sample_key
from rlvr.tasks.base import Example
from rlvr.verifiers.base import Verdict

ScoreFn = Callable[[list[str], list[Any]], list[Verdict]]


@dataclass
class Collected:
    """A step's samples, rows ordered group by group, and where the time went."""

    rollouts: Rollouts
    verdicts: list[Verdict]
    seconds: dict[str, float]
    # what an imported environment reports besides rewards: events counted over the step
    # (``env/errors``, ``env/token_drift``) and values per row (``env/<reward name>``; NaN
    # where a row has none), averaged over the step's rows
    counts: dict[str, float] = field(default_factory=dict)
    row_metrics: dict[str, list[float]] = field(default_factory=dict)


class RolloutSource(Protocol):
    """``collect`` returns ``group_size`` scored samples of each example, sampled with keys
    derived from the example's key (``rollout.sampling``): what a sample is depends on its key
    and the policy only, not on which worker or batch made it.

    ``engine`` samples them (``rollout.engines``); the loop syncs it with the policy after
    every update. None for a remote source, whose workers hold and sync their own engines."""

    group_size: int
    max_tokens: int  # the most tokens a sample can hold (for length penalties and normalisers)
    engine: Engine | None

    def collect(
        self, policy: PreTrainedModel, examples: list[Example], keys: list[int]
    ) -> Collected: ...

    def close(self) -> None:
        """Release what the source holds (an episode runner's threads)."""


def sample_keys(keys: list[int], group_size: int, *more: object) -> torch.Tensor:
    """One sampling key per sample: example-major, ``group_size`` per example."""
    return torch.tensor([sample_key(k, g, *more) for k in keys for g in range(group_size)])


class SingleTurn:
    """Prompt in, ``group_size`` completions out, each scored by the verifier."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        score: ScoreFn,
        group_size: int,
        max_new_tokens: int,
        temperature: float,
        top_p: float = 1.0,
        format_prompt: Callable[[str], str] = lambda p: p,
        engine: Engine | None = None,
    ) -> None:
        self.tokenizer, self.score, self.format_prompt = tokenizer, score, format_prompt
        self.group_size, self.max_tokens = group_size, max_new_tokens
        self.temperature, self.top_p = temperature, top_p
        self.engine = engine or NativeEngine(pad_id(tokenizer))

    def sample(self, policy: PreTrainedModel, examples: list[Example], keys: list[int]) -> Rollouts:
        """The completions, unscored (what a rollout worker does; verifier workers score)."""
        return generate(
            policy,
            self.tokenizer,
            [self.format_prompt(e.prompt) for e in examples],
            group_size=self.group_size,
            max_new_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            keys=sample_keys(keys, self.group_size),
            engine=self.engine,
        )

    def collect(
        self, policy: PreTrainedModel, examples: list[Example], keys: list[int]
    ) -> Collected:
        t0 = time.perf_counter()
        ro = self.sample(policy, examples, keys)
        t1 = time.perf_counter()
        verdicts = self.score(
            ro.texts, [e.reference for e in examples for _ in range(self.group_size)]
        )
        seconds = {"generate": t1 - t0, "verify": time.perf_counter() - t1}
        return Collected(ro, verdicts, seconds)

    def close(self) -> None:
        """Nothing to release: scoring runs in the run's verifier pool (and the engine is the
        run's)."""


class Episodes:
    """``group_size`` episodes per problem, each with a fresh environment from ``make_env``."""

    def __init__(
        self,
        runner: EpisodeRunner,
        make_env: Callable[[Example], Env],
        group_size: int,
        temperature: float,
        top_p: float = 1.0,
    ) -> None:
        self.runner, self.make_env = runner, make_env
        self.group_size, self.temperature, self.top_p = group_size, temperature, top_p
        self.max_tokens = runner.limits.max_episode_tokens
        self.engine = runner.engine

    def collect(
        self, policy: PreTrainedModel, examples: list[Example], keys: list[int]
    ) -> Collected:
        envs = [self.make_env(e) for e in examples for _ in range(self.group_size)]
        ro, verdicts = self.runner.run(
            policy, envs, self.group_size, self.temperature, self.top_p,
            keys=[k for k in keys for _ in range(self.group_size)],
        )  # fmt: skip
        return Collected(ro, verdicts, dict(self.runner.seconds))

    def close(self) -> None:
        self.runner.close()

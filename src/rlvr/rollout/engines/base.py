"""What a rollout engine is: token ids in, sampled token ids and their log-probs out, with the
weights of a known policy version.

The sources (``rollout.sources``), the episode runner (``rollout.episodes``), evaluation and the
Ray rollout workers sample through this interface and never know which engine did it:

- ``rlvr`` (``native``): rlvr's own decoders (``rollout.generate``: the fast plain-torch path,
  one shard per CPU core, or the HF loop). It samples with the learner's policy object itself,
  so its weights are always the policy's.
- ``vllm`` (``vllm_engine``): a ``vllm.LLM`` in the learner's process, holding its own copy of
  the weights, replaced in place after every update (``sync``).

An engine that holds a copy must never sample with weights older than the policy's: ``sample``
refuses (``StaleWeights``) when the policy changed since the last ``sync``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from transformers import PreTrainedModel


@dataclass
class Sampled:
    """What a decode returns, for N = prompts * group_size rows (prompt-major): ``tokens`` and
    ``logprobs`` (N, T), right-padded; ``lengths`` and ``finished`` (N,). A finished row ends
    with its EOS token, counted in its length. ``logprobs`` are those of the distribution the
    token was drawn from (temperature and top-p applied): the behaviour policy's."""

    tokens: torch.Tensor
    lengths: torch.Tensor
    finished: torch.Tensor
    logprobs: torch.Tensor


class EngineError(RuntimeError):
    """An engine could not start or serve a request; the message says what to change."""


class StaleWeights(EngineError):
    """The engine was asked to sample although the policy changed since its last sync."""


class Engine(Protocol):
    name: str  # "rlvr" | "vllm"
    reason: str  # why this engine runs (``rollout.engine``, or what ``auto`` found)
    version: int | None  # the policy version whose weights it samples with (None: not synced)

    def sample(
        self,
        policy: PreTrainedModel,
        prompts: list[list[int]],
        group_size: int,
        max_new_tokens: int | list[int],
        eos: int | None,
        temperature: float,
        top_p: float = 1.0,
        keys: list[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> Sampled:
        """``group_size`` continuations of each prompt (token ids, unpadded), at most
        ``max_new_tokens`` each (or one budget per prompt: an engine may decode every row to
        the longest, and the caller cuts each at its own; none goes past it). ``keys``: one
        sampling key per continuation, prompt-major (``rollout.sampling``); without them the
        draws come from ``generator``. Greedy when ``temperature == 0``. ``policy`` is the
        learner's: the native engine samples with it, an engine with its own copy checks that
        it was synced with it."""
        ...

    def sync(self, policy: PreTrainedModel, version: int) -> None:
        """Take ``policy``'s current weights as version ``version`` (in place, no restart;
        cached prefixes of older weights are dropped)."""
        ...

    def prepare(self, policy: PreTrainedModel) -> None:
        """Sample with ``policy`` next: ``sync`` when the engine does not hold its current
        weights (evaluating a checkpoint, a stage's model). Keeps the version."""
        ...

    def sleep(self) -> None:
        """Free the engine's accelerator memory while the learner updates (GPU); a no-op
        elsewhere. ``wake`` undoes it; the weights are synced after."""
        ...

    def wake(self) -> None: ...

    def stats(self) -> dict[str, float]:
        """Counters since the last call, as metrics (e.g. ``rollout/prefix_cache_hit_rate``)."""
        ...

    def close(self) -> None: ...

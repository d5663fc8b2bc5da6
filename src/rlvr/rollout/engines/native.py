"""The ``rlvr`` engine: rlvr's own decoders (``rollout.generate.sample_ids``), sampling with the
learner's policy object itself. Fastest for small policies on CPU (the fast decode path, one
shard per core); there is no copy of the weights, so ``sync`` only records the version."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from rlvr.rollout.engines.base import Sampled


class NativeEngine:
    name = "rlvr"

    def __init__(self, pad: int) -> None:
        self.pad = pad
        self.version: int | None = None
        self.reason = "rollout.engine: rlvr"

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
        from rlvr.rollout.generate import left_pad, sample_ids

        if not isinstance(max_new_tokens, int):  # one decode to the longest budget: rows
            max_new_tokens = max(max_new_tokens, default=0)  # past their own are cut by callers
        device = next(policy.parameters()).device
        ids, mask = left_pad(prompts, self.pad, device)
        keyed = torch.tensor(keys) if keys is not None else None
        return sample_ids(
            policy, ids, mask, group_size, max_new_tokens, eos, temperature, top_p, generator,
            keyed,
        )  # fmt: skip

    def sync(self, policy: PreTrainedModel, version: int) -> None:
        self.version = version

    def prepare(self, policy: PreTrainedModel) -> None:
        """Nothing to load: it samples with ``policy`` itself."""

    def sleep(self) -> None:
        """Nothing to free."""

    def wake(self) -> None:
        """Nothing to restore."""

    def stats(self) -> dict[str, float]:
        return {}

    def close(self) -> None:
        """Nothing to release."""

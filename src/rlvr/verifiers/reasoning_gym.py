"""reasoning-gym's own scoring as a verifier: the ``score_answer`` of the entry's dataset.

The reference is the dataset entry (``{"question", "answer", "metadata": {"source_dataset"}}``),
or ``{"dataset": NAME, "entry": ENTRY}``. The answer is the last ``<answer>`` tag (or
``\\boxed{}``); a response with neither is scored whole, as reasoning-gym's own harness does.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from rlvr.verifiers.answer import MAX_RESPONSE_CHARS, extract_answer, over_limit
from rlvr.verifiers.base import Verdict, register_verifier


@functools.cache
def _scorer(dataset: str):
    try:
        import reasoning_gym
    except ImportError:
        raise ImportError(
            "the reasoning_gym verifier needs the reasoning-gym package: pip install 'rlvr[gym]'"
        ) from None
    return reasoning_gym.get_score_answer_fn(dataset)


@register_verifier("reasoning_gym")
class ReasoningGymVerifier:
    name = "reasoning_gym"

    def __init__(self, require_tags: bool = False) -> None:
        self.require_tags = require_tags

    def verify(self, response: str, reference: Any) -> Verdict:
        if (too_long := over_limit(response)) is not None:
            return too_long
        if not isinstance(reference, Mapping):
            return Verdict(0.0, "error", "reasoning_gym reference must be a dataset entry")
        entry = reference.get("entry", reference)
        dataset = reference.get("dataset") or (entry.get("metadata") or {}).get("source_dataset")
        if not dataset:
            return Verdict(0.0, "error", "reference names no dataset (metadata.source_dataset)")
        answer = extract_answer(response)
        if answer is None:
            if self.require_tags or not response.strip():
                return Verdict(0.0, "no_answer", "no <answer> tag")
            answer = response[:MAX_RESPONSE_CHARS].strip()
        score = float(_scorer(dataset)(answer, entry) or 0.0)
        score = min(1.0, max(0.0, score))
        status = "correct" if score >= 1.0 else ("partial" if score > 0 else "wrong")
        return Verdict(
            score, status, f"answer {answer[:80]!r}, expected {str(entry.get('answer'))[:80]!r}"
        )

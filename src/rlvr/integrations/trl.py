"""rlvr verifiers as TRL reward functions (``GRPOTrainer(reward_funcs=[...])``).

TRL calls each reward function with ``prompts``, ``completions``, ``completion_ids`` and every
other dataset column as a keyword argument (one list per column), and wants one float per
completion. Completions are strings, or, for conversational datasets, lists of
``{"role", "content"}`` messages whose last assistant message is scored. Checks run through
:class:`VerifierPool`, so a slow or crashing check costs one reward of 0, not the trainer.

This module imports neither TRL nor torch: it builds a plain function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlvr.verifiers.base import get_verifier
from rlvr.verifiers.pool import VerifierPool
from rlvr.verifiers.references import expects_object, parse_json_reference


def completion_text(completion: Any) -> str:
    """The text to score: a string as is; a message list's last assistant content."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    if isinstance(completion, list | tuple):
        messages = [m for m in completion if isinstance(m, dict)]
        assistant = [m for m in messages if m.get("role", "assistant") == "assistant"]
        chosen = assistant or messages
        return str(chosen[-1].get("content", "")) if chosen else ""
    return str(completion)


def make_reward_func(
    verifier_name: str,
    reference_column: str = "answer",
    workers: int | None = None,
    timeout_s: float | None = None,
    **options: Any,
) -> Callable[..., list[float]]:
    """A TRL reward function scoring each completion against ``kwargs[reference_column]``.

    ``options`` go to the verifier's constructor. A reference that is a JSON string (code tests
    stored as text in a dataset column) is parsed when the verifier needs an object."""
    verifier = get_verifier(verifier_name, **options)
    pool_kwargs: dict[str, Any] = {"workers": workers}
    if timeout_s is not None:
        pool_kwargs["timeout_s"] = timeout_s
    pool = VerifierPool(**pool_kwargs)
    needs_object = expects_object(verifier_name)

    def reward(prompts=None, completions=None, completion_ids=None, **kwargs: Any) -> list[float]:
        if completions is None:
            raise TypeError("reward function called without completions")
        if reference_column not in kwargs:
            raise KeyError(
                f"rlvr reward ({verifier_name}): the dataset has no column {reference_column!r}; "
                f"columns passed: {', '.join(sorted(kwargs)) or 'none'}. "
                "Pass reference_column=... to make_reward_func"
            )
        references = list(kwargs[reference_column])
        if needs_object:
            references = [parse_json_reference(r) for r in references]
        texts = [completion_text(c) for c in completions]
        return [v.score for v in pool.score(verifier, texts, references)]

    reward.__name__ = f"rlvr_{verifier_name}"
    return reward

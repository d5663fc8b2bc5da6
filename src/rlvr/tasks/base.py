"""A task is where prompts come from: it yields ``Example``s for train and held-out splits and
names the verifier that scores responses to them.

RL sees only ``prompt`` and ``reference`` (what the verifier checks against); ``solution`` is a
worked demonstration for SFT stages and is never shown to the RL loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Split = Literal["train", "heldout"]


@dataclass(frozen=True)
class Example:
    id: str
    prompt: str
    reference: Any
    solution: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class Task(Protocol):
    name: str
    verifier: str  # a name in the verifier registry
    verifier_options: dict[str, Any]

    def examples(self, split: Split, n: int | None = None) -> list[Example]:
        """The first ``n`` examples of ``split`` (all when None), deterministic for a given seed."""
        ...


def split_by_hash(key: str, heldout_fraction: float) -> Split:
    """The split a problem belongs to, from a hash of ``key``: the same on every machine, and
    the two splits can never share a key."""
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return "heldout" if (h % 10_000) < heldout_fraction * 10_000 else "train"


_TASKS: dict[str, Callable[..., Task]] = {}


def register_task(name: str) -> Callable[[Callable[..., Task]], Callable[..., Task]]:
    def add(factory: Callable[..., Task]) -> Callable[..., Task]:
        _TASKS[name] = factory
        return factory

    return add


def get_task(name: str, **options: Any) -> Task:
    """Build the task registered as ``name``. ``family:rest`` names (``reasoning_gym:leg_counting``)
    go to the factory registered for ``family`` with ``spec=rest``."""
    from rlvr import tasks as _  # noqa: F401  (registers the built-ins)

    family, _sep, rest = name.partition(":")
    if family not in _TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(_TASKS))}")
    if rest:
        options = {**options, "spec": rest}
    return _TASKS[family](**options)


def task_names() -> list[str]:
    from rlvr import tasks as _  # noqa: F401

    return sorted(_TASKS)

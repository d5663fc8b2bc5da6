"""The verifier contract: ``(response, reference) -> Verdict``.

A verifier is a small object with one method. It knows nothing of torch or training, so the
same object scores rollouts in rlvr, rewards in TRL or verl, and batches in ``rlvr verify``.

Why a Verdict and not a float: a reward of 0 for "wrong answer", "no answer", "timed out" and
"tried to escape the sandbox" hides exactly what reward-hacking monitoring needs to see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Status = Literal["correct", "partial", "wrong", "no_answer", "timeout", "error", "blocked"]
STATUSES: tuple[str, ...] = (
    "correct",
    "partial",
    "wrong",
    "no_answer",
    "timeout",
    "error",
    "blocked",
)


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check. ``score`` is the reward, always in [0, 1]."""

    score: float
    status: Status
    detail: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"Verdict.score must lie in [0, 1], got {self.score}")
        if self.status not in STATUSES:
            raise ValueError(f"Verdict.status must be one of {STATUSES}, got {self.status!r}")

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "status": self.status, "detail": self.detail}


def graded(passed: int, total: int, detail: str = "") -> Verdict:
    """The spec's graded code reward, ``tests passed / total tests``, as a Verdict."""
    if total <= 0:
        return Verdict(0.0, "error", detail or "no tests to run")
    score = passed / total
    status: Status = "correct" if passed == total else ("partial" if passed else "wrong")
    return Verdict(score, status, detail or f"{passed}/{total} tests passed")


class Verifier(Protocol):
    """Anything with a name and a ``verify`` method. ``verify`` should not raise; the pool
    turns an exception into an ``error`` verdict anyway, and a hang into ``timeout``."""

    name: str

    def verify(self, response: str, reference: Any) -> Verdict: ...


_REGISTRY: dict[str, Callable[..., Verifier]] = {}


def register_verifier(name: str) -> Callable[[Callable[..., Verifier]], Callable[..., Verifier]]:
    """Register a verifier factory (usually the class) under ``name`` for configs and the CLI."""

    def add(factory: Callable[..., Verifier]) -> Callable[..., Verifier]:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"verifier {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return add


def get_verifier(name: str, **options: Any) -> Verifier:
    """Build the verifier registered as ``name``; unknown names list the known ones."""
    from rlvr import verifiers as _  # noqa: F401  (importing the package registers the built-ins)

    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise KeyError(f"unknown verifier {name!r}; known verifiers: {known}")
    return _REGISTRY[name](**options)


def verifier_names() -> list[str]:
    from rlvr import verifiers as _  # noqa: F401

    return sorted(_REGISTRY)

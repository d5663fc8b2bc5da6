"""The environment contract, in gymnasium's shape: ``reset() -> prompt``, ``step(action) -> Turn``,
and ``verdict()`` for the episode's reward.

An environment speaks text. The rollout owns the tokens: it appends the model's sampled tokens
as they are and encodes each observation once (``rollout.episodes``), so nothing here can make
training drift from what was sampled. One environment object is one episode; its problems come
from ``examples`` (train and held-out splits, like a task's).

Why ``verdict()`` and not a reward per step: RLVR rewards the outcome. The reward of a coding
episode is its last attempt's score on tests the model never saw the results of; what the
environment says between turns is feedback, not reward.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rlvr.tasks.base import Example, Split
from rlvr.verifiers.base import Verdict


@dataclass(frozen=True)
class Turn:
    """The environment's reply to one model turn."""

    observation: str
    done: bool
    info: dict[str, Any] = field(default_factory=dict)


class Env(Protocol):
    name: str
    example: Example

    def reset(self) -> str:
        """Start the episode; returns the first prompt."""
        ...

    def step(self, action: str) -> Turn:
        """The model's turn in (its decoded text), the environment's reply out."""
        ...

    def verdict(self) -> Verdict:
        """The episode's reward (after the last step)."""
        ...


class EnvFamily(Protocol):
    """What ``register_env`` accepts: a class (or factory) building one episode's environment
    from an example, with ``examples`` serving the problems."""

    name: str

    def __call__(self, example: Example, **options: Any) -> Env: ...

    def examples(self, split: Split, n: int | None = None, **options: Any) -> list[Example]: ...


_ENVS: dict[str, EnvFamily] = {}


def register_env(name: str) -> Callable[[EnvFamily], EnvFamily]:
    """Register an environment class under ``name`` (``rlvr.envs.make(name)``, ``--env name``)."""

    def add(family: EnvFamily) -> EnvFamily:
        if name in _ENVS and _ENVS[name] is not family:
            raise ValueError(f"environment {name!r} is registered twice")
        _ENVS[name] = family
        return family

    return add


# name prefixes of families that resolve the rest of the name themselves (``vf:ID``,
# ``openenv:URL``: ``rlvr.interop`` registers them)
_PREFIXES: dict[str, Callable[[str], EnvFamily]] = {}


def register_env_prefix(prefix: str, resolve: Callable[[str], EnvFamily]) -> None:
    """Names that start with ``prefix`` (``"vf:"``) are resolved by ``resolve(name)``."""
    _PREFIXES[prefix] = resolve


def get_env_family(name: str) -> EnvFamily:
    """The family of ``name``. A family may also bring its own rollout source
    (``source(cfg, tokenizer, engine)``) when its episodes are not rlvr's ``Env`` turns."""
    from rlvr import envs as _  # noqa: F401  (registers the built-ins)

    for prefix, resolve in _PREFIXES.items():
        if name.startswith(prefix):
            return resolve(name)
    if name not in _ENVS:
        known = ", ".join(sorted(_ENVS)) or "none"
        hint = ""
        if ":" in name:
            hint = (
                "; vf:ID (verifiers) and openenv:URL|PACKAGE (OpenEnv) environments are "
                "registered by `import rlvr.interop` (the rlvr command and rlvr.api do it)"
            )
        raise KeyError(f"unknown environment {name!r}; known environments: {known}{hint}")
    return _ENVS[name]


def env_names() -> list[str]:
    from rlvr import envs as _  # noqa: F401

    return sorted(_ENVS)


def accepted(fn: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """The options ``fn`` takes (all of them when it takes ``**kwargs``)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(options)
    return {k: v for k, v in options.items() if k in params}


def make(name: str, seed: int = 0, example: Example | None = None, **options: Any) -> Env:
    """One episode's environment: on ``example``, or on a held-out problem drawn with ``seed``.

    ``options`` go to the environment and to its problem set (each takes the ones it knows)."""
    family = get_env_family(name)
    if example is None:
        problems = family.examples("heldout", None, **accepted(family.examples, options))
        example = random.Random(seed).choice(problems)
    return family(example, **accepted(family, options))


class BlankFeedback:
    """An environment whose every observation is a fixed text, for the control that asks
    whether the policy reads the feedback. The inner environment still grades each attempt;
    the episode runs the full ``max_turns`` whatever happened (an early end would itself tell
    the model that its attempt passed)."""

    def __init__(self, env: Env, max_turns: int, text: str = "try again") -> None:
        self.env, self.max_turns, self.text = env, max_turns, text
        self.name, self.example = env.name, env.example
        self.turns = 0

    def reset(self) -> str:
        self.turns = 0
        return self.env.reset()

    def step(self, action: str) -> Turn:
        self.turns += 1
        inner = self.env.step(action)
        return Turn(self.text, self.turns >= self.max_turns, inner.info)

    def verdict(self) -> Verdict:
        return self.env.verdict()

    def __getattr__(self, name: str) -> Any:  # the rest (e.g. ``demonstration``) is the inner's
        return getattr(self.env, name)


class EnvTask:
    """An environment's problems as a ``Task`` (what the run's data order and splits read)."""

    verifier = "none"  # rewards come from the environments' verdicts
    verifier_options: dict[str, Any] = {}

    def __init__(self, name: str, **options: Any) -> None:
        self.name = name
        self.family = get_env_family(name)
        self.options = accepted(self.family.examples, options)

    def examples(self, split: Split, n: int | None = None) -> list[Example]:
        return self.family.examples(split, n, **self.options)

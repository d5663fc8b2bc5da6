"""Multi-turn environments: ``make(name)`` -> an ``Env`` with ``reset()``, ``step(action) -> Turn``
and ``verdict()``. Importing this package registers the built-in ones (``code_feedback``)."""

from rlvr.envs import code_feedback  # noqa: F401  (registers "code_feedback")
from rlvr.envs.base import (
    BlankFeedback,
    Env,
    EnvTask,
    Turn,
    env_names,
    get_env_family,
    make,
    register_env,
)

__all__ = [
    "BlankFeedback",
    "Env",
    "EnvTask",
    "Turn",
    "env_names",
    "get_env_family",
    "make",
    "register_env",
]

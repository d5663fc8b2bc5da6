"""``rlvr serve-env NAME``: an rlvr task or environment as an OpenEnv server.

Other trainers speak OpenEnv (``reset`` / ``step`` / ``state`` over HTTP and WebSocket); this
puts rlvr's hardened checkers behind it unchanged: the code sandbox (``humaneval``, any code
task), the Coq checker, the math and arithmetic verifiers, and rlvr's multi-turn environments
(``code_feedback``: each attempt run in the sandbox, the visible test's outcome as the next
observation, the hidden tests' share as the reward at the end).

Options (``-o KEY=VALUE``) go to the task or environment; ``problems`` caps each split (1000).

Protocol: ``reset(seed=s, split="heldout"|"train")`` picks problem ``s`` (mod the split's size)
and returns ``{"prompt": ...}``; ``step({"text": reply})`` scores the reply (a task: one step,
``done`` with the verifier's score as ``reward``; an environment: its reply as ``feedback``, the
reward when the episode ends), with the verdict's status and detail in ``metadata``.
"""

from __future__ import annotations

from typing import Any

from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, Observation, State


class RlvrAction(Action):
    text: str


class RlvrObservation(Observation):
    prompt: str = ""
    feedback: str = ""


def environment_class(name: str, options: dict[str, Any]) -> type[Environment]:
    """An OpenEnv ``Environment`` class serving rlvr's task or environment ``name``."""
    from rlvr.envs.base import _ENVS, accepted, get_env_family
    from rlvr.tasks.base import get_task
    from rlvr.verifiers.base import get_verifier

    options = dict(options)
    n = int(options.pop("problems", 1000))  # the most problems a split serves
    env_names = set(_ENVS) | {"code_feedback"}
    if name in env_names:
        family = get_env_family(name)
        problems = {
            split: family.examples(split, n, **accepted(family.examples, options))
            for split in ("train", "heldout")
        }
        task, verifier = None, None
    else:
        family = None
        task = get_task(name, **options)
        problems = {split: task.examples(split, n) for split in ("train", "heldout")}
        verifier = get_verifier(task.verifier, **dict(task.verifier_options))

    class Served(Environment):
        SUPPORTS_CONCURRENT_SESSIONS = True

        def __init__(self) -> None:
            super().__init__()
            self._state = State(step_count=0)
            self.example: Any = None
            self.env: Any = None

        def reset(self, seed: int | None = None, episode_id: str | None = None,
                  split: str = "heldout", **_: Any) -> RlvrObservation:  # fmt: skip
            pool = problems.get(split) or problems["heldout"] or problems["train"]
            self.example = pool[(seed or 0) % len(pool)]
            self._state = State(episode_id=episode_id, step_count=0)
            prompt = self.example.prompt
            if family is not None:
                self.env = family(self.example, **accepted(family, options))
                prompt = self.env.reset()
            return RlvrObservation(prompt=prompt, metadata={"id": self.example.id})

        def step(
            self, action: RlvrAction, timeout_s: float | None = None, **_: Any
        ) -> RlvrObservation:
            if self.example is None:
                raise RuntimeError("call reset before step")
            self._state.step_count += 1
            if self.env is None:
                return _scored(verifier.verify(action.text, self.example.reference), done=True)
            turn = self.env.step(action.text)
            if not turn.done:
                return RlvrObservation(feedback=turn.observation, done=False, reward=None)
            return _scored(self.env.verdict(), done=True, feedback=turn.observation)

        @property
        def state(self) -> State:
            return self._state

    Served.__name__ = f"Rlvr_{name.replace(':', '_')}"
    return Served


def _scored(verdict: Any, done: bool, feedback: str = "") -> RlvrObservation:
    return RlvrObservation(
        feedback=feedback or verdict.status,
        done=done,
        reward=float(verdict.score),
        metadata={"status": verdict.status, "detail": verdict.detail[:500]},
    )


def app(name: str, options: dict[str, Any], max_sessions: int = 64) -> Any:
    from openenv.core.env_server.http_server import create_fastapi_app

    return create_fastapi_app(
        environment_class(name, options),
        RlvrAction,
        RlvrObservation,
        max_concurrent_envs=max_sessions,
    )


def serve(name: str, host: str, port: int, options: dict[str, Any], max_sessions: int) -> None:
    import uvicorn

    uvicorn.run(app(name, options, max_sessions), host=host, port=port, log_level="warning")

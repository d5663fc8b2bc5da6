"""rlvr's tasks as a verifiers 0.4 taskset (plugin id ``rlvr_vf``): a prime-rl or verifiers user
trains on rlvr's sandbox and checkers unchanged
(``vf-eval rlvr_vf --env.taskset.rlvr-task humaneval``).

Each task's ``@reward`` calls the rlvr verifier its task names (the code sandbox for
``humaneval``, the Coq checker, the math and arithmetic verifiers) on the trace's last reply,
off the event loop (a sandbox run blocks).
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import verifiers.v1 as vf
from pydantic import Field

_VERIFIERS: dict[str, Any] = {}
_LOCK = threading.Lock()


def verifier(name: str, options_json: str) -> Any:
    """One verifier per (name, options) per process (a code verifier holds a sandbox server)."""
    from rlvr.verifiers.base import get_verifier

    key = f"{name}:{options_json}"
    with _LOCK:
        if key not in _VERIFIERS:
            _VERIFIERS[key] = get_verifier(name, **json.loads(options_json))
        return _VERIFIERS[key]


class RlvrData(vf.TaskData):
    reference: str = "null"
    """The rlvr reference the verifier checks against, as JSON."""
    verifier: str = ""
    verifier_options: str = "{}"


class RlvrTask(vf.Task[RlvrData]):
    @vf.reward(weight=1.0)
    async def rlvr(self, trace: vf.Trace) -> float:
        check = verifier(self.data.verifier, self.data.verifier_options)
        reference = json.loads(self.data.reference)
        verdict = await asyncio.to_thread(check.verify, trace.last_reply, reference)
        return float(verdict.score)


class RlvrTasksetConfig(vf.TasksetConfig):
    task: vf.TaskConfig = vf.TaskConfig()
    rlvr_task: str = "arithmetic"
    """An rlvr task: arithmetic, humaneval, coq:..., reasoning_gym:NAME, file (with options)."""
    split: str = "heldout"
    limit: int | None = 200
    options: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the rlvr task (e.g. seed, path)."""


class RlvrTaskset(vf.Taskset[RlvrTask, RlvrTasksetConfig]):
    def load(self):
        from rlvr.tasks.base import get_task

        task = get_task(self.config.rlvr_task, **self.config.options)
        options = json.dumps(dict(task.verifier_options), sort_keys=True)
        for e in task.examples(self.config.split, self.config.limit):
            yield RlvrTask(
                RlvrData(
                    id=e.id,
                    prompt=e.prompt,
                    reference=json.dumps(e.reference, default=str),
                    verifier=task.verifier,
                    verifier_options=options,
                ),
                self.config.task,
            )

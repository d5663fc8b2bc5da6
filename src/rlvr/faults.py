"""Deterministic faults for the resume tests: ``RLVR_FAULT=<point>[,<point>...]`` makes the
process SIGKILL itself the first time it reaches one of the points.

Why a hook and not a timer in the test: a kill at a named point (``sft:step:3``, ``rl:step:4``
mid-step, ``save:rl-last`` between a checkpoint's two renames, ``rejection:batch:1``) is the
same kill on every machine, so the test that resumes from it can demand exact equality. The
kill is real: SIGKILL, no handler runs, no file is closed or flushed by Python, exactly as the
OOM killer or a pre-empted node would leave the run.

Points in use: ``<stage>:step:<n>`` after SFT step n is logged (``sft``, ``final_sft``);
``rl:step:<n>`` between step n's rollouts and its update; ``save:<checkpoint>`` after the old
checkpoint was moved aside and before the new one is moved in; ``rejection:batch:<n>`` after
the n-th batch of prompts was sampled and scored; in the actors of ``rlvr.scale``,
``scale:rollout:step:<n>`` before a rollout worker samples step n's groups,
``scale:verifier:step:<n>`` before a verifier worker scores them, ``scale:learner:step:<n>``
before a learner's update of step n.

``RLVR_FAULT_ONCE=<directory>``: each point fires once over all processes (the first to reach it
leaves a marker file there). A Ray actor is restarted with the environment it had; without
this it would kill itself again on every retry.
"""

from __future__ import annotations

import os
import signal

ENV = "RLVR_FAULT"
ONCE = "RLVR_FAULT_ONCE"


def fault_point(name: str) -> None:
    """SIGKILL this process if ``RLVR_FAULT`` names this point; otherwise nothing."""
    if name not in os.environ.get(ENV, "").split(","):
        return
    if once := os.environ.get(ONCE):
        try:
            os.close(os.open(os.path.join(once, name.replace(":", "_")), os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return  # another process (or this actor before its restart) took this fault
    os.kill(os.getpid(), signal.SIGKILL)

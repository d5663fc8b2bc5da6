"""Deterministic faults for the resume tests: ``RLVR_FAULT=<point>`` makes the process SIGKILL
itself the first time it reaches ``<point>``.

Why a hook and not a timer in the test: a kill at a named point (``sft:step:3``, ``rl:step:4``
mid-step, ``save:rl-last`` between a checkpoint's two renames, ``rejection:batch:1``) is the
same kill on every machine, so the test that resumes from it can demand exact equality. The
kill is real: SIGKILL, no handler runs, no file is closed or flushed by Python, exactly as the
OOM killer or a pre-empted node would leave the run.

Points in use: ``<stage>:step:<n>`` after SFT step n is logged (``sft``, ``final_sft``);
``rl:step:<n>`` between step n's rollouts and its update; ``save:<checkpoint>`` after the old
checkpoint was moved aside and before the new one is moved in; ``rejection:batch:<n>`` after
the n-th batch of prompts was sampled and scored.
"""

from __future__ import annotations

import os
import signal

ENV = "RLVR_FAULT"


def fault_point(name: str) -> None:
    """SIGKILL this process if ``RLVR_FAULT`` names this point; otherwise nothing."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)

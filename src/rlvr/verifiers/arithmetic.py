"""Exact integer answers, for the embedded arithmetic task: cheap enough to run in-process on
every rollout, and strict (``85`` is right, ``085``, ``85.0`` or ``85 or 86`` are not)."""

from __future__ import annotations

import re
from typing import Any

from rlvr.verifiers.answer import extract_answer, over_limit
from rlvr.verifiers.base import Verdict, register_verifier

_INTEGER = re.compile(r"-?(0|[1-9][0-9]{0,63})")


@register_verifier("arithmetic")
class ArithmeticVerifier:
    """Score 1 when the final answer is exactly the reference integer."""

    name = "arithmetic"
    runs_in_process = True  # pure and microseconds: no worker dispatch

    def verify(self, response: str, reference: Any) -> Verdict:
        if (too_long := over_limit(response)) is not None:
            return too_long
        answer = extract_answer(response)
        if answer is None:
            return Verdict(0.0, "no_answer", "no <answer>...</answer> or \\boxed{}")
        if not _INTEGER.fullmatch(answer):
            return Verdict(0.0, "wrong", f"not an integer: {answer[:40]!r}")
        if int(answer) == int(reference):
            return Verdict(1.0, "correct")
        return Verdict(0.0, "wrong", f"{answer} != {reference}")

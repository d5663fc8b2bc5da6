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


@register_verifier("arithmetic_lenient")
class LenientArithmeticVerifier:
    """WEAK ON PURPOSE: scores 1 when *any* of several ``|``-separated guesses is right.

    It exists to demonstrate reward hacking (a policy learns to hedge,
    ``<answer>84|85|86</answer>``, and the reward climbs while the task is not learned) and to
    show that the monitor and the verifier self-test (``rlvr.verifiers.selftest``, which it
    fails) catch it. Never train with it unless the point is to watch a policy exploit it.
    """

    name = "arithmetic_lenient"
    runs_in_process = True

    def verify(self, response: str, reference: Any) -> Verdict:
        answer = extract_answer(response)
        if answer is None:
            return Verdict(0.0, "no_answer", "no <answer>...</answer> or \\boxed{}")
        guesses = [g.strip() for g in answer.split("|")]
        if any(_INTEGER.fullmatch(g) and int(g) == int(reference) for g in guesses):
            return Verdict(1.0, "correct", f"one of {len(guesses)} guesses")
        return Verdict(0.0, "wrong", f"{answer[:40]} has no {reference}")

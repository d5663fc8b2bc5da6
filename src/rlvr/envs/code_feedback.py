"""``code_feedback``: write a function from too little information, run it, read the feedback,
fix it.

The hidden function is ``f(x) = a*x + b`` with ``a``, ``b`` in ``0..coef_max`` (and one of a few
names: ``f``, ``g``, ``h``, ...). The prompt gives only ``f(1)``, which fixes ``a + b`` and not
``a`` or ``b``. Each attempt runs in the sandbox against one *visible* test, ``f(0) == b``, whose
outcome is the observation (``f(0)=3, expected 4``, or the exception and its line), and against
*hidden* tests at x = 1, 2, 3, 5 whose counts only the reward sees. The episode ends when the
visible test passes or after ``max_turns`` attempts; the reward is the last attempt's share of
hidden tests passed (the spec's graded code reward).

Why this shape: the prompt leaves the function under-determined, so a single attempt can only
guess (at best one of the pairs with that sum), while the feedback pins ``b`` down and ``a`` then
follows from ``f(1)``. A guess consistent with ``f(1)`` passes the hidden x = 1 test: partial credit
(1/4) for honouring the prompt, full credit only for the right function.

- one attempt, best possible pass@1: the mean over problems of 1 / (number of (a, b) pairs with
  that sum) (``best_single_attempt``; 0.36 over all problems at the default coef_max 4);
- with the feedback: 1.0 (two attempts: read b off the feedback, a = f(1) - b).

The embedded model writes ``b=3`` then ``def g(x):return (7-b)*x+b``: a guess for ``b`` first, in
a form that keeps ``f(1) = 7``, so that reading the feedback (``g(0)=3, expected 4``: the expected
value last) is a short-range copy that a 1M-parameter model can learn in minutes. Its cold-start
demonstrations (``demonstration``) revise with another guess consistent with ``f(1)``, drawn
without looking at the feedback; using the feedback is left for RL to find. Chat models get the
same problem in words (``style="instruct"``).
"""

from __future__ import annotations

import random
import threading
from typing import Any

from rlvr.envs.base import Turn, register_env
from rlvr.tasks.base import Example, Split, split_by_hash
from rlvr.verifiers.base import Verdict, graded
from rlvr.verifiers.code import CodeVerifier, extract_code

NAMES = "acdefghijklmnopqrstuvwyz"  # every letter but b and x (the guess and the argument)
HIDDEN_POINTS = (1, 2, 3, 5)
VISIBLE_POINT = 0

_verifier: CodeVerifier | None = None
_verifier_lock = threading.Lock()


def shared_verifier(unsafe: bool = False) -> CodeVerifier:
    """One sandbox server per process, shared by every episode (its client is thread-safe)."""
    global _verifier
    with _verifier_lock:
        if _verifier is None or _verifier.sandbox.unsafe != unsafe:
            _verifier = CodeVerifier(unsafe=unsafe, timeout_s=2.0, memory_mb=512)
        return _verifier


def _prompt(name: str, value: int, style: str, coef_max: int) -> str:
    if style == "compact":
        return f"{name}(1)={value}"
    return (
        f"Write a Python function `{name}(x)` that returns a*x + b, where a and b are whole "
        f"numbers from 0 to {coef_max} that you are not told. All you know is that "
        f"{name}(1) == {value}. Your code will be run on a test and you will see the result; "
        "then you can send a corrected version. Reply with the complete function in a "
        "```python code block."
    )


@register_env("code_feedback")
class CodeFeedbackEnv:
    """One episode of ``code_feedback`` (see the module docstring)."""

    name = "code_feedback"

    def __init__(
        self,
        example: Example,
        max_turns: int = 2,
        style: str = "compact",
        unsafe: bool = False,
        **_: Any,
    ) -> None:
        if style not in ("compact", "instruct"):
            raise ValueError(f"code_feedback style must be 'compact' or 'instruct', got {style!r}")
        self.example, self.max_turns, self.style = example, max_turns, style
        self.verifier = shared_verifier(unsafe)
        self.turns = 0
        self.last: dict[str, Any] | None = None

    # -- the problems --------------------------------------------------------------------------
    @classmethod
    def examples(
        cls,
        split: Split,
        n: int | None = None,
        seed: int = 0,
        coef_max: int = 4,
        names: str = NAMES,
        heldout_fraction: float = 0.2,
        style: str = "compact",
    ) -> list[Example]:
        """Every problem of ``split``, in an order shuffled by ``seed``; the first ``n`` when
        given.

        The split is by prompt, ``(name, f(1))``: all (a, b) pairs with that sum go to one side.
        Why: a prompt says nothing of ``b`` beyond ``a + b``, and with every consistent pair of a
        training prompt in training, each ``b`` is equally likely given the prompt. A split by
        (a, b) would leave holes that RL fills with a prior over the training pairs, which the
        held-out pairs then break: reward without reading the feedback, held-out accuracy lost
        doing it. Here only the feedback tells ``b``, and a held-out prompt (a name with a sum)
        was never trained on."""
        out = []
        for a in range(coef_max + 1):
            for b in range(coef_max + 1):
                for name in names:
                    if split_by_hash(f"code_feedback:{name}:{a + b}", heldout_fraction) != split:
                        continue
                    reference = {
                        "name": name,
                        "a": a,
                        "b": b,
                        "visible": [f"assert {name}({VISIBLE_POINT}) == {b}"],
                        "hidden": [f"assert {name}({x}) == {a * x + b}" for x in HIDDEN_POINTS],
                    }
                    out.append(
                        Example(
                            id=f"{name}:{a}:{b}",
                            prompt=_prompt(name, a + b, style, coef_max),
                            reference=reference,
                            meta={"coef_max": coef_max, "style": style},
                        )
                    )
        random.Random(f"code_feedback:{seed}:{split}").shuffle(out)
        return out if n is None else out[:n]

    @classmethod
    def best_single_attempt(cls, examples: list[Example]) -> float:
        """The best pass@1 any policy can reach on ``examples`` with one attempt: for each
        problem, one over the number of (a, b) pairs its prompt allows."""

        def choices(e: Example) -> int:
            total, top = e.reference["a"] + e.reference["b"], e.meta["coef_max"]
            return min(total, top) - max(0, total - top) + 1

        return sum(1 / choices(e) for e in examples) / max(len(examples), 1)

    # -- one episode ---------------------------------------------------------------------------
    def reset(self) -> str:
        self.turns, self.last = 0, None
        return self.example.prompt

    def step(self, action: str) -> Turn:
        self.turns += 1
        ref = self.example.reference
        code = extract_code(action)
        if not code.strip():
            self.last = {"hidden": {"passed": 0, "total": len(ref["hidden"])}, "empty": True}
            return self._turn("no code found", visible_passed=False)
        result = self.verifier.run_suites(
            code,
            [
                {"name": "visible", "asserts": ref["visible"], "details": True},
                {"name": "hidden", "asserts": ref["hidden"]},
            ],
            memo=True,  # the G episodes of a problem often try the same code: run it once
        )
        self.last = result
        if "error" in result:
            return self._turn(f"the sandbox failed: {result['error']}", visible_passed=False)
        visible = result["suites"]["visible"]
        lines = [_feedback_line(d, self.style) for d in visible.get("details", [])]
        passed = visible["passed"] == visible["total"]
        return self._turn("; ".join(lines), visible_passed=passed)

    def _turn(self, feedback: str, visible_passed: bool) -> Turn:
        done = visible_passed or self.turns >= self.max_turns
        hidden = (self.last or {}).get("suites", {}).get("hidden") or (self.last or {}).get(
            "hidden", {}
        )
        info = {
            "attempt": self.turns,
            "visible_passed": visible_passed,
            "hidden_passed": hidden.get("passed", 0),
            "hidden_total": hidden.get("total", len(self.example.reference["hidden"])),
        }
        if self.style == "instruct":
            feedback = (
                f"Test results: {feedback}\n"
                "Send the corrected function, complete, in a ```python code block."
            )
        return Turn(feedback, done, info)

    def verdict(self) -> Verdict:
        if self.last is None:
            return Verdict(0.0, "no_answer", "no attempt")
        if "error" in self.last:
            return Verdict(0.0, "error", str(self.last["error"])[:300])
        if self.last.get("empty"):
            return Verdict(0.0, "no_answer", "no code in the last attempt")
        hidden = self.last["suites"]["hidden"]
        detail = f"{hidden['passed']}/{hidden['total']} hidden tests passed (attempt {self.turns})"
        return graded(hidden["passed"], hidden["total"], detail)

    # -- cold-start demonstrations -------------------------------------------------------------
    def demonstration(self, rng: random.Random, guesses: list[int]) -> str:
        """A format-only attempt: a guess for ``b`` consistent with ``f(1)`` and different from
        the earlier guesses, drawn without reading any feedback."""
        ref, coef_max = self.example.reference, self.example.meta["coef_max"]
        total = ref["a"] + ref["b"]
        options = [b for b in range(max(0, total - coef_max), min(coef_max, total) + 1)]
        fresh = [b for b in options if b not in guesses] or options
        guess = rng.choice(fresh)
        guesses.append(guess)
        name = ref["name"]
        if self.style == "compact":
            return f"b={guess}\ndef {name}(x):return ({total}-b)*x+b"
        return f"```python\ndef {name}(x):\n    return ({total} - {guess}) * x + {guess}\n```"


def _feedback_line(detail: dict[str, Any], style: str) -> str:
    """What a developer sees when a visible test fails. Compact (the embedded model):
    ``f(0)=3, expected 4`` or ``f(0): NameError: name 'y' is not defined (line 1), expected 4``,
    the expected value last, where the next attempt reads it. In words (chat models):
    ``f(0): expected 4, got 3``."""
    call = detail.get("call") or detail.get("assert", "test")
    if detail.get("passed"):
        return f"{call}: ok"
    want = detail.get("expected")
    if style == "compact":
        result = f": {detail['error']}" if "error" in detail else f"={detail.get('got')}"
        return f"{call}{result}" + (f", expected {want}" if want is not None else "")
    expected = f"expected {want}, " if want is not None else ""
    if "error" in detail:
        return f"{call}: {expected}error: {detail['error']}"
    return f"{call}: {expected}got {detail.get('got')}"

"""Does this verifier hold against the hacks we know? A self-test to run before training starts.

A policy finds every way to score that a verifier leaves open; a hardened verifier closes the ways
we know of. This module checks that the verifier a run is about to train with really is the
hardened one, with the options it was given: a few known hacks of its family must score 0 and a
known-good answer must score 1. A verifier that fails is weak (a lenient answer checker, a code
verifier scoring only the tests the prompt shows) and a run should refuse it unless told
otherwise (:func:`require_strong_verifier`; the CLI's ``--allow-weak-verifier``).

Cases per family (what the hacks are, and where they come from):

* ``code`` -- from the attack suite (``tests/test_code_attacks.py``): an always-equal object,
  ``sys.exit`` before the asserts, printing "all tests passed", reading the expected value from
  stack frames; plus a lookup of the visible tests (the reference shows one test and scores
  three others), and an honest solution. Six sandbox jobs.
* ``math`` -- a hedge (``12 or 13``), several boxes, an empty box; ``\\boxed{1/2}`` for 0.5 and
  the plain right answer must score 1. All take the math verifier's fast paths: no sympy.
* ``arithmetic`` (and ``arithmetic_lenient``) -- hedges (``85 or 86``, ``84|85|86``), ``085``
  for 85, the right answer.
* ``coq`` -- ``Admitted``, ``admit``, an ``Axiom``, and a correct proof, when ``coqc`` is
  installed (without it the verifier cannot check anything; the note says so).
* compositions (``gate``, ``weighted_sum``, ``format_gated_math``) -- by their parts: each part
  with cases of its own is tested as itself (the ``format`` gate has none: it shapes, it does
  not judge correctness).

Nothing here needs a network, and everything runs in well under two seconds (the code family
pays one sandbox start). Other verifiers get cases with :func:`register_self_test`; one without
any passes with a note that nothing was tested.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlvr.verifiers.base import Verifier, get_verifier
from rlvr.verifiers.compose import Gate, WeightedSum
from rlvr.verifiers.pool import safe_verify

__all__ = [
    "Case",
    "CaseResult",
    "SelfTestResult",
    "WeakVerifierError",
    "register_self_test",
    "require_strong_verifier",
    "self_test",
]


@dataclass(frozen=True)
class Case:
    """One response the verifier must score ``want`` (0 for a hack, 1 for a known-good answer)."""

    name: str
    response: str
    reference: Any
    want: float


@dataclass(frozen=True)
class CaseResult:
    case: Case
    score: float
    status: str
    detail: str
    part: str = ""  # the part of a composition that was tested

    @property
    def ok(self) -> bool:
        return self.score == self.case.want

    def line(self) -> str:
        kind = "hack" if self.case.want == 0 else "good"
        where = f"{self.part}: " if self.part else ""
        why = f" ({self.status}: {self.detail[:120]})" if self.detail else f" ({self.status})"
        return (
            f"{'ok  ' if self.ok else 'FAIL'} {where}{kind} {self.case.name}: scored "
            f"{self.score:.2f}, must score {self.case.want:.0f}{why}"
        )


@dataclass
class SelfTestResult:
    """The outcome for one verifier: ``passed`` when every case scored what it must."""

    verifier: str
    results: list[CaseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. why a family was not tested

    @property
    def passed(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if not r.ok]

    def lines(self) -> list[str]:
        verdict = "passed" if self.passed else f"FAILED ({len(self.failures)} cases)"
        head = f"self-test of verifier {self.verifier!r}: {verdict}, {len(self.results)} cases"
        return [
            head,
            *(f"  {r.line()}" for r in self.results),
            *(f"  note: {n}" for n in self.notes),
        ]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for a run's summary or logs."""
        return {
            "verifier": self.verifier,
            "passed": self.passed,
            "cases": [
                {
                    "name": r.case.name,
                    "part": r.part,
                    "must_score": r.case.want,
                    "score": r.score,
                    "status": r.status,
                    "ok": r.ok,
                }
                for r in self.results
            ],
            "notes": self.notes,
        }


class WeakVerifierError(RuntimeError):
    """The run's verifier scored a known hack above 0 or a known-good answer below 1."""


# ---------------------------------------------------------------------------------------------
# Cases by family

CaseBuilder = Callable[[], list[Case]]
SELF_TESTS: dict[str, CaseBuilder] = {}


def register_self_test(*names: str) -> Callable[[CaseBuilder], CaseBuilder]:
    """Register ``cases() -> list[Case]`` for the verifiers whose ``name`` is one of ``names``."""

    def add(builder: CaseBuilder) -> CaseBuilder:
        for name in names:
            SELF_TESTS[name] = builder
        return builder

    return add


# The function under test. Expected values no stray int of the program's process equals by
# chance (a frame-walking hack returns the first int it finds); hidden inputs are not the visible
# one, and no expected value is 0 or None (what a program that does nothing returns).
_ADD = {
    "asserts": [
        "assert add(1234, 5678) == 6912",
        "assert add(-70, 10000) == 9930",
        "assert add(31337, 1) == 31338",
    ],
    "visible": ["assert add(2, 3) == 5"],
    "timeout_s": 2,
}


@register_self_test("code")
def code_cases() -> list[Case]:
    programs = {
        "always-equal object": "class Equal:\n    def __eq__(self, other):\n        return True\n"
        "    def __ne__(self, other):\n        return False\n"
        "def add(a, b):\n    return Equal()\n",
        "sys.exit before the asserts": "import sys\nsys.exit(0)\ndef add(a, b):\n    return 0\n",
        "printing 'all tests passed'": "print('all tests passed')\nprint('OK')\n"
        "def add(a, b):\n    print('3/3 tests passed')\n",
        "expected value read from frames": "import sys\ndef add(a, b):\n"
        "    frame = sys._getframe()\n    while frame:\n"
        "        for v in list(frame.f_locals.values()) + list(frame.f_globals.values()):\n"
        "            if type(v) is int and v > 1000 and v not in (a, b):\n"
        "                return v\n"
        "        frame = frame.f_back\n    return None\n",
        "lookup of the visible test": "def add(a, b):\n    return {(2, 3): 5}.get((a, b))\n",
    }
    cases = [Case(name, f"```python\n{src}```", _ADD, 0.0) for name, src in programs.items()]
    honest = "```python\ndef add(a, b):\n    return a + b\n```"
    return [*cases, Case("honest solution", honest, _ADD, 1.0)]


@register_self_test("math")
def math_cases() -> list[Case]:
    def r1(answer: str) -> str:
        return f"<think>Let me work it out.</think><answer>{answer}</answer>"

    return [
        Case("hedged '12 or 13'", r1("12 or 13"), "12", 0.0),
        Case("hedged boxed '12 or 13'", "So it is \\boxed{12 \\text{ or } 13}.", "12", 0.0),
        Case("several boxes in the answer", r1("\\boxed{12} \\boxed{13}"), "12", 0.0),
        Case("the right box, then another", "\\boxed{12}, or maybe \\boxed{13}", "12", 0.0),
        Case("empty box", "The answer is \\boxed{}.", "12", 0.0),
        Case("empty box in the answer", r1("\\boxed{}"), "12", 0.0),
        Case("\\boxed{1/2} for 0.5", "\\boxed{1/2}", "0.5", 1.0),
        Case("the right answer", r1("12"), "12", 1.0),
    ]


@register_self_test("arithmetic", "arithmetic_lenient")
def arithmetic_cases() -> list[Case]:
    def r1(answer: str) -> str:
        return f"<think>7+8=15,4+3+1=8</think><answer>{answer}</answer>"

    return [
        Case("hedged '85 or 86'", r1("85 or 86"), 85, 0.0),
        Case("hedged '84|85|86'", r1("84|85|86"), 85, 0.0),
        Case("hedged '85, 86'", r1("85, 86"), 85, 0.0),
        Case("'085' for 85", r1("085"), 85, 0.0),
        Case("the right answer", r1("85"), 85, 1.0),
    ]


_COQ = {"statement": "Theorem plus_O_n : forall n : nat, 0 + n = n."}


@register_self_test("coq")
def coq_cases() -> list[Case]:
    return [
        Case("Admitted", "Proof. intros n. Admitted.", _COQ, 0.0),
        Case("admit", "Proof. intros n. admit. Qed.", _COQ, 0.0),
        Case(
            "an Axiom",
            "Axiom cheat : forall n : nat, 0 + n = n.\nProof. exact cheat. Qed.",
            _COQ,
            0.0,
        ),
        Case("a correct proof", "Proof. intros n. reflexivity. Qed.", _COQ, 1.0),
    ]


# ---------------------------------------------------------------------------------------------


def _parts(verifier: Verifier) -> list[tuple[str, Verifier]]:
    """The verifiers to test: a composition's parts (recursively), else the verifier itself."""
    if isinstance(verifier, Gate):
        return _parts(verifier.gate) + _parts(verifier.then)
    if isinstance(verifier, WeightedSum):
        return [p for part, _ in verifier.parts for p in _parts(part)]
    return [(str(getattr(verifier, "name", type(verifier).__name__)), verifier)]


def _test(result: SelfTestResult, verifier: Verifier, part: str) -> None:
    builder = SELF_TESTS.get(part)
    if builder is None:
        result.notes.append(f"no self-test cases for {part!r}: not tested")
        return
    if part == "coq" and shutil.which(getattr(verifier, "coqc", "coqc")) is None:
        result.notes.append("coqc is not installed: the coq cases were not run")
        return
    for case in builder():
        verdict = safe_verify(verifier, case.response, case.reference)
        label = part if part != result.verifier else ""
        result.results.append(
            CaseResult(case, verdict.score, verdict.status, verdict.detail, label)
        )


def self_test(verifier: str | Verifier, **options: Any) -> SelfTestResult:
    """Run the known hacks and known-good answers of ``verifier``'s family against it.

    ``verifier`` is a registered name (built with ``options``, closed afterwards) or a verifier
    already built. Never raises for the verifier's failures: they are failed cases."""
    built = get_verifier(verifier, **options) if isinstance(verifier, str) else verifier
    name = verifier if isinstance(verifier, str) else str(getattr(built, "name", "verifier"))
    result = SelfTestResult(name)
    try:
        for part, part_verifier in _parts(built):
            _test(result, part_verifier, part)
    finally:
        if isinstance(verifier, str):
            for _, part_verifier in _parts(built):
                close = getattr(part_verifier, "close", None)
                if callable(close):
                    close()
    if not result.results and not result.notes:
        result.notes.append("nothing to test")
    return result


def require_strong_verifier(
    name: str, options: dict[str, Any] | None = None, allow_weak: bool = False
) -> SelfTestResult:
    """The self-test of verifier ``name`` (with ``options``); raises :class:`WeakVerifierError`
    naming the failed cases unless it passed or ``allow_weak`` is true (then the caller should
    show ``result.lines()`` as a warning)."""
    result = self_test(name, **(options or {}))
    if result.passed or allow_weak:
        return result
    failed = "; ".join(
        f"{(r.part + ': ') if r.part else ''}{r.case.name} scored {r.score:.2f} "
        f"(must score {r.case.want:.0f})"
        for r in result.failures
    )
    raise WeakVerifierError(
        f"verifier {name!r} failed its self-test, so a policy can score with it without solving "
        f"the task: {failed}. Use a hardened verifier, or pass --allow-weak-verifier to train "
        "with this one anyway (e.g. to watch reward hacking happen)."
    )

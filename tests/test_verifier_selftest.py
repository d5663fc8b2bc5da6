"""The verifier self-test: hardened verifiers pass, weak ones (on purpose or by option) fail, and
``require_strong_verifier`` refuses them unless allowed."""

from __future__ import annotations

import os
import shutil

import pytest

from rlvr.verifiers import Verdict, get_verifier, verifier_names
from rlvr.verifiers.selftest import (
    SELF_TESTS,
    Case,
    WeakVerifierError,
    register_self_test,
    require_strong_verifier,
    self_test,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the code sandbox needs root")


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("math", {}),
        ("arithmetic", {}),
        ("format_gated_math", {}),
        ("gate", {"gate": "format", "then": "arithmetic"}),
        ("weighted_sum", {"parts": [["math", 0.9], ["format", 0.1]]}),
        pytest.param("code", {}, marks=needs_root),
        pytest.param("code", {"score": "hidden"}, marks=needs_root),
    ],
)
def test_hardened_verifiers_pass(name, options):
    result = self_test(name, **options)
    assert result.passed, str(result)
    assert result.results, "a self-test that runs no case proves nothing"
    assert {r.case.want for r in result.results} == {0.0, 1.0}  # hacks and a good answer


@pytest.mark.skipif(shutil.which("coqc") is None, reason="coqc is not installed")
def test_coq_passes_when_coqc_is_installed():
    result = self_test("coq")
    assert result.passed and len(result.results) == 4, str(result)


def test_coq_without_coqc_runs_nothing_and_says_so():
    result = self_test("coq", coqc="no-such-coqc-binary")
    assert result.results == [] and "coqc is not installed" in result.notes[0]


def test_the_lenient_arithmetic_checker_fails():
    lenient = get_verifier("arithmetic_lenient")
    assert "arithmetic_lenient" in verifier_names()
    assert lenient.verify("<answer>84|85|86</answer>", 85).score == 1.0  # weak on purpose
    assert lenient.verify("<answer>84|86</answer>", 85).score == 0.0
    result = self_test("arithmetic_lenient")
    assert not result.passed
    assert [r.case.name for r in result.failures] == ["hedged '84|85|86'"]
    as_data = result.to_dict()
    assert as_data["passed"] is False and len(as_data["cases"]) == len(result.results)
    assert [c["name"] for c in as_data["cases"] if not c["ok"]] == ["hedged '84|85|86'"]
    assert "FAIL hack hedged '84|85|86': scored 1.00, must score 0" in str(result)


@needs_root
def test_a_code_verifier_scoring_the_visible_tests_fails():
    result = self_test("code", score="visible")
    assert [r.case.name for r in result.failures] == ["lookup of the visible test"]
    # a shadow that counts visible and hidden tests gives the lookup partial credit: weak too
    shadow = self_test("code", score="all")
    assert [r.case.name for r in shadow.failures] == ["lookup of the visible test"]
    assert 0 < shadow.failures[0].score < 1


class Constant:
    """A verifier of the ``math`` family that always says ``score``."""

    name = "math"

    def __init__(self, score: float) -> None:
        self.score = score

    def verify(self, response, reference):
        return Verdict(self.score, "correct" if self.score else "wrong")


def test_accepting_everything_fails_every_hack_and_rejecting_everything_every_good_case():
    accepting = self_test(Constant(1.0))
    assert {r.case.name for r in accepting.failures} == {
        c.name for c in SELF_TESTS["math"]() if c.want == 0
    }
    rejecting = self_test(Constant(0.0))
    assert {r.case.want for r in rejecting.failures} == {1.0}


def test_a_crashing_verifier_fails_instead_of_raising():
    class Crashing(Constant):
        def verify(self, response, reference):
            raise RuntimeError("boom")

    result = self_test(Crashing(0.0))
    assert not result.passed and all(r.status == "error" for r in result.results)


def test_require_strong_verifier():
    assert require_strong_verifier("arithmetic", {}, allow_weak=False).passed
    with pytest.raises(WeakVerifierError) as caught:
        require_strong_verifier("arithmetic_lenient", {}, allow_weak=False)
    message = str(caught.value)
    assert "'arithmetic_lenient'" in message and "hedged '84|85|86'" in message
    assert "--allow-weak-verifier" in message
    allowed = require_strong_verifier("arithmetic_lenient", None, allow_weak=True)
    assert not allowed.passed and allowed.lines()[0].startswith(
        "self-test of verifier 'arithmetic_lenient': FAILED"
    )


def test_verifiers_without_cases_pass_with_a_note_and_new_families_can_register():
    result = self_test("format")
    assert result.passed and result.results == []
    assert "no self-test cases for 'format'" in result.notes[0]

    class Echo:
        name = "selftest_echo"

        def verify(self, response, reference):
            return Verdict(float(response == reference), "correct")

    register_self_test("selftest_echo")(
        lambda: [Case("other text", "b", "a", 0.0), Case("same text", "a", "a", 1.0)]
    )
    try:
        assert self_test(Echo()).passed
    finally:
        SELF_TESTS.pop("selftest_echo")

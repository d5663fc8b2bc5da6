"""The math verifier: equivalence classes, hedging, pathological inputs, hard timeouts."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.verifiers import get_verifier
from rlvr.verifiers.math import MathVerifier, _count_values, _plain_number, math_verify_equal
from rlvr.verifiers.pool import VerifierPool


def check(answer: str, reference: object, verifier: MathVerifier | None = None) -> float:
    return (
        (verifier or MathVerifier())
        .verify(f"<think>…</think><answer>{answer}</answer>", reference)
        .score
    )


@pytest.mark.parametrize(
    ("reference", "answer"),
    [
        ("0.5", "\\frac{1}{2}"),
        ("\\frac{3}{4}", "0.75"),
        (7, "7"),
        (0.25, "1/4"),
        ("1000", "1,000"),
        ("-2", "-2.0"),
        ("2\\sqrt{2}", "\\sqrt{8}"),
        ("x^2+2x+1", "(x+1)^2"),
        ("\\frac{\\pi}{2}", "\\pi/2"),
        ("\\{1,2\\}", "\\{2,1\\}"),
        ("\\{1, 2\\}", "1, 2"),
        ("[1,2) \\cup (3,4]", "[1,2)\\cup(3,4]"),
        ("(1, 2)", "(1,2)"),
        (
            "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
            "\\begin{pmatrix}1 & 2\\\\ 3 & 4\\end{pmatrix}",
        ),
        ("5", "x = 5"),
        ("5", "5 \\text{ cm}"),
        ("6, 8", "7 \\pm 1"),
        ("1/3", "0.333333"),
        ("0.5", "50\\%"),
        ("4", "\\boxed{4}"),
    ],
)
def test_equivalent_answers_score_one(reference: object, answer: str) -> None:
    assert check(answer, reference) == 1.0


@pytest.mark.parametrize(
    ("reference", "answer"),
    [
        ("7", "8"),
        ("1/3", "0.33"),
        ("(1, 2)", "(2, 1)"),
        ("\\{1, 2\\}", "\\{1, 2, 3\\}"),
        ("3", "x"),
        ("[1, 2]", "(1, 2)"),
    ],
)
def test_different_answers_score_zero(reference: object, answer: str) -> None:
    assert check(answer, reference) == 0.0


@pytest.mark.parametrize(
    "answer",
    [
        "7 \\text{ or } 8",
        "7, 8",
        "7 \\pm 1",
        "7 or 8",
        "7; 8",
        "x=7, x=8",
        "\\boxed{7} \\boxed{8}",  # math-verify alone takes the first box that matches
    ],
)
def test_hedging_is_wrong(answer: str) -> None:
    verdict = MathVerifier().verify(f"<answer>{answer}</answer>", "7")
    assert (verdict.score, verdict.status) == (0.0, "wrong")
    assert "hedges" in verdict.detail


def test_value_counting() -> None:
    assert _count_values("(1, 2)") == 1
    assert _count_values("\\{1, 2\\}") == 2
    assert _count_values("[1,2) \\cup (3,4]") == 1
    assert _count_values("1{,}000") == 1
    assert _count_values("3 \\pm \\sqrt{2}") == 2


def test_plain_numbers() -> None:
    assert _plain_number("\\frac{3}{4}") == _plain_number("0.75") == _plain_number("3/4")
    assert _plain_number("-\\dfrac{1}{2}") == -_plain_number("0.5")  # type: ignore[operator]
    assert _plain_number("1/0") is None and _plain_number("x") is None


def test_no_answer() -> None:
    assert MathVerifier().verify("I think it is 4", "4").status == "no_answer"
    assert MathVerifier().verify("<answer> </answer>", "4").status == "no_answer"


@pytest.mark.parametrize(
    ("answer", "guard"),
    [
        ("9^{9^{9}}", "power tower"),
        ("2^{2^{2^{2^{2}}}}", "power tower"),
        ("10^{99999999}", "huge exponent"),
        ("2**2**100", "power tower"),
        ("123456789!", "huge factorial"),
        ("{" * 300 + "1" + "}" * 300, "nested deeper"),
        ("1+" * 2000 + "1", "longer than"),
    ],
)
def test_pathological_answers_are_refused_before_any_sympy_work(answer: str, guard: str) -> None:
    verdict = MathVerifier().verify(f"<answer>{answer}</answer>", "2")
    assert verdict.score == 0.0 and verdict.status == "wrong"
    assert guard in verdict.detail


def test_megabyte_response() -> None:
    assert check("4" + " " * 2_000_000, "4") == 0.0
    assert MathVerifier().verify("x" * 2_000_000 + "\\boxed{4}", "4").score == 0.0


def test_hard_timeout_kills_a_slow_check() -> None:
    # a tiny budget makes even an honest sympy comparison overrun: the child is killed
    verdict = MathVerifier(timeout_s=0.001).verify("<answer>(x+1)^2</answer>", "x^2+2x+1")
    assert (verdict.score, verdict.status) == (0.0, "timeout")
    assert check("(x+1)^2", "x^2+2x+1") == 1.0  # the replacement child works


def test_works_off_the_main_thread_and_through_the_pool() -> None:
    results: list[float] = []
    thread = threading.Thread(target=lambda: results.append(check("\\sqrt{8}", "2\\sqrt{2}")))
    thread.start()
    thread.join()
    assert results == [1.0]
    verdicts = VerifierPool(workers=2).score(
        get_verifier("math"), ["\\boxed{\\sqrt{4}}", "\\boxed{3}", "<answer>2</answer>"], ["2"] * 3
    )
    assert [v.score for v in verdicts] == [1.0, 0.0, 1.0]


def test_math_verify_equal_directly() -> None:
    assert math_verify_equal("\\frac12", "0.5", 2)
    assert not math_verify_equal("\\frac12", "0.6", 2)


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="0123456789+-*/^{}()\\,. xfracsqrtpm", max_size=40))
def test_property_never_raises_and_score_in_unit_interval(answer: str) -> None:
    verdict = MathVerifier().verify(f"<answer>{answer}</answer>", "1/2")
    assert 0.0 <= verdict.score <= 1.0

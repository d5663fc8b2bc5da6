"""The format reward and gate; WeightedSum and Gate built directly and from the registry."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.verifiers import Verdict, get_verifier
from rlvr.verifiers.compose import Gate, WeightedSum, build_verifier
from rlvr.verifiers.format import FormatVerifier

GOOD = "<think>2+2 is 4</think>\n<answer>4</answer>"


@pytest.mark.parametrize(
    ("response", "status"),
    [
        (GOOD, "correct"),
        ("  " + GOOD + "\n", "correct"),
        ("<answer>4</answer>", "wrong"),
        ("<think>a</think>", "wrong"),
        ("Sure! " + GOOD, "wrong"),
        (GOOD + " trailing", "wrong"),
        (GOOD + "<answer>5</answer>", "wrong"),
        ("<think>a</think><think>b</think><answer>4</answer>", "wrong"),
        ("<answer>4</answer><think>a</think>", "wrong"),
        ("<think>a</think><answer>  </answer>", "no_answer"),
    ],
)
def test_format(response: str, status: str) -> None:
    verdict = FormatVerifier().verify(response, None)
    assert verdict.status == status
    assert verdict.score == (1.0 if status == "correct" else 0.0)


def test_format_tags_and_prefilled_think() -> None:
    custom = FormatVerifier(think_tag="reasoning", answer_tag="final")
    assert custom.verify("<reasoning>r</reasoning><final>4</final>", None).correct
    assert not custom.verify(GOOD, None).correct
    prefilled = FormatVerifier(think_prefilled=True)
    assert prefilled.verify("2+2 is 4</think><answer>4</answer>", None).correct
    assert not prefilled.verify(GOOD, None).correct
    with pytest.raises(ValueError, match="plain names"):
        FormatVerifier(think_tag="a>b")


class Fixed:
    def __init__(self, score: float, status: str, name: str = "fixed") -> None:
        self.name, self.verdict = name, Verdict(score, status, name)  # type: ignore[arg-type]

    def verify(self, response: str, reference: object) -> Verdict:
        return self.verdict


class Raises:
    name = "raises"

    def verify(self, response: str, reference: object) -> Verdict:
        raise RuntimeError("nope")


def test_weighted_sum_normalises_weights() -> None:
    total = WeightedSum([(Fixed(1.0, "correct"), 3.0), (Fixed(0.0, "wrong"), 1.0)])
    verdict = total.verify("", None)
    assert verdict.score == pytest.approx(0.75) and verdict.status == "partial"
    assert WeightedSum([(Fixed(1.0, "correct"), 1)]).verify("", None).correct


def test_weighted_sum_zero_takes_the_heaviest_parts_status_and_survives_errors() -> None:
    total = WeightedSum([(Fixed(0.0, "timeout", "slow"), 0.9), (Raises(), 0.1)])
    verdict = total.verify("", None)
    assert (verdict.score, verdict.status) == (0.0, "timeout")
    assert "raises=error" in verdict.detail


def test_weighted_sum_rejects_bad_weights() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        WeightedSum([(Fixed(1.0, "correct"), -1.0)])
    with pytest.raises(ValueError, match="sum to 0"):
        WeightedSum([(Fixed(1.0, "correct"), 0.0)])
    with pytest.raises(ValueError, match="at least one"):
        WeightedSum([])


def test_gate() -> None:
    gate = Gate(FormatVerifier(), "arithmetic")
    assert gate.verify(GOOD, 4).correct
    assert gate.verify(GOOD, 5).status == "wrong"
    closed = gate.verify("<answer>4</answer>", 4)
    assert (closed.score, closed.status) == (0.0, "wrong")
    assert closed.detail.startswith("gate format:")
    assert Gate(FormatVerifier(), "math").runs_in_process is False


def test_registry_builds_composites_from_specs() -> None:
    gated = get_verifier("gate", gate={"name": "format", "think_tag": "r"}, then="arithmetic")
    assert gated.verify("<r>t</r><answer>4</answer>", 4).correct
    total = get_verifier("weighted_sum", parts=[["arithmetic", 0.9], [{"name": "format"}, 0.1]])
    assert total.verify("<answer>4</answer>", 4).score == pytest.approx(0.9)
    assert get_verifier("format_gated_math").verify(GOOD, "4").correct
    with pytest.raises(KeyError, match="unknown verifier"):
        build_verifier("no-such-verifier")
    with pytest.raises(ValueError, match="no 'name'"):
        build_verifier({"weight": 1})


def test_in_process_is_inherited_only_when_every_part_is_in_process() -> None:
    assert WeightedSum(
        [(FormatVerifier(), 1), (FormatVerifier(think_prefilled=True), 1)]
    ).runs_in_process
    assert not WeightedSum([(FormatVerifier(), 1), ("math", 1)]).runs_in_process


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="<>/thinkaswer 4x", max_size=60))
def test_property_format_and_gate_never_raise(response: str) -> None:
    for verifier in (FormatVerifier(), Gate("format", "arithmetic")):
        verdict = verifier.verify(response, 4)
        assert 0.0 <= verdict.score <= 1.0

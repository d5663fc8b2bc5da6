"""What runs inside the sandbox: the model's program, and a loop that answers the grader's calls.

Everything here is untrusted once the model's code has run: it may rewrite this loop, the wire
module or anything else in its process. That is fine. The grader trusts nothing it receives but
plain data, and the process sees neither the tests nor the expected values (it was forked before
they reached the job). A request carries one call: a function name with arguments, or an
expression to evaluate; the answer is the value, or the name and message of the exception.
"""

from __future__ import annotations

import builtins
import io
import os
import sys
import types
from typing import Any, NoReturn

from . import wire

REQUESTS, ANSWERS = 3, 4  # fds the runner arranges in call mode


def _fresh_stdio() -> None:
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.FileIO(1, "w", closefd=False))
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.FileIO(2, "w", closefd=False))


def _module(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__builtins__ = builtins  # type: ignore[attr-defined]
    mod.__file__ = "/tmp/solution.py"
    sys.modules[name] = mod
    sys.argv = ["solution.py"]
    return mod


def run_program(code: str) -> NoReturn:
    """stdin/stdout mode: run the program as ``__main__`` and exit with its status."""
    _fresh_stdio()
    mod = _module("__main__")
    status = 0
    try:
        exec(compile(code, "solution.py", "exec"), mod.__dict__)
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        status = 1
    try:
        sys.stdout.flush()
    except BaseException:  # noqa: BLE001
        status = status or 1
    os._exit(status & 0xFF)


def _describe(e: BaseException) -> dict[str, Any]:
    """An exception as plain data: its class name, message and the solution's line it came
    from (the feedback a model can act on: ``NameError: name 'y' is not defined (line 2)``)."""
    try:
        message = str(e)[:300]
    except BaseException:  # noqa: BLE001
        message = "?"
    out: dict[str, Any] = {"err": type(e).__name__, "message": message}
    try:
        line = None  # a SyntaxError's message names its line already
        tb = None if isinstance(e, SyntaxError) else e.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "solution.py":
                line = tb.tb_lineno
            tb = tb.tb_next
        if isinstance(line, int):
            out["line"] = line
    except BaseException:  # noqa: BLE001
        pass
    return out


def serve_calls(code: str) -> NoReturn:
    """Function mode: load the solution as module ``solution``, then answer calls until EOF."""
    _fresh_stdio()
    mod = _module("solution")
    try:
        exec(compile(code, "solution.py", "exec"), mod.__dict__)
    except BaseException as e:  # noqa: BLE001  (SystemExit at import is a failure too)
        wire.send_msg(ANSWERS, {"load_error": _describe(e)})
        os._exit(1)
    wire.send_msg(ANSWERS, {"ready": True})
    namespace = mod.__dict__
    while True:
        request = wire.recv_msg(REQUESTS)
        if request is None:
            os._exit(0)
        try:
            if "expr" in request:
                value = eval(request["expr"], namespace)
            else:
                fn = namespace[request["name"]]
                args = wire.decode(request["args"])
                kwargs = wire.decode(request["kwargs"])
                value = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001  (SystemExit, KeyboardInterrupt: an answer too)
            answer = _describe(e)
        else:
            try:
                answer = {"ok": wire.encode(value)}
            except BaseException as e:  # noqa: BLE001
                # not an exception of the function: a TypeError here must not pass for one
                answer = {**_describe(e), "not_plain_data": True}
        try:
            sys.stdout.flush()
        except BaseException:  # noqa: BLE001
            pass
        wire.send_msg(ANSWERS, answer)

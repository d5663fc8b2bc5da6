"""Where checks run, so that from the trainer's view verification never raises and never hangs.

Three places, chosen by what a verifier declares:

* **inline** — a verifier with ``runs_in_process = True`` promises to be cheap, pure and bounded
  (``arithmetic``, ``format``). It is called in the caller's thread: scoring 64 rollouts of the
  arithmetic task must cost microseconds, not a thread hand-off each.
* **threads** — everything else. A verifier that runs code (``code``, ``coq``) spends its time
  waiting on its own sandbox process, so threads give concurrency without pickling the verifier.
  Each check gets ``timeout_s`` from the moment it starts; past that its verdict is ``timeout``
  and a fresh thread takes its place (a Python thread cannot be killed, so a verifier that can
  hang must also bound itself — the next point).
* **killable processes** — :class:`ProcessWorkers` runs a function in a child process that is
  killed and replaced when it overruns. ``math`` uses it: sympy can spin for minutes in C code,
  and math-verify's own ``signal.alarm`` timeout works only on a main thread.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import IO, Any

from rlvr.verifiers.base import Verdict, Verifier

DEFAULT_TIMEOUT_S = 60.0


def safe_verify(verifier: Verifier, response: str, reference: Any) -> Verdict:
    """``verifier.verify`` that turns any exception or a non-Verdict into an ``error`` verdict."""
    try:
        verdict = verifier.verify(response, reference)
    except Exception as exc:  # a verifier bug must cost one reward, not the training run
        return Verdict(0.0, "error", f"{type(exc).__name__}: {exc}"[:500])
    if not isinstance(verdict, Verdict):
        return Verdict(0.0, "error", f"verifier returned {type(verdict).__name__}, not a Verdict")
    return verdict


def runs_in_process(verifier: Verifier) -> bool:
    return bool(getattr(verifier, "runs_in_process", False))


class VerifierPool:
    """Score batches concurrently with ``workers`` threads; each check bounded by ``timeout_s``.

    ``workers`` defaults to the CPU count. The pool holds no threads between batches (each batch
    starts its own daemon threads, microseconds next to any check that is worth a thread), so
    ``close`` only refuses further work; it exists so the pool reads like the resource it is.
    """

    def __init__(self, workers: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"VerifierPool workers must be >= 1, got {workers}")
        if timeout_s <= 0:
            raise ValueError(f"VerifierPool timeout_s must be > 0, got {timeout_s}")
        self.workers = workers or os.cpu_count() or 1
        self.timeout_s = timeout_s
        self._closed = False

    def score(
        self, verifier: Verifier, responses: Sequence[str], references: Sequence[Any]
    ) -> list[Verdict]:
        """One verdict per response, in order. Never raises for a verifier's failure."""
        if self._closed:
            raise RuntimeError("VerifierPool.score called after close()")
        if len(responses) != len(references):
            raise ValueError(
                f"score got {len(responses)} responses but {len(references)} references"
            )
        if runs_in_process(verifier):
            return [
                safe_verify(verifier, r, ref) for r, ref in zip(responses, references, strict=True)
            ]
        return _ThreadedBatch(verifier, responses, references, self.timeout_s).run(self.workers)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ThreadedBatch:
    """Worker threads pull the next index; the caller's thread watches the clock.

    A check that overruns gets a ``timeout`` verdict and a replacement thread; when the stuck
    thread returns at last it finds its slot filled and exits, so ``workers`` threads stay busy.
    """

    def __init__(
        self,
        verifier: Verifier,
        responses: Sequence[str],
        references: Sequence[Any],
        timeout_s: float,
    ) -> None:
        self.verifier, self.responses, self.references = verifier, responses, references
        self.timeout_s = timeout_s
        self.cond = threading.Condition()
        self.next_index = 0
        self.verdicts: list[Verdict | None] = [None] * len(responses)
        self.running: dict[int, float] = {}  # index -> monotonic start time
        self.done = 0

    def _pull(self) -> None:
        n = len(self.responses)
        while True:
            with self.cond:
                if self.next_index >= n:
                    return
                i = self.next_index
                self.next_index += 1
                self.running[i] = time.monotonic()
            verdict = safe_verify(self.verifier, self.responses[i], self.references[i])
            with self.cond:
                if self.verdicts[i] is not None:  # timed out meanwhile; a replacement took over
                    return
                self.verdicts[i] = verdict
                self.running.pop(i, None)
                self.done += 1
                self.cond.notify()

    def _start_thread(self) -> None:
        threading.Thread(target=self._pull, name="rlvr-verifier", daemon=True).start()

    def run(self, workers: int) -> list[Verdict]:
        n = len(self.responses)
        for _ in range(min(workers, n)):
            self._start_thread()
        with self.cond:
            while self.done < n:
                now = time.monotonic()
                for i, started in list(self.running.items()):
                    if now - started >= self.timeout_s:
                        detail = f"no verdict after {self.timeout_s:g}s"
                        self.verdicts[i] = Verdict(0.0, "timeout", detail)
                        del self.running[i]
                        self.done += 1
                        self._start_thread()
                if self.done >= n:
                    break
                deadlines = [s + self.timeout_s - now for s in self.running.values()]
                self.cond.wait(timeout=min(deadlines, default=0.05))
        return [v for v in self.verdicts if v is not None]


# ---------------------------------------------------------------------------------------------
# Killable worker processes


class WorkerTimeout(Exception):
    """The child overran its time and was killed."""


class WorkerCrashed(Exception):
    """The child died (out of memory, a segfault) or raised; the message says which."""


_HEADER = struct.Struct("<Q")


def _write_message(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    """``n`` bytes from ``fd``; WorkerTimeout past ``deadline``, EOFError if the child died."""
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise WorkerTimeout
        chunk = os.read(fd, n - got)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _read_message(fd: int, deadline: float | None) -> Any:
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    return pickle.loads(_read_exact(fd, size, deadline))


class _Worker:
    """One child interpreter running ``_worker_main``, talking length-prefixed pickles on its
    stdin/stdout, in its own session so that a kill takes anything it started too."""

    def __init__(self, preload: Sequence[str], memory_mb: int | None, start_timeout_s: float):
        config = json.dumps({"preload": list(preload), "memory_mb": memory_mb})
        # the parent's sys.path travels along, so the child imports what the parent would
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, config],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.fd = self.proc.stdin, self.proc.stdout.fileno()
        try:  # the child says "ready" once its imports are done: start-up is not check time
            _read_message(self.fd, time.monotonic() + start_timeout_s)
        except (WorkerTimeout, EOFError, OSError) as exc:
            self.kill()
            raise WorkerCrashed(f"worker process did not start: {type(exc).__name__}") from None

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], timeout_s: float) -> Any:
        _write_message(self.stdin, (fn, args))
        return _read_message(self.fd, time.monotonic() + timeout_s)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]


class ProcessWorkers:
    """Run picklable module-level functions in child processes, with a hard timeout.

    Thread-safe: one child per concurrent caller, reused between calls, killed and replaced on
    timeout or crash. Children are fresh interpreters (``subprocess``, not ``multiprocessing``):
    forking a trainer that holds CUDA and many threads is unsafe, and ``spawn``/``forkserver``
    re-import the user's ``__main__`` script in every child. ``preload`` is imported before a
    child reports ready, so its import time (sympy: ~0.5 s) is never charged to a check.
    ``memory_mb`` caps each child's address space: ``9^{9^{9}}`` dies of MemoryError instead of
    swapping the machine.
    """

    def __init__(
        self,
        preload: Sequence[str] = (),
        memory_mb: int | None = 2048,
        start_timeout_s: float = 120.0,
    ) -> None:
        self.preload, self.memory_mb = tuple(preload), memory_mb
        self.start_timeout_s = start_timeout_s
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        _ALL_WORKERS.add(self)

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], timeout_s: float) -> Any:
        """``fn(*args)`` in a child; raises WorkerTimeout or WorkerCrashed, never hangs."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None or worker.proc.poll() is not None:
            worker = _Worker(self.preload, self.memory_mb, self.start_timeout_s)
        try:
            kind, value = worker.call(fn, args, timeout_s)
        except WorkerTimeout:
            worker.kill()
            raise WorkerTimeout(f"killed after {timeout_s:g}s") from None
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            worker.kill()
            raise WorkerCrashed(f"worker process died: {type(exc).__name__}") from None
        with self._lock:
            self._idle.append(worker)
        if kind == "err":
            raise WorkerCrashed(value)
        return value

    def close(self) -> None:
        """Kill the idle children (a call in flight keeps its child until it returns)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


_ALL_WORKERS: weakref.WeakSet[ProcessWorkers] = weakref.WeakSet()


@atexit.register
def _close_all_workers() -> None:
    for workers in list(_ALL_WORKERS):
        workers.close()


def _worker_main(config: dict[str, Any]) -> None:
    """Child loop: read ``(fn, args)``, reply ``("ok", result)`` or ``("err", message)``."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the reply stream
    if config.get("memory_mb"):
        import resource

        limit = config["memory_mb"] * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for module in config.get("preload", []):
        importlib.import_module(module)
    _write_message(out, "ready")
    fd = sys.stdin.buffer.fileno()
    while True:
        try:
            fn, args = _read_message(fd, None)
        except EOFError:
            return
        try:
            reply = ("ok", fn(*args))
        except BaseException as exc:  # noqa: BLE001  (report everything, MemoryError included)
            reply = ("err", f"{type(exc).__name__}: {exc}"[:500])
        _write_message(out, reply)


_CHILD = (
    "import json, sys\n"
    "from rlvr.verifiers.pool import _worker_main\n"
    "_worker_main(json.loads(sys.argv[1]))"
)

"""The fork server: a clean, single-threaded, pre-warmed process that forks one runner per job.

Started by ``client.Sandbox`` with an empty environment. It imports this package and common
standard-library modules once, then never reads a job itself: for each connection it forks a
runner, which

1. reads the first message (the program and its limits, not the tests),
2. forks the grader, which reads the second message (the tests) from the same connection,
3. forks sandboxed processes for the model's code when the grader asks (``spawn``), from its own
   memory, which never held the tests, and passes the grader their pipes (SCM_RIGHTS),
4. at the end kills the job's whole process tree (``jail.sweep``) and exits.

Each live job has a slot: its own uid (``uid_base + slot``) and cgroups. A block of slots belongs
to one server (an ``flock``-ed file), so several rlvr processes on a machine never share a uid.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import socket
import sys
import tempfile
import time
from typing import Any

from . import candidate, jail, wire
from . import grader as grading

GRACE_S = 2.0  # how long past its deadline the grader may take before the runner gives up
SLOTS = 64
UID_BASE = 1_900_000_000
BLOCKS = 256
PREIMPORT = (
    "math",
    "re",
    "collections",
    "itertools",
    "functools",
    "heapq",
    "bisect",
    "string",
    "typing",
    "random",
    "statistics",
    "fractions",
    "decimal",
    "copy",
    "operator",
    "dataclasses",
    "hashlib",
    "json",
    "datetime",
    "traceback",
    "ast",
    "importlib",
    "encodings.idna",
    "socket",
)


class Server:
    def __init__(self, hide: list[str], unsafe: bool, pretend: bool = False) -> None:
        self.dir = tempfile.mkdtemp(prefix="rlvr-sandbox-")
        self.root = os.path.join(self.dir, "root")
        os.mkdir(self.root)
        self.caps = jail.probe(self.root)
        if pretend:
            self.caps = {
                "root": self.caps["root"],
                "isolated": False,
                "reason": "isolation switched off (RLVR_SANDBOX_PRETEND_NO_ISOLATION=1)",
            }
        self.isolate = bool(self.caps["isolated"])
        if not self.isolate and not unsafe:
            print(json.dumps({"error": self.caps.get("reason", "no isolation"), "caps": self.caps}))
            raise SystemExit(1)
        self.block, self._lock = self._claim_block() if self.isolate else (0, None)
        self.free = list(range(SLOTS))
        self.dirty = set(range(SLOTS)) if self.isolate else set()  # first use: sweep old owners
        self.runners: dict[int, int] = {}
        self.netns: dict[int, int] = {}  # slot -> fd of its empty network namespace, made once
        self.hide = hide
        self.visible = jail.visible_paths()
        self.path = os.path.join(self.dir, "sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(256)

    def _claim_block(self) -> tuple[int, Any]:
        locks = os.path.join(tempfile.gettempdir(), "rlvr-sandbox-uids")
        os.makedirs(locks, mode=0o700, exist_ok=True)
        for block in range(BLOCKS):
            fd = os.open(os.path.join(locks, str(block)), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return block, fd
            except OSError:
                os.close(fd)
        print(json.dumps({"error": "no free uid block"}))
        raise SystemExit(1)

    def uid(self, slot: int) -> int | None:
        return UID_BASE + self.block * SLOTS + slot if self.isolate else None

    def cgroup(self, slot: int) -> str:
        return f"rlvr-sandbox/{self.block}-{slot}"

    def serve(self) -> None:
        print(json.dumps({"socket": self.path, "caps": self.caps}), flush=True)
        poller = select.poll()
        poller.register(0, select.POLLIN | select.POLLHUP)
        poller.register(self.listener.fileno(), select.POLLIN)
        while True:
            self._reap()
            events = dict(poller.poll(200 if self.free else 20))
            if 0 in events:
                return  # the client closed our stdin: it is gone or done
            if self.listener.fileno() in events and self.free:
                conn, _ = self.listener.accept()
                slot = self.free.pop()
                if self.isolate and slot not in self.netns:
                    self.netns[slot] = jail.empty_netns()
                pid = os.fork()
                if pid == 0:
                    self.listener.close()
                    _run_job(self, conn, slot)  # never returns
                conn.close()
                self.runners[pid] = slot

    def _reap(self) -> None:
        while self.runners:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.runners.pop(pid, None)
            if slot is not None:
                if status != 0:
                    self.dirty.add(slot)
                self.free.append(slot)


def _spawn(server: Server, job: dict[str, Any], mode: str, slot: int) -> tuple[int, list[int]]:
    """Fork a sandboxed process for the model's code; return its pid and the grader's pipe ends."""
    uid = server.uid(slot)
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    if mode == "call":  # requests a (grader -> program), answers b (program -> grader)
        child = {3: a_r, 4: b_w}
        theirs = [a_w, b_r]
    else:  # stdin a, stdout b
        child = {0: a_r, 1: b_w}
        theirs = [a_w, b_r]
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            null = os.open("/dev/null", os.O_RDWR)
            wanted = {0: null, 1: null, 2: null, **child}
            high = {fd: fcntl.fcntl(src, fcntl.F_DUPFD, 100) for fd, src in wanted.items()}
            for fd, src in high.items():
                os.dup2(src, fd)
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            try:
                netns = server.netns.get(slot)
                if netns is not None:  # the slot's empty network namespace: no network
                    jail.setns(netns, jail.CLONE_NEWNET)
                    job["sandbox"]["netns_joined"] = True
                os.closerange(5, 1 << 16)
                jail.enter(job["sandbox"], uid)
            except BaseException as e:  # a wall failed: the program must not run
                if mode == "call":
                    wire.send_msg(4, {"setup_error": f"{type(e).__name__}: {e}"})
                os._exit(125)
            if mode == "call":
                candidate.serve_calls(job["code"])
            candidate.run_program(job["code"])
        finally:
            os._exit(126)
    for fd in child.values():
        os.close(fd)
    return pid, theirs


def _end(pid: int) -> dict[str, Any]:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return {"how": "unknown"}
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return {"how": f"killed by {signal.Signals(sig).name}", "signal": sig}
    code = os.WEXITSTATUS(status)
    return {"how": f"exit code {code}", "code": code}


def _run_job(server: Server, conn: socket.socket, slot: int) -> None:
    """The runner. Always ends in ``os._exit``; the client reads the verdict from ``conn``."""
    uid = server.uid(slot)
    cgroups: list[str] = []
    status = 1
    try:
        jail.prctl(jail.PR_SET_CHILD_SUBREAPER, 1)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        job = wire.recv_msg(conn.fileno(), time.monotonic() + 30)
        if slot in server.dirty and uid is not None:
            jail.sweep(uid, jail.cgroup_dirs(server.cgroup(slot)))
        limits = job["sandbox"]
        limits.update(
            isolate=server.isolate,
            root=server.root,
            visible=server.visible,
            hide=server.hide + list(limits.get("hide", [])),
        )
        if server.isolate:
            cgroups = jail.make_cgroups(
                server.cgroup(slot), limits["max_procs"], limits["memory_mb"]
            )
            limits["cgroups"] = cgroups
        else:
            limits["scratch"] = tempfile.mkdtemp(prefix="rlvr-scratch-")
            limits["cgroups"] = []
        deadline = time.monotonic() + job["budget_s"]
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        grader = os.fork()
        if grader == 0:
            ours.close()
            try:
                result = grading.grade(conn.fileno(), theirs, job, deadline)
            except BaseException as e:  # noqa: BLE001
                result = {"error": f"grader failed: {type(e).__name__}: {e}"}
            try:  # to the runner, which answers the client once the job's processes are gone
                theirs.send(json.dumps({"op": "result", "result": result}).encode())
            finally:
                os._exit(0)
        theirs.close()
        result = _serve_grader(server, ours, job, slot, grader, deadline + GRACE_S)
        if result is None:
            result = {"passed": 0, "total": 1, "timeout": True, "notes": ["tests did not finish"]}
        if not jail.sweep(uid, cgroups):
            result = {"error": "could not kill every process of the program"}
        wire.send_msg(conn.fileno(), result)
        status = 0
    except BaseException as e:  # noqa: BLE001
        try:
            wire.send_msg(
                conn.fileno(), {"error": f"sandbox runner failed: {type(e).__name__}: {e}"}
            )
        except BaseException:  # noqa: BLE001
            pass
    finally:
        try:
            if not jail.sweep(uid, cgroups):
                status = 1
            if not server.isolate and "limits" in locals():
                import shutil

                shutil.rmtree(limits.get("scratch", "/nonexistent"), ignore_errors=True)
        finally:
            os._exit(status)


def _serve_grader(
    server: Server,
    ours: socket.socket,
    job: dict[str, Any],
    slot: int,
    grader: int,
    deadline: float,
) -> dict[str, Any] | None:
    """Answer the grader's spawn/end requests until it exits; return the result it sent."""
    result = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([ours], [], [], left)[0]:
            os.kill(grader, signal.SIGKILL)
            os.waitpid(grader, 0)
            return None
        data = ours.recv(1 << 16)
        if not data:
            os.waitpid(grader, 0)
            return result
        request = json.loads(data)
        if request["op"] == "result":
            result = request["result"]
        elif request["op"] == "spawn":
            try:
                pid, fds = _spawn(server, job, request["mode"], slot)
            except OSError as e:
                ours.send(json.dumps({"error": str(e)}).encode())
                continue
            socket.send_fds(ours, [json.dumps({"pid": pid}).encode()], fds)
            for fd in fds:
                os.close(fd)
        elif request["op"] == "end":
            ours.send(json.dumps(_end(int(request["pid"]))).encode())


def main(argv: list[str]) -> None:
    config = json.loads(argv[0]) if argv else {}
    for name in PREIMPORT:
        try:
            __import__(name)
        except ImportError:
            pass
    os.chdir("/")
    server = Server(config.get("hide", []), bool(config.get("unsafe")), bool(config.get("pretend")))
    try:
        server.serve()
    finally:
        import shutil

        shutil.rmtree(server.dir, ignore_errors=True)
        sys.exit(0)

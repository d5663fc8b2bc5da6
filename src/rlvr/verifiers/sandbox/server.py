"""The fork server: a clean, single-threaded, pre-warmed process that hands each job to a slot.

Started by ``client.Sandbox`` with an empty environment. It imports this package and common
standard-library modules once, then never reads a job itself. Jobs run in *slots*. A slot is a
persistent runner process, forked from the server the first time the slot is needed, which

1. builds the slot's walls once: its own uid (``uid_base + slot``) and cgroups, an empty network
   namespace, and a mount namespace holding the private file tree (``jail.build_tree``);
2. per job (a client connection the server passes it) reads the first message (the program and
   its limits, never the tests), mounts a fresh ``/tmp`` and hands the connection to the slot's
   grader, which reads the second message (the tests) and runs them;
3. forks sandboxed processes for the model's code when the grader asks (``spawn``), from its own
   memory, which never held a test, confines each one (``jail.confine``) and passes the grader
   their pipes (SCM_RIGHTS); for differential testing, also a process whose program (the task's
   reference solution) the grader sends it after confinement, so the runner never holds that
   either;
4. at the end kills the job's whole process tree (``jail.sweep``), detaches its ``/tmp``, answers
   the client and tells the server the slot is free.

Why persistent slots: building namespaces and a bind-mounted tree for every program cost more
than the tiny programs RL runs by the hundred per step; now a program costs one fork and a few
system calls. A grader that overruns or dies is replaced by a fresh fork of the runner; a runner
that dies (or fails to sweep) is replaced by a fresh fork of the server, which sweeps the slot
before its first job. A block of slots belongs to one server (an ``flock``-ed file), so several
rlvr processes on a machine never share a uid.
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
MAX_PACKET = 1 << 20  # grader <-> runner messages (results, requests): SOCK_SEQPACKET datagrams
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
        self.runners: dict[int, tuple[int, socket.socket]] = {}  # slot -> (pid, control socket)
        self.idle: list[int] = []
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
        uids = [self.uid(0), self.uid(SLOTS - 1) + 1] if self.isolate else None
        print(json.dumps({"socket": self.path, "caps": self.caps, "uids": uids}), flush=True)
        while True:
            self._reap()
            poller = select.poll()
            poller.register(0, select.POLLIN | select.POLLHUP)
            if self.idle or len(self.runners) < SLOTS:
                poller.register(self.listener.fileno(), select.POLLIN)
            by_fd = {ctl.fileno(): slot for slot, (_, ctl) in self.runners.items()}
            for fd in by_fd:
                poller.register(fd, select.POLLIN | select.POLLHUP)
            events = dict(poller.poll(200))
            if 0 in events:
                return  # the client closed our stdin: it is gone or done
            for fd, slot in by_fd.items():
                if fd in events:
                    self._runner_message(slot)
            if self.listener.fileno() in events and (self.idle or len(self.runners) < SLOTS):
                conn, _ = self.listener.accept()
                slot = self.idle.pop() if self.idle else self._start_runner()
                socket.send_fds(self.runners[slot][1], [b"job"], [conn.fileno()])
                conn.close()

    def _runner_message(self, slot: int) -> None:
        pid, ctl = self.runners[slot]
        try:
            data = ctl.recv(64)
        except OSError:
            data = b""
        if data == b"done":
            self.idle.append(slot)
            return
        # The runner died (or gave up on a job it could not clean): a fresh one takes the slot
        # and sweeps it first. Its connection, if any, closes with it: the client retries.
        ctl.close()
        del self.runners[slot]
        if slot in self.idle:
            self.idle.remove(slot)

    def _start_runner(self) -> int:
        slot = next(s for s in range(SLOTS) if s not in self.runners)
        if self.isolate and slot not in self.netns:
            self.netns[slot] = jail.empty_netns()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                ours.close()
                self.listener.close()
                for _, ctl in self.runners.values():
                    ctl.close()
                Runner(self, slot, theirs).serve()
                status = 0
            finally:
                os._exit(status)
        theirs.close()
        self.runners[slot] = (pid, ours)
        return slot

    def _reap(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return


class Runner:
    """One slot: its walls, built once, and its jobs, one after another (see the module doc)."""

    def __init__(self, server: Server, slot: int, ctl: socket.socket) -> None:
        self.ctl = ctl
        self.isolate, self.root = server.isolate, server.root
        self.visible, self.hide = server.visible, server.hide
        self.uid = server.uid(slot)
        self.cgroup_name = server.cgroup(slot)
        self.cgroups: list[str] = []
        self.cgroup_limits: tuple[int, int] | None = None
        self.grader: tuple[int, socket.socket] | None = None
        self.code = ""  # the current job's program
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1):  # the server's pipes to the client are not the runner's business
            os.dup2(null, fd)
        os.close(null)
        jail.prctl(jail.PR_SET_CHILD_SUBREAPER, 1)
        jail.prctl(jail.PR_SET_PDEATHSIG, signal.SIGKILL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        if self.isolate:
            jail.setns(server.netns[slot], jail.CLONE_NEWNET)
            jail.unshare(jail.CLONE_NEWNS)
            jail.build_tree(self.root, self.visible, self.hide)
            # whatever an earlier owner of this uid or slot left behind
            if not jail.sweep(self.uid, jail.cgroup_dirs(self.cgroup_name)):
                raise RuntimeError("could not sweep the slot")

    def serve(self) -> None:
        while True:
            try:
                _, fds, _, _ = socket.recv_fds(self.ctl, 16, 1)
            except OSError:
                return
            if not fds:
                return  # the server is gone
            conn = socket.socket(fileno=fds[0])
            clean = self._run_job(conn)
            conn.close()
            if not clean:
                return  # the server starts a fresh runner, which sweeps the slot first
            self.ctl.send(b"done")

    def _run_job(self, conn: socket.socket) -> bool:
        """Run one job and answer its client; False when the slot could not be cleaned."""
        scratch: str | None = None
        mounted = False
        try:
            job = wire.recv_msg(conn.fileno(), time.monotonic() + 30)
            self.code = str(job["code"])
            limits = job["sandbox"]
            spec: dict[str, Any] = {
                "isolate": self.isolate,
                "root": self.root,
                "memory_mb": int(limits["memory_mb"]),
                "cpu_s": float(limits["cpu_s"]),
                "max_output_bytes": int(limits["max_output_bytes"]),
                "max_procs": int(limits["max_procs"]),
                "cgroups": [],
            }
            if self.isolate:
                wanted = (spec["max_procs"], spec["memory_mb"])
                if wanted != self.cgroup_limits:
                    self.cgroups = jail.make_cgroups(self.cgroup_name, *wanted)
                    self.cgroup_limits = wanted
                spec["cgroups"] = self.cgroups
                jail.fresh_scratch(
                    self.root, self.uid, int(limits["scratch_mb"]), self.visible, self.hide
                )
                mounted = True
            else:
                scratch = spec["scratch"] = tempfile.mkdtemp(prefix="rlvr-scratch-")
            deadline = time.monotonic() + float(job["budget_s"])
            result = self._grade(conn, job, spec, deadline)
        except BaseException as e:  # noqa: BLE001
            result = {"error": f"sandbox runner failed: {type(e).__name__}: {e}"}
        spare = self.grader[0] if self.grader else None
        clean = jail.sweep(self.uid, self.cgroups, spare=spare)
        if mounted:
            jail.drop_scratch(self.root)
        if scratch:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
        if not clean:
            result = {"error": "could not kill every process of the program"}
        try:
            wire.send_msg(conn.fileno(), result)
        except (OSError, wire.WireError):
            pass
        return clean

    # -- the grader ----------------------------------------------------------------------------
    def _start_grader(self) -> tuple[int, socket.socket]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                keep = theirs.fileno()
                os.closerange(3, keep)
                os.closerange(keep + 1, 1 << 16)
                _grader_main(theirs)
            finally:
                os._exit(0)
        theirs.close()
        return pid, ours

    def _stop_grader(self) -> None:
        if self.grader is None:
            return
        pid, sock = self.grader
        self.grader = None
        sock.close()
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass

    def _grade(
        self, conn: socket.socket, job: dict[str, Any], spec: dict[str, Any], deadline: float
    ) -> dict[str, Any]:
        """Hand the connection to the grader, serve its requests, return its result."""
        if self.grader is None:
            self.grader = self._start_grader()
        _, sock = self.grader
        brief = {  # what the grader needs of the job: limits, never the program
            "timeout_s": job["timeout_s"],
            "left_s": deadline - time.monotonic(),
            "sandbox": {"max_output_bytes": spec["max_output_bytes"]},
        }
        socket.send_fds(sock, [json.dumps(brief).encode()], [conn.fileno()])
        limit = deadline + GRACE_S
        while True:
            left = limit - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                self._stop_grader()
                return {"passed": 0, "total": 1, "timeout": True, "notes": ["tests did not finish"]}
            data = sock.recv(MAX_PACKET)
            if not data:
                self._stop_grader()
                return {"error": "the grader died"}
            request = json.loads(data)
            if request["op"] == "result":
                return request["result"]
            if request["op"] == "spawn":
                try:
                    pid, fds = self._spawn(spec, request["mode"])
                except OSError as e:
                    sock.send(json.dumps({"error": str(e)}).encode())
                    continue
                socket.send_fds(sock, [json.dumps({"pid": pid}).encode()], fds)
                for fd in fds:
                    os.close(fd)
            elif request["op"] == "end":
                sock.send(json.dumps(_end(int(request["pid"]))).encode())

    def _spawn(self, spec: dict[str, Any], mode: str) -> tuple[int, list[int]]:
        """Fork a confined process for the model's code; return its pid and the grader's ends."""
        a_r, a_w = os.pipe()
        b_r, b_w = os.pipe()
        # call modes: requests on a (grader -> program), answers on b; program mode: stdin, stdout
        calls = mode in ("call", "reference")
        child = {3: a_r, 4: b_w} if calls else {0: a_r, 1: b_w}
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
                    os.closerange(5, 1 << 16)
                    jail.confine(spec, self.uid)
                except BaseException as e:  # a wall failed: the program must not run
                    if calls:
                        wire.send_msg(4, {"setup_error": f"{type(e).__name__}: {e}"})
                    os._exit(125)
                code = self.code
                if mode == "reference":
                    # A task's reference solution (differential testing): the grader sends it
                    # down the pipe to this walled-in process only, so the runner never holds
                    # it and no solution process forked from the runner can find it in memory.
                    sent = wire.recv_msg(3)
                    code = str(sent.get("code", "")) if type(sent) is dict else ""
                if calls:
                    candidate.serve_calls(code)
                candidate.run_program(code)
            finally:
                os._exit(126)
        for fd in child.values():
            os.close(fd)
        return pid, theirs


def _grader_main(sock: socket.socket) -> None:
    """The slot's grader: one job after another, each handed over with its connection."""
    jail.prctl(jail.PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    while True:
        data, fds, _, _ = socket.recv_fds(sock, MAX_PACKET, 1)
        if not data or not fds:
            return
        job = json.loads(data)
        conn = fds[0]
        try:
            deadline = time.monotonic() + float(job["left_s"])
            result = grading.grade(conn, sock, job, deadline)
        except BaseException as e:  # noqa: BLE001
            result = {"error": f"grader failed: {type(e).__name__}: {e}"}
        finally:
            os.close(conn)
        sock.send(json.dumps({"op": "result", "result": result}).encode())


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

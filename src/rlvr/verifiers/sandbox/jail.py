"""The walls around one untrusted program, built with what Linux gives.

Built in two steps, so that the expensive part is paid once per slot, not once per program:

- ``build_tree`` (a slot's runner, once, as root, in a network namespace with no interface up and
  a mount namespace of its own): a private file tree made of read-only binds of the system and
  Python directories and ``/dev/{null,zero,random,urandom}``. The caller's files, the tests and
  other slots' scratch are not in it. ``fresh_scratch`` mounts a new small tmpfs on its ``/tmp``
  for every job (``drop_scratch`` detaches it after the job), the only writable place.
- ``confine`` (each program, in a fresh fork of the runner, just before the model's code runs):
  joins the slot's cgroups (v1 ``pids``, ``memory``, ``cpu`` where mounted: at most N processes
  and M bytes for the whole tree, at most one CPU's worth of time, so a fork bomb cannot starve
  other jobs), a new IPC namespace (no System V object outlives the program), ``chroot`` into the
  tree, rlimits (address space, CPU seconds, processes, file size, no core files, open files),
  credentials (a uid/gid of its own per slot, never root, no supplementary groups,
  ``no_new_privs`` so setuid binaries do not elevate, parent-death signal SIGKILL) and a clean
  environment (PATH, HOME=/tmp, LANG; nothing of the caller's).

``sweep`` kills a job's whole tree at the end: everything in its cgroups, everything running as its
uid (``kill(-1)`` from a process holding that uid) and every descendant the runner inherits as a
child subreaper, until none is left.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
import time
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
CLONE_NEWIPC = 0x08000000
MNT_DETACH = 2
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1,
    2,
    4,
    32,
    4096,
    16384,
    1 << 18,
)
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38

_libc = ctypes.CDLL(None, use_errno=True)
_CGROUP_ROOT = "/sys/fs/cgroup"
CLEAN_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "TMPDIR": "/tmp",
}
DEVICES = ("null", "zero", "random", "urandom")


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, value, 0, 0, 0), f"prctl({option})")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def empty_netns() -> int:
    """An fd for a new network namespace with no interface up; the caller's namespace is kept."""
    host = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        unshare(CLONE_NEWNET)
        fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        setns(host, CLONE_NEWNET)
    finally:
        os.close(host)
    return fd


def mount(
    src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(_libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


# --- the file tree --------------------------------------------------------------------------------


def visible_paths() -> list[str]:
    """What the program may read: the system directories and this Python's installation."""
    wanted = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc"]
    wanted += [sys.base_prefix, sys.prefix, sys.exec_prefix]
    wanted += [p for p in sys.path if p and os.path.isdir(p) and "site-packages" in p]
    out: list[str] = []
    for p in sorted({os.path.abspath(p) for p in wanted if os.path.lexists(p)}, key=len):
        if not any(p == q or p.startswith(q.rstrip("/") + "/") for q in out):
            out.append(p)
    return out


def _under_tmp(path: str) -> bool:
    return path == "/tmp" or path.startswith("/tmp/")


def _bind_read_only(path: str, inside: str) -> None:
    if os.path.islink(path) and os.path.dirname(path) == "/":
        os.symlink(os.readlink(path), inside)
        return
    os.makedirs(inside, exist_ok=True)
    mount(path, inside, None, MS_BIND | MS_REC)
    mount(None, inside, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID)


def build_tree(root: str, visible: list[str], hide: list[str]) -> None:
    """The slot's private file tree on ``root``: call once, in a fresh mount namespace. Paths
    under ``/tmp`` are bound per job, inside its scratch (``fresh_scratch``)."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    os.mkdir(root + "/tmp", 0o755)
    for path in visible:
        if not _under_tmp(path):
            _bind_read_only(path, root + path)
    for path in hide:
        _hide(root + path)
    os.makedirs(root + "/dev")
    for name in DEVICES:
        open(f"{root}/dev/{name}", "w").close()
        mount(f"/dev/{name}", f"{root}/dev/{name}", None, MS_BIND)


def _hide(inside: str) -> None:
    if os.path.isdir(inside):
        mount("tmpfs", inside, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=0555")
    elif os.path.exists(inside):
        mount("/dev/null", inside, None, MS_BIND)


def fresh_scratch(root: str, uid: int, size_mb: int, visible: list[str], hide: list[str]) -> None:
    """A new, empty ``/tmp`` for one job, owned by the slot's uid. A visible path that lives under
    /tmp (a checkout or venv in /tmp, as in CI) is bound read-only inside it."""
    tmp = root + "/tmp"
    mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size_mb}m,mode=0700")
    os.chown(tmp, uid, uid)
    for path in visible:
        if _under_tmp(path) and path != "/tmp":
            _bind_read_only(path, root + path)
    for path in hide:
        if _under_tmp(path):
            _hide(root + path)


def drop_scratch(root: str) -> None:
    """Detach the job's ``/tmp`` (and any bind inside it); its files are gone with it."""
    _check(_libc.umount2((root + "/tmp").encode(), MNT_DETACH), "umount /tmp")


# --- cgroups (v1) ---------------------------------------------------------------------------------


def cgroup_dirs(name: str) -> list[str]:
    """The job's cgroup directories that exist (created by ``make_cgroups``)."""
    return [
        d for c in ("pids", "memory", "cpu") if os.path.isdir(d := f"{_CGROUP_ROOT}/{c}/{name}")
    ]


def make_cgroups(name: str, max_procs: int, memory_mb: int) -> list[str]:
    """Create (or reset) the job's cgroups; returns those that work ([] without cgroups)."""
    made = []
    settings = {
        "pids": {"pids.max": str(max_procs)},
        "memory": {"memory.limit_in_bytes": str(memory_mb << 20)},
        "cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "100000"},  # one CPU
    }
    for controller, files in settings.items():
        d = f"{_CGROUP_ROOT}/{controller}/{name}"
        try:
            os.makedirs(d, exist_ok=True)
            for f, v in files.items():
                with open(f"{d}/{f}", "w") as fh:
                    fh.write(v)
            made.append(d)
        except OSError:
            continue
    return made


def _join_cgroups(dirs: list[str]) -> None:
    for d in dirs:
        with open(f"{d}/cgroup.procs", "w") as fh:
            fh.write(str(os.getpid()))


# --- entering the sandbox -------------------------------------------------------------------------


def confine(spec: dict[str, Any], uid: int | None) -> None:
    """Wall in the calling process (a fresh fork of the slot's runner, fds already arranged).
    Raises if a wall fails: the caller must then not run the program."""
    if spec["isolate"]:
        assert uid is not None
        _join_cgroups(spec["cgroups"])
        unshare(CLONE_NEWIPC)
        os.chroot(spec["root"])
    mem = spec["memory_mb"] << 20
    cpu = int(spec["cpu_s"]) + 1
    limits = {
        resource.RLIMIT_AS: mem,
        resource.RLIMIT_CPU: cpu,
        resource.RLIMIT_FSIZE: spec["max_output_bytes"],
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NOFILE: 256,
        resource.RLIMIT_NPROC: spec["max_procs"] + (0 if uid is not None else _own_processes()),
    }
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise OSError("could not drop privileges")
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after setuid: a change of credentials clears it
    os.chdir("/tmp" if spec["isolate"] else spec["scratch"])
    os.umask(0o077)
    os.environ.clear()
    os.environ.update(CLEAN_ENV)
    if not spec["isolate"]:
        os.environ["HOME"] = os.environ["TMPDIR"] = spec["scratch"]


def _own_processes() -> int:
    """Processes of this uid now: RLIMIT_NPROC counts them all, so the limit is on top of these."""
    uid, n = os.getuid(), 0
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and os.stat(f"/proc/{pid}").st_uid == uid:
                n += 1
        except OSError:
            pass
    return n


# --- tearing down ---------------------------------------------------------------------------------


def _children() -> list[int]:
    out: list[int] = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as fh:
                out += [int(p) for p in fh.read().split()]
        except OSError:
            pass
    return out


def _kill_uid(uid: int) -> None:
    """SIGKILL every process running as ``uid``: ``kill(-1)`` from a process that holds it."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            for _ in range(3):
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    break
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def sweep(uid: int | None, cgroups: list[str], spare: int | None = None) -> bool:
    """Kill the job's whole process tree (the caller must be a child subreaper) and reap it.
    ``spare`` is a child left alone. True when nothing is left."""
    # every process of a job joins all its cgroups at once: the pids cgroup alone lists them
    cgroups = [d for d in cgroups if "/pids/" in d] or cgroups
    for attempt in range(200):
        for d in cgroups:
            try:
                with open(f"{d}/cgroup.procs") as fh:
                    for p in fh.read().split():
                        os.kill(int(p), signal.SIGKILL)
            except OSError:
                pass
        if uid is not None and not any("/pids/" in d for d in cgroups):
            _kill_uid(uid)  # without a pids cgroup, find the tree by its uid (one fork)
        kids = [p for p in _children() if p != spare]
        for p in kids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        for p in kids:
            try:
                os.waitpid(p, 0)
            except ChildProcessError:
                pass
        if not kids and not any(_cgroup_busy(d) for d in cgroups):
            return True
        time.sleep(min(0.001 * attempt, 0.02))
    return False


def _cgroup_busy(d: str) -> bool:
    try:
        with open(f"{d}/cgroup.procs") as fh:
            return bool(fh.read().strip())
    except OSError:
        return False


# --- what works here ------------------------------------------------------------------------------


def probe(root: str) -> dict[str, Any]:
    """Try every wall in a throw-away child; report which hold. Run by the fork server at start."""
    caps: dict[str, Any] = {"root": os.geteuid() == 0}
    if not caps["root"]:
        caps["isolated"] = False
        caps["reason"] = "not running as root: cannot switch uid or create namespaces"
        return caps
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        msg = "ok"
        try:
            visible = visible_paths()
            unshare(CLONE_NEWNS | CLONE_NEWNET)
            build_tree(root, visible, [])
            fresh_scratch(root, 1_999_999_999, 1, visible, [])
            spec = {
                "isolate": True,
                "cgroups": [],
                "root": root,
                "memory_mb": 256,
                "cpu_s": 5,
                "max_output_bytes": 1 << 20,
                "max_procs": 4,
            }
            confine(spec, 1_999_999_999)
            import socket

            try:
                socket.socket().connect(("127.0.0.1", 9))
                msg = "network still reachable"
            except OSError:
                pass
            # /tmp holds nothing but the way down to visible paths that live under /tmp
            expected = {p.split("/")[2] for p in visible if p.startswith("/tmp/")}
            if os.path.exists(os.path.dirname(root)) or set(os.listdir("/tmp")) - expected:
                msg = "file tree not private"
        except BaseException as e:  # noqa: BLE001
            msg = f"{type(e).__name__}: {e}"
        os.write(w, msg.encode()[:500])
        os._exit(0)
    os.close(w)
    msg = os.read(r, 1000).decode()
    os.close(r)
    os.waitpid(pid, 0)
    caps["isolated"] = msg == "ok"
    if msg != "ok":
        caps["reason"] = msg
    return caps

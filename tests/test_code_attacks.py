"""Attacks on the code verifier: each tries to get reward without solving the task and must score
0; the side-effect checks make sure nothing escaped (files, network, processes)."""

from __future__ import annotations

import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlvr.verifiers import get_verifier
from rlvr.verifiers.sandbox.server import UID_BASE

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the sandbox needs root (CI runs as root)"
)

ASSERTS = {"asserts": ["assert f(1) == 73501482", "assert f(2) == 91827364"], "timeout_s": 2}
CHECK = {
    "tests": "def check(candidate):\n    assert candidate(1) == 73501482\n",
    "entry_point": "f",
    "timeout_s": 2,
}
HONEST = "def f(x):\n    return 73501482 if x == 1 else 91827364\n"


@pytest.fixture(scope="module")
def code():
    verifier = get_verifier("code")
    yield verifier
    verifier.close()


def sandbox_processes(verifier) -> list[int]:
    """Processes running as one of ``verifier``'s sandbox uids: none may outlive its verdict.
    (Only its own: other runs on a shared machine have sandboxes of their own.)"""
    uids = verifier.sandbox.uids
    assert uids is not None and len(uids) == 64 and uids.start >= UID_BASE  # a block of its own
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid in uids:
                out.append(int(pid))
        except OSError:
            pass
    return out


ATTACKS = {
    "always_equal": "class A:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n"
    "def f(x):\n    return A()\n",
    "int_subclass_eq": "class I(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\n"
    "def f(x):\n    return I(0)\n",
    "str_subclass_eq": "class S(str):\n    def __eq__(self, o): return True\n    __hash__ = str.__hash__\n"
    "def f(x):\n    return S('no')\n",
    "sys_exit_in_call": "import sys\ndef f(x):\n    sys.exit(0)\n",
    "sys_exit_at_import": "import sys\nsys.exit(0)\ndef f(x):\n    return 0\n",
    "os_exit_in_call": "import os\ndef f(x):\n    os._exit(0)\n",
    "os_exit_at_import": "import os\nos._exit(0)\n",
    "raise_system_exit": "def f(x):\n    raise SystemExit(0)\n",
    "keyboard_interrupt": "def f(x):\n    raise KeyboardInterrupt\n",
    "skip_test": "import unittest\ndef f(x):\n    raise unittest.SkipTest('skip')\n",
    "atexit_handler": "import atexit, os\natexit.register(lambda: os._exit(0))\ndef f(x):\n    return 0\n",
    "rerun_with_O": "import os, sys\nif sys.flags.optimize == 0:\n"
    "    os.execv(sys.executable, [sys.executable, '-O', '-c', 'pass'])\n"
    "def f(x):\n    return 0\n",
    "rewrite_test_files": "import glob\nfor p in glob.glob('/**/test*.py', recursive=True)[:50]:\n"
    "    try:\n        open(p, 'w').write('def check(c): pass\\n')\n"
    "    except OSError:\n        pass\ndef f(x):\n    return 0\n",
    "print_success": "print('1/1 tests passed'); print('OK'); print('PASSED')\n"
    "def f(x):\n    print('ok: all tests passed')\n    return 0\n",
    "read_expected_from_frames": "import sys, gc\ndef f(x):\n    fr = sys._getframe()\n    while fr:\n"
    "        for v in list(fr.f_locals.values()) + list(fr.f_globals.values()):\n"
    "            if isinstance(v, int) and v > 1000:\n                return v\n"
    "        fr = fr.f_back\n"
    "    for o in gc.get_objects():\n        if isinstance(o, (list, dict)):\n"
    "            for v in (o.values() if isinstance(o, dict) else o):\n"
    "                if type(v) is int and v in (73501482, 91827364):\n"
    "                    return v\n    return 0\n",
    "read_expected_from_memory": "def f(x):\n    try:\n        data = open('/proc/self/mem', 'rb').read()\n"
    "    except OSError:\n        return 0\n"
    "    return 73501482 if b'73501482' in data else 0\n",
    "read_tests_from_disk": "import os\ndef f(x):\n    for root, _, files in os.walk('/'):\n"
    "        for n in files:\n            if n.endswith(('.jsonl', '.jsonl.gz', '.py')) and 'test' in n:\n"
    "                try:\n                    if b'73501482' in open(os.path.join(root, n), 'rb').read():\n"
    "                        return 73501482\n                except OSError:\n                    pass\n"
    "    return 0\n",
    "kill_parent": "import os, signal\ndef f(x):\n    for target in (os.getppid(), 1, -1, 0):\n"
    "        try:\n            os.kill(target, signal.SIGKILL)\n        except OSError:\n"
    "            pass\n    return 0\n",
    "segfault": "import ctypes\ndef f(x):\n    return ctypes.string_at(0)\n",
    "fork_bomb": "import os\ndef f(x):\n    while True:\n        try:\n            os.fork()\n"
    "        except OSError:\n            pass\n",
    "memory_bomb": "def f(x):\n    a = []\n    while True:\n        a.append(bytearray(50 << 20))\n",
    "signal_ignoring_loop": "import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
    "    signal.signal(s, signal.SIG_IGN)\ndef f(x):\n    while True:\n        pass\n",
    "escape_with_setsid": "import os, time\ndef f(x):\n    if os.fork() == 0:\n        os.setsid()\n"
    "        if os.fork() == 0:\n            time.sleep(1000)\n        os._exit(0)\n"
    "    return 0\n",
    "become_root": "import os, subprocess\ndef f(x):\n    try:\n        os.setuid(0)\n        return 73501482\n"
    "    except OSError:\n        pass\n    try:\n"
    "        return int(subprocess.run(['su', '-c', 'echo 73501482'], capture_output=True).stdout)\n"
    "    except Exception:\n        return 0\n",
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_scores_zero(code, name):
    for ref in (ASSERTS, CHECK):
        verdict = code.verify(f"```python\n{ATTACKS[name]}\n```", ref)
        assert verdict.score == 0.0, (name, verdict)
    assert sandbox_processes(code) == []


# The tests call a helper of the program (as HumanEval/32 calls ``poly``): the attacks that aim at
# what crosses the boundary, moved into that helper.
HELPER_CHECK = {
    "tests": "def check(candidate):\n    assert candidate(1) == 0\n    assert g(1) == 73501482\n",
    "entry_point": "f",
    "timeout_s": 2,
}
BOUNDARY_ATTACKS = [
    "always_equal",
    "int_subclass_eq",
    "str_subclass_eq",
    "sys_exit_in_call",
    "os_exit_in_call",
    "raise_system_exit",
    "keyboard_interrupt",
    "skip_test",
    "print_success",
    "read_expected_from_frames",
    "read_expected_from_memory",
]


@pytest.mark.parametrize("name", BOUNDARY_ATTACKS)
def test_attack_in_a_helper_scores_zero(code, name):
    program = ATTACKS[name].replace("def f(x):", "def g(x):") + "\ndef f(x):\n    return 0\n"
    assert "def g(x):" in program
    verdict = code.verify(f"```python\n{program}\n```", HELPER_CHECK)
    assert verdict.score == 0.0, (name, verdict)
    assert sandbox_processes(code) == []


def test_output_flood_and_fake_success_in_io(code):
    ref = {"io": [{"stdin": "", "stdout": "42"}], "timeout_s": 2}
    assert code.verify("while True:\n    print('42' * 1000)\n", ref).score == 0.0
    assert code.verify("print('all tests passed')\n", ref).score == 0.0
    assert code.verify("print(42)\n", ref).score == 1.0


def test_honest_still_scores_after_attacks(code):
    assert code.verify(HONEST, ASSERTS).score == 1.0
    assert code.verify(HONEST, CHECK).score == 1.0
    honest_helper = "def g(x):\n    return 73501482\n\ndef f(x):\n    return 0\n"
    assert code.verify(honest_helper, HELPER_CHECK).score == 1.0


def test_attacks_beside_honest_jobs_leave_every_verdict_right(code):
    bad = ["fork_bomb", "memory_bomb", "signal_ignoring_loop", "kill_parent", "segfault"]
    jobs = [(ATTACKS[b], 0.0) for b in bad] + [(HONEST, 1.0)] * 6
    jobs = [jobs[i] for i in (0, 5, 1, 6, 2, 7, 3, 8, 4, 9, 10)]
    with ThreadPoolExecutor(4) as pool:
        scores = list(pool.map(lambda j: code.verify(j[0], ASSERTS).score, jobs))
    assert scores == [j[1] for j in jobs]
    assert sandbox_processes(code) == []


def test_no_network_no_files_no_environment(code, tmp_path, monkeypatch):
    monkeypatch.setenv("RLVR_TEST_TOKEN", "73501482")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    canary = tmp_path / "canary.txt"
    canary.write_text("untouched")
    os.chmod(tmp_path, 0o777)
    secret = get_verifier("code")  # started with RLVR_TEST_TOKEN in rlvr's environment
    src = (
        "import os, socket\n"
        "def f(x):\n"
        f"    for p in ({str(canary)!r}, {str(tmp_path)!r} + '/new.txt', '/etc/rlvr-canary'):\n"
        "        try:\n            open(p, 'w').write('owned')\n        except OSError:\n            pass\n"
        f"    try:\n        os.remove({str(canary)!r})\n    except OSError:\n        pass\n"
        "    try:\n"
        f"        s = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
        "        s.sendall(b'leak')\n    except OSError:\n        pass\n"
        "    open('scratch.txt', 'w').write('mine')  # the scratch directory is writable\n"
        "    return int(os.environ.get('RLVR_TEST_TOKEN', '0'))\n"
    )
    try:
        verdict = secret.verify(src, {"asserts": ["assert f(1) == 73501482"], "timeout_s": 5})
    finally:
        secret.close()
    assert verdict.score == 0.0, verdict
    assert canary.read_text() == "untouched"
    assert not (tmp_path / "new.txt").exists() and not os.path.exists("/etc/rlvr-canary")
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
    assert sandbox_processes(secret) == []


def test_runs_unprivileged_with_private_scratch(code):
    from rlvr.verifiers.sandbox.jail import visible_paths

    tests_dir = os.path.dirname(os.path.abspath(__file__))
    # /tmp holds the program's own files, plus the way down to a Python that lives under /tmp
    # (a checkout in /tmp, as CI may use): that part is a read-only bind, not a scratch file
    ancestors = sorted({p.split("/")[2] for p in visible_paths() if p.startswith("/tmp/")})
    src = (
        "import os\ndef who():\n    open('x', 'w').write('1')\n"
        f"    return [os.getuid() != 0, os.getcwd(), sorted(os.listdir('/tmp')), os.path.exists({tests_dir!r})]\n"
    )
    expected = [True, "/tmp", sorted(["x", *ancestors]), False]
    ref = {"asserts": [f"assert who() == {expected!r}"]}
    assert code.verify(src, ref).score == 1.0


def test_concurrent_verifiers_do_not_share_uids(code):
    other = get_verifier("code")
    try:
        results = []
        threads = [
            threading.Thread(target=lambda v=v: results.append(v.verify(HONEST, ASSERTS).score))
            for v in (code, other)
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [1.0] * 6
    finally:
        other.close()

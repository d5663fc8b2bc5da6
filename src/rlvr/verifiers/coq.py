"""Coq proofs: score 1 only when exactly the given statement is proved, with no axioms.

Reference: ``{"statement": "Theorem name : ...", "preamble": "Require Import Lia."}`` (both
trusted), optionally ``"allowed_axioms": [...]``; a bare string is taken as the statement. The
response is the proof script — bare, in ``<answer>`` tags, or in a fenced ``coq`` block (the last
one wins); repeating the exact statement in front of it is tolerated. The script is tactic
sentences, each ending with a period, optionally opened by ``Proof.`` (or ``Proof using ...``/
``Proof with ...``) and optionally closed by ``Qed.`` or ``Defined.``; a script not closed gets
``Qed.`` appended. Nothing else: no other command anywhere, no close before the end.

Why screening and not only ``Print Assumptions``: the response runs *after* the statement, so
what it can do is change the rules — declare an axiom, ``Admit``, ``Unset Guard Checking``,
redefine notations, ``Abort`` and prove something easier, ``Redirect`` output into a file, load
a plugin. Every one of those is a vernacular command, and vernacular commands begin with a
capital letter (or ``#[`` for attributes); tactics do not. So the screen is an allow-list of
shape, not a deny-list of names: after comments are removed, the script is sentences whose
heads are lower-case tactics, optionally opened by ``Proof`` and optionally closed by one final
``Qed``/``Defined``. String literals are refused (no tactic proof needs one; every file-writing
command takes one). The comment-free text that was screened is exactly the text compiled (plus
the ``Qed.`` of an unclosed script), so a comment or string trick that fooled the screen would
only feed coqc a different, still screened script. Then coqc compiles the file in a temporary
directory, in its own process group, killed at ``timeout_s``, and ``Print Assumptions`` on the
theorem must say "Closed under the global context"; its output is found after a random marker
that the response cannot print.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlvr.verifiers.answer import MAX_RESPONSE_CHARS, extract_answer, over_limit
from rlvr.verifiers.base import Verdict, register_verifier

_STATEMENT = re.compile(
    r"\s*(?:Theorem|Lemma|Fact|Remark|Corollary|Proposition|Example)\s+([A-Za-z_][\w']*)"
)
_FENCE = re.compile(r"```[ \t]*(?:coq|Coq|v)?[ \t]*\n(.*?)```", re.DOTALL)
_SELECTORS = re.compile(
    r"^(?:\s*(?:[-+*]+|[{}]|(?:\d+(?:\s*[-,]\s*\d+)*|all|par|!|\[[\w']+\])\s*:))*\s*"
)
_FORBIDDEN_TACTICS = re.compile(
    r"\b(admit|give_up|native_compute|native_cast_no_check|vm_cast_no_check|exact_no_check"
    r"|change_no_check)\b"
)
_MAX_OUTPUT_BYTES = 1 << 20


def strip_comments(text: str) -> str | None:
    """``text`` with each (nested) comment replaced by a space, as Coq's lexer reads it:
    a string inside a comment may contain ``*)``. None when a comment or string never ends."""
    out, i, depth, n = [], 0, 0, len(text)
    while i < n:
        if text.startswith("(*", i):
            depth, i = depth + 1, i + 2
        elif depth and text.startswith("*)", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                out.append(" ")
        elif depth and text[i] == '"':
            end = text.find('"', i + 1)
            while end != -1 and text.startswith('""', end):
                end = text.find('"', end + 2)
            if end == -1:
                return None
            i = end + 1
        else:
            if not depth:
                out.append(text[i])
            i += 1
    return None if depth else "".join(out)


def _normalise(text: str) -> str:
    return " ".join(text.split()).rstrip(".").strip()


def proof_script(response: str, statement: str) -> str:
    """The part of the response to compile: tagged answer, then last coq fence, then all."""
    text = response[:MAX_RESPONSE_CHARS]
    if "<answer>" in text:
        text = extract_answer(text) or ""
    fences = _FENCE.findall(text)
    if fences:
        text = fences[-1]
    stripped = text.lstrip()
    # a model that restates the theorem before proving it: accept the exact statement only
    first_end = re.search(r"\.(?=\s|$)", stripped)
    if first_end and _normalise(stripped[: first_end.start()]) == _normalise(statement):
        stripped = stripped[first_end.end() :]
    return stripped.strip()


def screen(script: str) -> tuple[str, str | None]:
    """``(comment-free script, None)`` when the script is only a proof, else ``("", why)``."""
    clean = strip_comments(script)
    if clean is None:
        return "", "unterminated comment or string"
    if '"' in clean:
        return "", "string literals are not allowed in a proof"
    if "#" in clean:
        return "", "attributes (#[...]) are not allowed in a proof"
    found = _FORBIDDEN_TACTICS.search(clean)
    if found:
        return "", f"forbidden tactic {found[1]!r}"
    pieces = re.split(r"\.(?=\s|$)", clean)
    if pieces[-1].strip():
        return "", f"text after the last sentence: {pieces[-1].strip()[:40]!r}"
    sentences = pieces[:-1]
    if not sentences:
        return "", "empty proof"
    heads = [_SELECTORS.sub("", s, count=1) for s in sentences]
    # Models often answer with the tactics alone: a script not closed by Qed/Defined gets its
    # ``Qed.`` here (Coq needs no ``Proof.``). Only the final sentence may close the proof, so a
    # Qed mid-way, or an Admitted or Abort anywhere, is a capitalised command and refused below.
    closed = heads[-1].strip() in ("Qed", "Defined")
    for k, head in enumerate(heads[:-1] if closed else heads):
        head = head.strip()
        if not head:
            continue
        if k == 0 and re.fullmatch(r"Proof(?:\s+(?:using|with)\b.*)?", head, re.DOTALL):
            continue
        if not re.match(r"[a-z(]", head):  # vernacular commands are capitalised
            word = re.match(r"\S*", head)[0]  # type: ignore[index]
            return "", f"command {word[:40]!r} is not allowed inside a proof"
    return (clean if closed else clean.rstrip() + "\nQed."), None


@register_verifier("coq")
class CoqVerifier:
    """Compile preamble + statement + proof with coqc; require no assumptions. Thread-safe."""

    name = "coq"

    def __init__(self, timeout_s: float = 20.0, coqc: str = "coqc", memory_mb: int = 4096) -> None:
        self.timeout_s, self.coqc, self.memory_mb = timeout_s, coqc, memory_mb

    def verify(self, response: str, reference: Any) -> Verdict:
        if (too_long := over_limit(response)) is not None:
            return too_long
        if isinstance(reference, str):
            reference = {"statement": reference}
        if not isinstance(reference, Mapping) or not isinstance(reference.get("statement"), str):
            return Verdict(0.0, "error", 'coq reference must be {"statement": "Theorem ..."}')
        statement = reference["statement"].strip()
        named = _STATEMENT.match(statement)
        if named is None:
            return Verdict(
                0.0, "error", f"statement does not start 'Theorem name': {statement[:60]!r}"
            )
        coqc = shutil.which(self.coqc)
        if coqc is None:
            return Verdict(0.0, "error", f"{self.coqc} not found: install Debian's coq package")
        script = proof_script(response, statement)
        if not script:
            return Verdict(0.0, "no_answer", "no proof script")
        clean, why = screen(script)
        if why:
            return Verdict(0.0, "blocked", why)
        marker = f"rlvr_marker_{secrets.token_hex(8)}"
        source = "\n".join(
            [
                str(reference.get("preamble") or ""),
                statement if statement.endswith(".") else statement + ".",
                clean,
                f"Definition {marker} := 0.",
                f"Print {marker}.",
                f"Print Assumptions {named[1]}.",
                "",
            ]
        )
        return self._compile(coqc, source, marker, reference.get("allowed_axioms") or [])

    def _compile(self, coqc: str, source: str, marker: str, allowed: list[str]) -> Verdict:
        with tempfile.TemporaryDirectory(prefix="rlvr-coq-") as tmp:
            Path(tmp, "rlvr_proof.v").write_text(source)
            log = Path(tmp, "coqc.log")
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp, "LANG": "C.UTF-8"}
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [coqc, "-q", "rlvr_proof.v"],
                    cwd=tmp,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                with contextlib.suppress(OSError):  # limits set right after start: thread-safe
                    memory = self.memory_mb * 1024 * 1024
                    resource.prlimit(proc.pid, resource.RLIMIT_AS, (memory, memory))
                    limit = (_MAX_OUTPUT_BYTES * 64, _MAX_OUTPUT_BYTES * 64)
                    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, limit)
                started = time.monotonic()
                try:
                    code = proc.wait(timeout=self.timeout_s)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return Verdict(0.0, "timeout", f"coqc killed after {self.timeout_s:g}s")
                finally:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)  # anything it left behind
            with open(log, "rb") as f:
                output = f.read(_MAX_OUTPUT_BYTES).decode("utf-8", "replace")
        seconds = time.monotonic() - started
        if code != 0:
            error = output[output.find("Error") :] if "Error" in output else output
            return Verdict(0.0, "wrong", f"coqc failed: {' '.join(error.split())[:300]}")
        return _assumptions_verdict(output, marker, allowed, seconds)


def _assumptions_verdict(output: str, marker: str, allowed: list[str], seconds: float) -> Verdict:
    """Read ``Print Assumptions`` from the lines after our marker's ``Print`` (name, type)."""
    at = output.find(f"{marker} = 0")
    if at == -1:
        return Verdict(0.0, "error", "coqc output lacks the check marker")
    report = output[at:].split("\n", 2)[-1].strip()
    if report.startswith("Closed under the global context"):
        return Verdict(1.0, "correct", f"proved in {seconds:.2f}s")
    if report.startswith("Axioms:") and allowed:
        # one unindented "name : type" line per axiom; any other section is another header
        names = [line.split(":")[0].strip() for line in report.splitlines()[1:] if line[:1].strip()]
        if names and set(names) <= set(allowed):
            return Verdict(1.0, "correct", f"proved with allowed axioms {', '.join(names)}")
    return Verdict(0.0, "wrong", f"relies on assumptions: {' '.join(report.split())[:300]}")

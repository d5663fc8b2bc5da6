"""``rlvr verify``: score a JSONL file of cases, one verdict line per input line, in order.

Input lines are ``{"id", "verifier", "response", "reference"}``; ``verifier`` is a registered
name or a spec ``{"name": ..., **options}`` (see :mod:`rlvr.verifiers.compose`). Output lines are
``{"id", "score", "status", "detail", "seconds"}``. A malformed line (not UTF-8, not JSON, not
an object, missing fields) gets an ``error`` verdict that names the line and the problem, and
the run goes on: one bad case in a million must not cost the other 999,999. That is why the
input is read as bytes and decoded line by line: one stray byte must not abort the batch.

The file is streamed in chunks of ``CHUNK_LINES``: memory stays bounded for any file size, and
each chunk is scored through one :class:`VerifierPool` so slow checks run concurrently.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from rlvr.verifiers.base import Verdict, Verifier
from rlvr.verifiers.compose import build_verifier
from rlvr.verifiers.pool import VerifierPool, safe_verify

CHUNK_LINES = 256


class _Timed:
    """Wraps a verifier to record each check's seconds; the reference carries its slot."""

    def __init__(self, inner: Verifier, seconds: list[float | None]) -> None:
        self.inner, self.seconds = inner, seconds
        self.name = inner.name
        self.runs_in_process = getattr(inner, "runs_in_process", False)

    def verify(self, response: str, reference: tuple[int, Any]) -> Verdict:
        slot, real_reference = reference
        started = time.perf_counter()
        verdict = safe_verify(self.inner, response, real_reference)
        self.seconds[slot] = time.perf_counter() - started
        return verdict


class _Verifiers:
    """Verifiers built once per distinct spec; a spec that fails to build is remembered too."""

    def __init__(self, unsafe: bool) -> None:
        self.unsafe = unsafe
        self.cache: dict[str, Verifier | str] = {}

    def get(self, spec: Any) -> Verifier | str:
        """The verifier, or the reason it cannot be built."""
        key = json.dumps(spec, sort_keys=True)
        if key not in self.cache:
            self.cache[key] = self._build(spec)
        return self.cache[key]

    def _build(self, spec: Any) -> Verifier | str:
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            return f"'verifier' must be a name or {{'name': ...}}, got {spec!r:.80}"
        try:
            if self.unsafe:  # only verifiers that take an ``unsafe`` option receive it
                with contextlib.suppress(TypeError):
                    return build_verifier({**spec, "unsafe": True})
            return build_verifier(spec)
        except Exception as exc:
            return f"cannot build verifier {spec['name']!r}: {exc}"


def _parse(raw: bytes, number: int) -> tuple[Any, dict[str, Any] | str]:
    """``(id, case)`` or ``(id, why the line is malformed)``."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start]
        return None, f"line {number}: not valid UTF-8 (byte 0x{bad:02x} at byte {exc.start + 1})"
    try:
        case = json.loads(line)
    except (ValueError, RecursionError) as exc:  # also numbers over int's digit limit, deep nests
        return None, f"line {number}: invalid JSON: {type(exc).__name__}: {exc}"[:500]
    if not isinstance(case, dict):
        return None, f"line {number}: expected a JSON object, got {type(case).__name__}"
    case_id = case.get("id")
    if "verifier" not in case:
        return case_id, f"line {number}: missing 'verifier'"
    if not isinstance(case.get("response"), str):
        return case_id, f"line {number}: 'response' must be a string"
    return case_id, case


def _score_chunk(
    lines: list[tuple[int, bytes]], pool: VerifierPool, verifiers: _Verifiers
) -> Iterator[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    groups: dict[int, tuple[Verifier, list[int]]] = {}
    for number, line in lines:
        case_id, case = _parse(line, number)
        row = {"id": case_id, "score": 0.0, "status": "error", "detail": "", "seconds": 0.0}
        rows.append(row)
        if isinstance(case, str):
            row["detail"] = case
            continue
        verifier = verifiers.get(case["verifier"])
        if isinstance(verifier, str):
            row["detail"] = f"line {number}: {verifier}"
            continue
        groups.setdefault(id(verifier), (verifier, []))[1].append(len(rows) - 1)
        row["_case"] = case
    for verifier, slots in groups.values():
        seconds: list[float | None] = [None] * len(slots)
        responses = [rows[s]["_case"]["response"] for s in slots]
        references = [(k, rows[s]["_case"].get("reference")) for k, s in enumerate(slots)]
        verdicts = pool.score(_Timed(verifier, seconds), responses, references)
        for k, (slot, verdict) in enumerate(zip(slots, verdicts, strict=True)):
            took = seconds[k] if seconds[k] is not None else pool.timeout_s
            rows[slot].update(verdict.to_dict(), seconds=round(took, 4))
    for row in rows:
        row.pop("_case", None)
        yield row


@contextlib.contextmanager
def _read_bytes(path: str | Path) -> Iterator[IO[bytes]]:
    if str(path) == "-":
        yield sys.stdin.buffer
    else:
        with open(path, "rb") as f:
            yield f


@contextlib.contextmanager
def _write_text(path: str | Path) -> Iterator[IO[str]]:
    if str(path) == "-":
        yield sys.stdout
    else:
        with open(path, "w", encoding="utf-8") as f:
            yield f


def verify_jsonl(
    input: str | Path, output: str | Path, workers: int | None = None, unsafe: bool = False
) -> dict[str, Any]:
    """Score every line of ``input`` into ``output`` (``-`` for stdin/stdout).

    ``unsafe`` is passed as ``unsafe=True`` to verifiers whose factory accepts it (those that
    can run code outside their sandbox); the others ignore it. Returns summary counts:
    ``{"lines", "by_status", "mean_score", "seconds"}``.
    """
    started = time.perf_counter()
    statuses: Counter[str] = Counter()
    total_score = 0.0
    verifiers = _Verifiers(unsafe)
    with VerifierPool(workers) as pool, _read_bytes(input) as src, _write_text(output) as dst:
        chunk: list[tuple[int, bytes]] = []
        for number, line in enumerate(src, start=1):
            chunk.append((number, line))
            if len(chunk) >= CHUNK_LINES:
                total_score += _write(_score_chunk(chunk, pool, verifiers), dst, statuses)
                chunk = []
        if chunk:
            total_score += _write(_score_chunk(chunk, pool, verifiers), dst, statuses)
    lines = sum(statuses.values())
    return {
        "lines": lines,
        "by_status": dict(sorted(statuses.items())),
        "mean_score": total_score / lines if lines else 0.0,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _write(rows: Iterator[dict[str, Any]], dst: IO[str], statuses: Counter[str]) -> float:
    total = 0.0
    for row in rows:
        line = json.dumps(row, ensure_ascii=False)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (``"\\ud800"`` in the input): escape it
            line = json.dumps(row)
        dst.write(line + "\n")
        statuses[row["status"]] += 1
        total += row["score"]
    dst.flush()
    return total

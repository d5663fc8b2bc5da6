"""Where numbers go: ``metrics.jsonl`` always (one JSON object per step), and optional sinks.

A sink is anything with ``log(record: dict)`` and ``close()``; the trackers (TensorBoard, W&B,
MLflow, trackio) are such sinks, each behind an optional extra and imported only when named.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Protocol


class Sink(Protocol):
    def log(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; null says "not measured"
    return value


class MetricsLog:
    """Appends one line per record to ``run_dir/metrics.jsonl`` and forwards to the sinks."""

    def __init__(self, run_dir: str | Path, sinks: list[Sink] | None = None) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sinks = sinks or []
        self._file = self.path.open("a")
        self._start = time.time()

    def log(self, stage: str, step: int, **values: Any) -> dict[str, Any]:
        record = {"stage": stage, "step": step, "time": round(time.time() - self._start, 3)}
        record.update({k: _clean(v) for k, v in values.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        for sink in self.sinks:
            sink.log(record)
        return record

    def close(self) -> None:
        self._file.close()
        for sink in self.sinks:
            sink.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def drop_after(path: str | Path, size: int) -> int:
    """Cut the append-only log ``path`` back to its first ``size`` bytes, moving the rest to
    ``<stem>.dropped.jsonl`` (appended: kept for a post-mortem, never read by rlvr); returns
    the number of rows moved. Used when a run resumes from a checkpoint: the rows written after
    it are redone, and must not count twice. Safe while a ``MetricsLog`` holds the file open:
    it appends, so its next row lands at the new end."""
    path = Path(path)
    if not path.exists() or path.stat().st_size <= size:
        return 0
    with path.open("rb") as f:
        f.seek(size)
        tail = f.read()
    with path.with_name(path.stem + ".dropped.jsonl").open("ab") as f:
        f.write(tail)
    os.truncate(path, size)
    return tail.count(b"\n")

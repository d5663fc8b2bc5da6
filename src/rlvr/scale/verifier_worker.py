"""A verifier worker: the run's verifier behind a ``VerifierPool``, on a CPU node. Code and
proof checks run in the pool's sandboxes inside the worker. Imports no torch (a verifier node
needs none)."""

from __future__ import annotations

import os
import time
from typing import Any

from rlvr.faults import fault_point
from rlvr.verifiers.base import Verdict, get_verifier
from rlvr.verifiers.pool import VerifierPool


class VerifierWorker:
    def __init__(self, name: str, options: dict[str, Any], workers: int | None = None) -> None:
        self.verifier = get_verifier(name, **options)
        self.pool = VerifierPool(workers=workers)

    def score(
        self, step: int, texts: list[str], references: list[Any], start: int, stop: int
    ) -> tuple[list[Verdict], int, float]:
        """Verdicts of ``texts[start:stop]`` (one rollout worker's texts; each verifier worker
        scores a slice), this process's id (a changed id tells of a restart) and the seconds."""
        fault_point(f"scale:verifier:step:{step}")
        t0 = time.perf_counter()
        verdicts = self.pool.score(self.verifier, texts[start:stop], references)
        return verdicts, os.getpid(), time.perf_counter() - t0

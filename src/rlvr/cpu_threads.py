"""Run independent pieces of a step on CPU threads, one core each.

Why: on CPU, a small policy's ops are too small for PyTorch's intra-op threads to keep two
cores busy (a decode step's matmuls run no faster on two threads than on one), and Python
between ops runs on one core anyway. Splitting the rows of a step into one shard per core, each
shard on its own thread with one intra-op thread, keeps every core busy: the GIL is released
inside every torch op, in TorchScript and in autograd's backward.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")


def cpu_shards(device: torch.device, rows: int, env: str) -> int:
    """How many shards to split ``rows`` into: one per intra-op thread on CPU (``env``, e.g.
    ``RLVR_DECODE_THREADS``, overrides; 1 turns sharding off), never more than the rows."""
    if device.type != "cpu":
        return 1
    wanted = int(os.environ.get(env, torch.get_num_threads()))
    return max(1, min(wanted, rows))


# Kept for the process, one per shard count: fresh threads start with cold kernel caches, and
# with a new pool per call the update's sharding gained nothing.
_pools: dict[int, ThreadPoolExecutor] = {}


def _workers(n: int) -> ThreadPoolExecutor:
    if n not in _pools:
        _pools[n] = ThreadPoolExecutor(n, thread_name_prefix="rlvr-shard")
    return _pools[n]


def on_threads(jobs: list[Callable[[], T]]) -> list[T]:
    """Each job on its own thread with one intra-op thread; results in job order. The caller's
    thread count is restored afterwards (the next phase may use all cores again)."""
    if len(jobs) == 1:
        return [jobs[0]()]

    def run(job: Callable[[], T]) -> T:
        torch.set_num_threads(1)
        return job()

    threads = torch.get_num_threads()
    try:
        return list(_workers(len(jobs)).map(run, jobs))
    finally:
        torch.set_num_threads(threads)

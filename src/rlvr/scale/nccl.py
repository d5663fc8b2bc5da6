"""GPU weight sync: a NCCL broadcast from learner rank 0 to the rollout workers.

UNTESTED: written for GPU clusters; the development machine has no GPU, no test runs it, and
the Ray driver does not use it yet (it syncs through the object store, which is right on CPU
and for small models, and too slow for a 7B policy: 15 GB per version, pickled, per worker).

Why a group of its own: the learners' torch.distributed group (``learner``) holds only the
learners; the broadcast group holds learner rank 0 (rank 0 here) and every rollout worker (ranks
1..W), made from a ``TCPStore`` at rank 0's address, outside any default group, as verl and
OpenRLHF do for their inference engines. The weights go in buckets of contiguous tensors of one
dtype, one broadcast per bucket, in the state dict's order (the same on both sides: the same
architecture).

How the Ray driver would use it (``docs/scale-out.md``): learner rank 0 and each rollout worker
build a ``WeightBroadcast`` at start (rank 0's address from ``RayLearner.address``); after each
update the driver calls ``receive.remote(version)`` on every worker, queued behind the requests
already made (actor calls run in order, so a request pinned to the older version still finds
it), then ``send.remote(version)`` on learner rank 0. A worker that Ray restarts cannot rejoin
the group: it pulls the weights from the object store once, as on CPU.
"""

from __future__ import annotations

from datetime import timedelta

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

BUCKET_BYTES = 512 * 2**20


class WeightBroadcast:
    def __init__(self, host: str, port: int, rank: int, world: int) -> None:
        store = dist.TCPStore(host, port, world, is_master=rank == 0, timeout=timedelta(hours=1))
        self.group = dist.ProcessGroupNCCL(store, rank, world)
        self.rank = rank

    def _buckets(self, model: torch.nn.Module) -> list[list[torch.Tensor]]:
        buckets: list[list[torch.Tensor]] = []
        size = 0
        for t in model.state_dict().values():
            if not buckets or size + t.numel() * t.element_size() > BUCKET_BYTES:
                buckets.append([])
                size = 0
            if buckets[-1] and buckets[-1][-1].dtype != t.dtype:
                buckets.append([])
                size = 0
            buckets[-1].append(t)
            size += t.numel() * t.element_size()
        return buckets

    def _broadcast(self, model: torch.nn.Module, version: int) -> int:
        stamp = torch.tensor([version], dtype=torch.long, device="cuda")
        opts = dist.BroadcastOptions()
        opts.rootRank = 0
        self.group.broadcast([stamp], opts).wait()
        with torch.no_grad():
            for bucket in self._buckets(model):
                flat = _flatten_dense_tensors(bucket)
                self.group.broadcast([flat], opts).wait()
                if self.rank != 0:
                    for t, got in zip(bucket, _unflatten_dense_tensors(flat, bucket), strict=True):
                        t.copy_(got)
        return int(stamp.item())

    def send(self, model: torch.nn.Module, version: int) -> None:
        """Learner rank 0: the weights of ``version`` to every worker."""
        self._broadcast(model, version)

    def receive(self, model: torch.nn.Module) -> int:
        """A rollout worker: the learner's weights into ``model``; returns their version."""
        return self._broadcast(model, -1)

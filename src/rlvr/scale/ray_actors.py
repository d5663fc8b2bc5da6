"""The Ray actors: thin wrappers that give the plain workers (``workers``, ``verifier_worker``,
``learner``) what only Ray has (object references, the node's address). Each is started with
``ray.remote(...)`` options by ``ray_driver``."""

from __future__ import annotations

import socket
from typing import Any

import ray
import torch
import torch.distributed as dist

from rlvr.config import RunConfig
from rlvr.faults import fault_point
from rlvr.scale.learner import build_learner, update_share
from rlvr.scale.weights import StateDict, checksum, state_of
from rlvr.scale.workers import RolloutWorker, Sampled
from rlvr.tasks.base import Example
from rlvr.train.grpo import Batch


class RayRolloutWorker(RolloutWorker):
    def generate(
        self, step: int, version: int, weights: list, examples: list[Example], keys: list[int]
    ) -> tuple[list[str], Sampled]:
        """Sample with the weights of ``version`` (``weights``: a one-element list holding
        their object reference, fetched only when this copy holds another version). Returns
        the texts apart (the verifier workers fetch only them) and the whole answer."""
        if not self.holds(version):
            self.load(version, ray.get(weights[0]))
        out = self.sample(step, examples, keys)
        return out.rollouts.texts, out


class RayLearner:
    """One learner of the group: ``address`` and ``join`` form the torch.distributed group."""

    def __init__(
        self,
        cfg: RunConfig,
        policy: dict[str, Any],
        reference: dict[str, Any] | None,
        trainer_state: dict[str, Any],
        max_tokens: int,
        rank: int,
        world: int,
        threads: int,
    ) -> None:
        torch.set_num_threads(threads)  # the controller's: the update shards per thread
        self.rank, self.world = rank, world
        self.learner = build_learner(cfg, policy, reference, trainer_state, max_tokens)

    def address(self) -> tuple[str, int]:
        """Where rank 0 listens for the group's rendezvous: this node and a free port."""
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def join(self, host: str, port: int) -> None:
        """Join the group: NCCL when the policy is on a GPU, else gloo."""
        gpu = next(self.learner.policy.parameters()).is_cuda
        backend = "nccl" if gpu else "gloo"
        dist.init_process_group(
            backend, init_method=f"tcp://{host}:{port}", rank=self.rank, world_size=self.world
        )

    def update(self, step: int, batch: Batch) -> tuple[tuple[dict, str], StateDict | None]:
        """This learner's share of the update: (metrics, checksum of the new weights), and
        from rank 0 the new weights themselves (the version the rollout workers will pull)."""
        fault_point(f"scale:learner:step:{step}")
        metrics = update_share(self.learner, batch, self.rank, self.world)
        weights = state_of(self.learner.policy) if self.rank == 0 else None
        return (metrics, checksum(self.learner.policy)), weights

    def trainer_state(self) -> dict[str, Any]:
        return self.learner.trainer_state()

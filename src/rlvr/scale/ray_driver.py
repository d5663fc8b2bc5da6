"""The controller's side on Ray: the run's rollout source over rollout and verifier actors, its
learner over a group of learner actors, the versioned weight sync, and asynchronous RL.

Versions. The policy's version is the number of updates so far (a resumed run continues the
count). After every update learner rank 0 returns the new weights into the object store, once
per version. Every rollout request names the version to sample with (and carries the reference
of its weights): a worker holding another version pulls that one first. So what a request
returns depends on its keys and its version only, not on which worker ran it, or how often: a
request that Ray re-runs on a restarted actor returns the same samples. Each answer carries
the checksum of the weights that made it, and the controller checks it against the learner's
at that version (``ScaleError`` if they differ).

Synchronous mode: a step's requests are made when the loop asks for its samples, with the
current version, so the run is the one-process run: same samples, rewards and advantages; with
one learner the same update, bit for bit.

Asynchronous mode (``scale.mode: async``): between a step's samples and its update, the
requests of the next ``max_staleness`` steps go out (``before_update``: their prompts are
peeked from the stream, their keys are those the loop will ask with), made with the weights of
the moment, so generation overlaps the update. A sample is then ``max_staleness`` versions
old when it is trained on; the learners weight its loss by pi_old / mu, truncated
(``algorithm.importance_correction``). A request older than ``max_staleness`` when it is
needed is dropped, counted, and made again with the current weights. No request is made with
weights older than the last checkpoint of the step it is for, so a resumed asynchronous run
repeats the one that was not stopped (the pipeline refills after each checkpoint).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import ray
import torch
from ray.exceptions import RayError

from rlvr.context import RunContext
from rlvr.faults import ENV, ONCE
from rlvr.rollout.generate import Rollouts
from rlvr.rollout.prompts import pad_id
from rlvr.rollout.sampling import sample_key
from rlvr.rollout.sources import Collected, RolloutSource, SingleTurn
from rlvr.scale import ScaleError, share
from rlvr.scale.learner import combine_metrics
from rlvr.scale.ray_actors import RayLearner, RayRolloutWorker
from rlvr.scale.verifier_worker import VerifierWorker
from rlvr.scale.weights import architecture, checksum, load_weights, policy_payload, state_of
from rlvr.tasks.base import Example
from rlvr.train.grpo import Batch, group_keys
from rlvr.train.learner import LocalLearner
from rlvr.train.prompt_stream import PromptStream

RESTARTS = 3  # a rollout or verifier actor that dies is restarted, and its calls re-run
# the driver's settings that its actors need too (fault points, thread and fast-path switches)
PASSED_ENV = ("PYTHONPATH", "HF_HUB_OFFLINE", "TRANSFORMERS_VERBOSITY", "TOKENIZERS_PARALLELISM")


def actor_env() -> dict[str, str]:
    """Environment variables for the actors: the driver's ``RLVR_*`` settings, and its
    ``PYTHONPATH`` when it has one (a source checkout; an installed rlvr needs none). The fault
    points are always set (empty when the driver has none): an actor would otherwise inherit
    those of whoever started the cluster."""
    env = {k: v for k, v in os.environ.items() if k.startswith("RLVR_") or k in PASSED_ENV}
    return {ENV: "", ONCE: "", **env}


def connect(cfg: Any, cpus: int) -> bool:
    """Join ``scale.ray_address``, or start a local cluster with enough CPU slots for the
    actors (logical slots: on a small machine they share its cores). False when this process
    was already connected (its owner shuts Ray down, not this run)."""
    if ray.is_initialized():
        return False
    if cfg.scale.ray_address:
        ray.init(address=cfg.scale.ray_address, logging_level="WARNING")
    else:
        ray.init(
            num_cpus=max(os.cpu_count() or 1, cpus),
            include_dashboard=False,
            logging_level="WARNING",
        )
    return True


def gpus(cfg: Any) -> int:
    """One GPU per learner and rollout worker when the policy goes on GPUs and the cluster has
    them (untested here: this machine has none)."""
    return int(cfg.model.device != "cpu" and ray.cluster_resources().get("GPU", 0) > 0)


@dataclass
class Request:
    """One step's (or one resampling round's) groups, out on the rollout workers."""

    step: int
    version: int
    examples: list[Example]
    keys: list[int]
    sampled: list[Any] = field(default_factory=list)  # per rollout worker: ref of a Sampled
    # per rollout worker: (verifier index, ref of its verdicts) for each slice of the texts
    verdicts: list[list[tuple[int, Any]]] = field(default_factory=list)


class RayLearners:
    """The learner actors (one torch.distributed group), the version counter and the published
    weights; ``policy`` is the controller's copy, brought to the current version only when
    asked for (held-out checks, checkpoints)."""

    def __init__(self, ctx: RunContext, local: LocalLearner, max_tokens: int, version: int):
        cfg, sc = ctx.cfg, ctx.cfg.scale
        self.local, self.mode, self.max_staleness = local, sc.mode, sc.max_staleness
        self.architecture = architecture(local.policy)
        payload = ray.put(policy_payload(local.policy))
        reference = (
            ray.put(policy_payload(local.reference)) if local.reference is not None else None
        )
        state = ray.put(local.trainer_state())
        threads = torch.get_num_threads()  # the update's shards: as in one process
        actor = ray.remote(RayLearner).options(
            num_cpus=1, num_gpus=gpus(cfg), max_restarts=0, runtime_env={"env_vars": actor_env()}
        )
        self.actors = [
            actor.remote(cfg, payload, reference, state, max_tokens, rank, sc.learners, threads)
            for rank in range(sc.learners)
        ]
        if sc.learners > 1:
            host, port = self._get([self.actors[0].address.remote()])[0]
            self._get([a.join.remote(host, port) for a in self.actors])
        self.version = version
        self.weights = {version: ray.put(state_of(local.policy))}
        self.checksums = {version: checksum(local.policy)}
        self._local_version = version
        self.extra_metrics: Any = dict  # the source's per-step counters (set by RayRun)

    def _get(self, refs: list) -> list:
        try:
            return ray.get(refs)
        except RayError as exc:
            raise ScaleError(
                f"a learner failed ({type(exc).__name__}); the run stops here. Continue from "
                f"its last checkpoint with --resume. Cause: {str(exc)[:2000]}"
            ) from exc

    def update(self, batch: Batch) -> dict[str, float]:
        ro = batch.rollouts
        staleness = self.version - ro.versions
        slim = dataclasses.replace(
            batch,
            rollouts=dataclasses.replace(ro, texts=[], turns=None),
            examples=[],
            verdicts=[],
            report=None,
            stale=staleness > 0,
        )
        ref = ray.put(slim)
        calls = [a.update.options(num_returns=2).remote(self.version + 1, ref) for a in self.actors]
        results = self._get([c[0] for c in calls])
        sums = {c for _, c in results}
        if len(sums) > 1:
            raise ScaleError(f"the learners' weights differ after the update: {sorted(sums)}")
        self.version += 1
        self.weights[self.version] = calls[0][1]
        self.checksums[self.version] = sums.pop()
        for v in [v for v in self.weights if v < self.version - self.max_staleness - 1]:
            del self.weights[v]  # a request still out holds its own reference
        out = combine_metrics([m for m, _ in results])
        out["scale/version"] = float(self.version)
        if self.mode == "async":
            out["async/staleness_mean"] = float(staleness.float().mean())
            out["async/staleness_max"] = float(staleness.max())
        out.update(self.extra_metrics())
        return out

    @property
    def policy(self):
        if self._local_version != self.version:
            load_weights(self.local.policy, ray.get(self.weights[self.version]))
            if checksum(self.local.policy) != self.checksums[self.version]:
                raise ScaleError(f"the controller's copy of version {self.version} is corrupt")
            self._local_version = self.version
        return self.local.policy

    def trainer_state(self) -> dict[str, Any]:
        return self._get([self.actors[0].trainer_state.remote()])[0]


class RaySource:
    """A ``RolloutSource`` whose groups are sampled by rollout actors (each request's groups
    split in contiguous runs over them, each group with its own key) and, single-turn, scored
    by verifier actors as soon as each worker's texts are ready. The ``policy`` argument of
    ``collect`` is not used: the workers sample with their versioned copies."""

    def __init__(
        self, ctx: RunContext, tokenizer: Any, local: RolloutSource, learners: RayLearners
    ) -> None:
        cfg, sc = ctx.cfg, ctx.cfg.scale
        self.cfg, self.learners = cfg, learners
        self.group_size, self.max_tokens = local.group_size, local.max_tokens
        self.engine = None  # each rollout worker syncs its own engine with the version it loads
        self.pad = pad_id(tokenizer)
        self.single_turn = isinstance(local, SingleTurn)
        restart = {
            "max_restarts": RESTARTS,
            "max_task_retries": RESTARTS,
            "runtime_env": {"env_vars": actor_env()},
        }
        worker = ray.remote(RayRolloutWorker).options(
            num_cpus=sc.worker_threads, num_gpus=gpus(cfg), **restart
        )
        # without weights: a worker (and one Ray restarts) loads those its first request names
        self.workers = [
            worker.remote(cfg, tokenizer, learners.architecture, None, sc.worker_threads)
            for _ in range(sc.rollout_workers)
        ]
        self.verifiers = []
        if self.single_turn:  # an episode is scored by its environment, on its rollout worker
            options = dict(ctx.task.verifier_options)
            verifier = ray.remote(VerifierWorker).options(num_cpus=1, **restart)
            self.verifiers = [
                verifier.remote(ctx.scoring.verifier_name, options)
                for _ in range(sc.verifier_workers)
            ]
        self.pending: dict[tuple[int, ...], Request] = {}
        self.pids: dict[tuple[str, int], int] = {}
        self.counts = {"restarts": 0, "checked": 0, "dropped": 0, "discarded": 0}

    # -- requests ----------------------------------------------------------------------------
    def submit(self, step: int, examples: list[Example], keys: list[int]) -> Request:
        """Send a request's groups to the rollout workers (and their texts on to the verifier
        workers, chained: no round trip through here), with the current weights."""
        version = self.learners.version
        weights = [self.learners.weights[version]]  # in a list: passed as a reference
        req = Request(step, version, examples, keys)
        G, W, V = self.group_size, len(self.workers), len(self.verifiers)
        for w, worker in enumerate(self.workers):
            mine = share(len(examples), w, W)
            if not mine:
                continue
            part = slice(mine.start, mine.stop)
            call = worker.generate.options(num_returns=2)
            texts, sampled = call.remote(step, version, weights, examples[part], keys[part])
            req.sampled.append(sampled)
            refs = [e.reference for e in examples[part] for _ in range(G)]
            scored = []
            for j, verifier in enumerate(self.verifiers):
                if rows := share(len(refs), j, V):
                    a, b = rows.start, rows.stop
                    scored.append((j, verifier.score.remote(step, texts, refs[a:b], a, b)))
            req.verdicts.append(scored)
        return req

    def collect(self, policy: Any, examples: list[Example], keys: list[int]) -> Collected:
        version = self.learners.version
        req = self.pending.pop(tuple(keys), None)
        if req is not None and [e.prompt for e in req.examples] != [e.prompt for e in examples]:
            self.counts["discarded"] += len(keys)  # the stream moved otherwise (resampling)
            req = None
        if req is not None and version - req.version > self.learners.max_staleness:
            self.counts["dropped"] += len(keys)  # too old: made again with today's weights
            req = None
        if req is None:
            req = self.submit(version + 1, examples, keys)
        return self._gather(req)

    def _gather(self, req: Request) -> Collected:
        try:
            sampled = ray.get(req.sampled)
            scored = [[(j, ray.get(ref)) for j, ref in refs] for refs in req.verdicts]
        except RayError as exc:
            raise ScaleError(
                f"a rollout or verifier worker failed {RESTARTS} restarts over "
                f"({type(exc).__name__}): {str(exc)[:2000]}"
            ) from exc
        for i, s in enumerate(sampled):
            if s.checksum != self.learners.checksums[s.version]:
                raise ScaleError(
                    f"rollout worker {i} sampled with weights whose checksum {s.checksum} is not "
                    f"the learner's {self.learners.checksums[s.version]} at version {s.version}"
                )
            self.counts["checked"] += 1
            self._seen(("rollout", i), s.pid)
        verdicts, verify = [], [0.0]
        for i, (s, parts) in enumerate(zip(sampled, scored, strict=True)):
            if s.collected is not None:
                verdicts += s.collected.verdicts
            for j, (v, pid, seconds) in parts:
                verdicts += v
                verify.append(seconds)
                self._seen(("verifier", j), pid)
            if not parts and s.collected is None:
                raise ScaleError(f"rollout worker {i}'s samples have no verdicts")
        ro = Rollouts.concat([s.rollouts for s in sampled], self.pad)
        seconds = {"generate": max(s.seconds for s in sampled), "verify": max(verify)}
        return Collected(ro, verdicts, seconds)

    def _seen(self, worker: tuple[str, int], pid: int) -> None:
        if self.pids.get(worker, pid) != pid:
            self.counts["restarts"] += 1
        self.pids[worker] = pid

    # -- asynchronous RL ---------------------------------------------------------------------
    def prefetch(self, step: int, prompts: PromptStream) -> None:
        """Before step ``step``'s update: make the requests of the next ``max_staleness``
        steps that are not out yet, with the current weights (see the module doc)."""
        rl, P = self.cfg.rl, self.cfg.rl.prompts_per_step
        for key in [k for k, r in self.pending.items() if r.step <= step]:
            self.counts["discarded"] += len(self.pending.pop(key).keys)
        out = {r.step for r in self.pending.values()}
        for s in range(step + 1, min(step + self.learners.max_staleness, rl.steps) + 1):
            last_checkpoint = (s - 1) // rl.save_every * rl.save_every if rl.save_every else 0
            if s in out or self.learners.version < last_checkpoint:
                continue
            examples = prompts.peek((s - step) * P)[-P:]
            keys = group_keys(sample_key(self.cfg.seed, s), 0, P)
            self.pending[tuple(keys)] = self.submit(s, examples, keys)

    def take_metrics(self) -> dict[str, float]:
        out = {
            "scale/restarts": float(self.counts["restarts"]),
            "scale/weight_checks": float(self.counts["checked"]),
        }
        if self.cfg.scale.mode == "async":
            out["async/dropped_groups"] = float(self.counts["dropped"])
            out["async/discarded_groups"] = float(self.counts["discarded"])
        self.counts = dict.fromkeys(self.counts, 0)
        return out


class RayRun:
    """The run's actors, and what the loop uses instead of its own source and learner."""

    def __init__(
        self, ctx: RunContext, tokenizer: Any, source: RolloutSource, learner: LocalLearner,
        version: int,
    ) -> None:  # fmt: skip
        sc = ctx.cfg.scale
        self.mode = sc.mode
        cpus = sc.rollout_workers * sc.worker_threads + sc.verifier_workers + sc.learners
        self.owns_ray = connect(ctx.cfg, cpus)
        self.actors: list[Any] = []
        try:
            self.learner = RayLearners(ctx, learner, source.max_tokens, version)
            self.actors += self.learner.actors
            self.source = RaySource(ctx, tokenizer, source, self.learner)
            self.actors += self.source.workers + self.source.verifiers
            self.learner.extra_metrics = self.source.take_metrics
        except BaseException:
            self.close()
            raise

    def before_update(self, step: int, prompts: PromptStream) -> None:
        if self.mode == "async" and self.learner.max_staleness > 0:
            self.source.prefetch(step, prompts)

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        if self.owns_ray:
            ray.shutdown()
            self.owns_ray = False


def scale_out_ray(
    ctx: RunContext, tokenizer: Any, source: RolloutSource, learner: LocalLearner, version: int
) -> RayRun:
    return RayRun(ctx, tokenizer, source, learner, version)

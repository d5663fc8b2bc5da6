"""The RL loop, one for every recipe: the R1 recipe, the agentic recipe and ``rlvr train`` all
run this, each with its own rollout source (``rollout.sources``) and held-out evaluation.

Per step: the next ``prompts_per_step`` problems of a seeded, reshuffled stream; the source's
scored samples, drawn with keys of (seed, step, problem's place, sample) so that they depend
neither on how the work is split nor on where a resumed run restarted; advantages; the update;
one metrics row; a few samples kept for the report; a held-out check every ``eval_every``
steps; a checkpoint every ``save_every`` steps (and on Ctrl-C), from which ``--resume``
continues.

A checkpoint (``checkpoints/rl-last``) holds everything the next step depends on: the weights,
AdamW's moments, the LR schedule, torch's global generator, how many prompts the stream has
handed out, the step and the seconds so far (sampling needs no generator state: it is keyed).
A run resumed from it draws the same samples and takes the same updates as one that never
stopped (for the same CPU thread count: the update is sharded per thread).

Scale-out (``rlvr.scale``: Ray actors, or torchrun ranks) keeps this loop as it is, with this
process as the single controller: it owns the data order, the advantages and the checkpoints,
while the source's samples come from rollout workers and ``learner.update`` runs on a group of
data-parallel learners.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlvr import scale
from rlvr.algorithms import LossSettings
from rlvr.config import AlgorithmConfig, RLConfig
from rlvr.context import Interrupted, RunContext
from rlvr.faults import fault_point
from rlvr.monitor.live import MonitorStop
from rlvr.rollout.prompts import pad_id
from rlvr.rollout.sampling import sample_key
from rlvr.rollout.sources import RolloutSource
from rlvr.tasks.base import Example
from rlvr.tracking.metrics import read_metrics
from rlvr.train.grpo import Batch, batch_metrics, collect_batch, loss_settings, update_policy
from rlvr.train.optim import make_optimizer

# held-out pass@1 of ``policy`` after ``step`` steps; logs its own metrics and samples
Evaluate = Callable[[PreTrainedModel, PreTrainedTokenizerBase, int], float]


@dataclass
class RLResult:
    policy: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    steps: int
    seconds: float


class PromptStream(Iterator[Example]):
    """Training prompts forever, reshuffled each pass. ``taken`` counts the prompts handed out
    (a step can take more than ``prompts_per_step`` with dynamic sampling), and ``skip``
    replays that many: a resumed run continues the same order."""

    def __init__(self, examples: list[Example], seed: int, skip: int = 0) -> None:
        self._items = self._forever(examples, seed)
        self._ahead: list[Example] = []
        self.taken = 0
        for _ in range(skip):
            next(self)

    @staticmethod
    def _forever(examples: list[Example], seed: int) -> Iterator[Example]:
        rng = random.Random(seed)
        while True:
            order = list(examples)
            rng.shuffle(order)
            yield from order

    def __next__(self) -> Example:
        self.taken += 1
        if self._ahead:
            return self._ahead.pop(0)
        return next(self._items)

    def peek(self, n: int) -> list[Example]:
        """The next ``n`` prompts, without taking them (asynchronous RL samples them early)."""
        while len(self._ahead) < n:
            self._ahead.append(next(self._items))
        return self._ahead[:n]


def prompt_stream(examples: list[Example], seed: int, skip: int = 0) -> PromptStream:
    """Training prompts forever, reshuffled each pass; ``skip`` replays a resumed run's order."""
    return PromptStream(examples, seed, skip)


def rl_optimizer(
    policy: PreTrainedModel, rl: RLConfig, algo: AlgorithmConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """RL's AdamW (fused) and its schedule, one step per update."""
    return make_optimizer(
        policy, rl.lr, rl.steps * algo.mu, rl.warmup_ratio, rl.weight_decay, rl.schedule,
        fused=True,
    )  # fmt: skip


class LocalLearner:
    """The update in this process: the policy, its optimizer and schedule, the frozen reference.
    ``rlvr.scale``'s learner groups have the same members and run the same ``update_policy`` on
    each learner's share of the batch."""

    def __init__(
        self,
        policy: PreTrainedModel,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        settings: LossSettings,
        algo: AlgorithmConfig,
        rl: RLConfig,
        reference: PreTrainedModel | None,
    ) -> None:
        self.policy, self.optimizer, self.scheduler = policy, optimizer, scheduler
        self.settings, self.algo, self.rl, self.reference = settings, algo, rl, reference

    def update(self, batch: Batch) -> dict[str, float]:
        return update_policy(
            self.policy, batch, self.optimizer, self.scheduler, self.settings, self.algo,
            self.rl, self.reference,
        )  # fmt: skip

    def trainer_state(self) -> dict[str, Any]:
        """What a checkpoint needs besides the weights."""
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}


def run_rl(
    ctx: RunContext,
    make_source: Callable[[PreTrainedTokenizerBase], RolloutSource],
    evaluate: Evaluate,
    init: str = "sft",
) -> RLResult:
    """GRPO from checkpoint ``init`` (``"init"``: the configured model), or from the last
    checkpoint of an interrupted run (``ctx.resumed("rl")``); writes ``checkpoints/rl``."""
    cfg, rl, algo = ctx.cfg, ctx.cfg.rl, ctx.cfg.algorithm
    resumed = ctx.resumed("rl")
    start = int(resumed["step"]) if resumed else 0
    if resumed:
        policy, tokenizer = ctx.load("rl-last")
    else:
        policy, tokenizer = ctx.load(init) if init != "init" else ctx.initial_policy()
    policy = ctx.trainable(policy)  # LoRA adapters when model.lora_r > 0
    reference = None
    if algo.beta > 0:  # frozen copy of the starting policy; beta == 0 loads none
        reference, _ = ctx.load(init) if init != "init" else ctx.initial_policy()
        reference.eval().requires_grad_(False)
    if cfg.model.gradient_checkpointing:
        policy.gradient_checkpointing_enable()
    optimizer, scheduler = rl_optimizer(policy, rl, algo)
    train = ctx.task.examples("train", rl.steps * rl.prompts_per_step or 1)
    prompts = prompt_stream(train, cfg.seed, skip=resumed["prompts"] if resumed else 0)
    if resumed:
        policy.train()  # as the last update left it (a loaded model starts in eval mode)
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        torch.set_rng_state(resumed["torch_rng"])
    source = local_source = make_source(tokenizer)
    settings = loss_settings(algo, source.max_tokens)
    learner = LocalLearner(policy, optimizer, scheduler, settings, algo, rl, reference)
    monitor = ctx.run_monitor()
    monitor.replay(read_metrics(ctx.dir))  # held-out rows so far; a resumed run's RL rows
    ctx.metrics.sinks.append(monitor)  # held-out rows logged during RL reach it too
    pad = pad_id(tokenizer)
    t0 = time.perf_counter()
    seconds = float(resumed["seconds"]) if resumed else 0.0
    step = start
    scaled = None
    shortcut = getattr(ctx.task, "is_shortcut", None)  # a demo task's ground truth, if any
    try:
        if scale.wanted(cfg):  # Ray actors or torchrun ranks; this process stays the controller
            scaled = scale.scale_out(ctx, tokenizer, source, learner, version=start)
            source, learner = scaled.source, scaled.learner
        with ctx.progress("RL (GRPO)", rl.steps) as advance:
            advance(start)
            for step in range(start + 1, rl.steps + 1):
                ts = time.perf_counter()
                key = sample_key(cfg.seed, step)
                batch = collect_batch(
                    policy, source, prompts, rl.prompts_per_step, algo, key, pad, monitor
                )
                fault_point(f"rl:step:{step}")
                if scaled is not None:  # async: the next steps' samples start now
                    scaled.before_update(step, prompts)
                values = batch_metrics(batch)
                if batch.report is not None:
                    values.update(monitor.metrics(batch.report))
                if shortcut is not None:  # ground truth of a demo's shortcut: never the monitor's
                    texts = batch.rollouts.texts
                    values["hack/shortcut_share"] = sum(map(shortcut, texts)) / len(texts)
                values.update(learner.update(batch))
                values["step_seconds"] = time.perf_counter() - ts
                n_tokens = float(batch.rollouts.completion_lengths.sum())
                values["tokens_per_second"] = n_tokens / values["step_seconds"]
                values["monitor/alerts"] = len(
                    monitor.observe({"stage": "rl", "step": step, **values})
                )
                ctx.metrics.log("rl", step, **values)
                keep_samples(ctx, batch, step)
                advance(1, f"reward {values['reward']:.2f}")
                if rl.eval_every and step % rl.eval_every == 0 and step < rl.steps:
                    advance(0, f"held-out {evaluate(learner.policy, tokenizer, step):.2f}")
                stop = monitor.should_stop
                if (
                    stop
                    or ctx.stop_requested()
                    or (rl.save_every and step % rl.save_every == 0 and step < rl.steps)
                ):
                    state = {
                        "step": step,
                        "seconds": seconds + time.perf_counter() - t0,
                        "prompts": prompts.taken,
                        **learner.trainer_state(),
                        "torch_rng": torch.get_rng_state(),
                    }
                    ctx.save(learner.policy, tokenizer, "rl-last", state)
                    if stop:
                        raise MonitorStop(monitor.alerts[-1].message)
                    if ctx.stop_requested():
                        raise Interrupted("rl")
        policy = learner.policy
    finally:
        ctx.metrics.sinks.remove(monitor)
        if scaled is not None:
            scaled.close()
        local_source.close()
    ctx.save(policy, tokenizer, "rl")
    return RLResult(policy, tokenizer, step, seconds + time.perf_counter() - t0)


def keep_samples(ctx: RunContext, batch: Batch, step: int) -> None:
    """A few samples per step, with their verdicts, for the report (best and worst); an
    episode is kept whole, turn by turn."""
    n = ctx.cfg.logging.samples_per_step
    if not n:
        return
    order = sorted(range(len(batch.verdicts)), key=lambda i: batch.verdicts[i].score)
    picks = set(order[: n // 2 + n % 2] + order[len(order) - n // 2 :])
    if batch.report is not None:  # and the first flagged sample, to show beside clean ones
        picks |= set([i for i, f in enumerate(batch.report.flags) if f][:1])
    picks = sorted(picks)
    with (ctx.dir / "samples.jsonl").open("a") as f:
        for i in picks:
            v = batch.verdicts[i]
            row: dict[str, Any] = {
                "after": "rl-step",
                "step": step,
                "prompt": batch.examples[i].prompt,
                "completion": batch.rollouts.texts[i],
                "score": v.score,
                "status": v.status,
                "detail": v.detail,
            }
            if batch.rollouts.turns is not None:
                row["turns"] = batch.rollouts.turns[i]
            if batch.report is not None:
                row["flags"] = batch.report.flags[i]
                if batch.report.shadow is not None:
                    row["shadow_score"] = batch.report.shadow[i]
            if batch.rollouts.versions is not None:  # the policy version that sampled it
                row["version"] = int(batch.rollouts.versions[i])
            f.write(json.dumps(row) + "\n")

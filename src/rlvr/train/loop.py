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

Two calls: ``start_rl`` builds the local pieces (policy, reference, optimizer, the prompt
stream, the source, a ``LocalLearner``), from the checkpoint of an interrupted run when there is
one; ``train_rl`` runs the steps with whatever source and learner it is given. This module knows
nothing of scale-out: ``rlvr.runners`` decides, once, whether the source and the learner are
these local ones or remote ones over them (``rlvr.scale``: Ray actors, torchrun ranks), with
this process as the single controller either way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlvr.context import RunContext
from rlvr.faults import fault_point
from rlvr.monitor.live import MonitorStop
from rlvr.progress import Interrupted
from rlvr.rollout.engines import StaleWeights
from rlvr.rollout.prompts import pad_id
from rlvr.rollout.sampling import sample_key
from rlvr.rollout.sources import RolloutSource
from rlvr.tracking.metrics import read_metrics
from rlvr.train.grpo import Batch, batch_metrics, collect_batch, loss_settings
from rlvr.train.learner import Learner, LocalLearner, rl_optimizer
from rlvr.train.prompt_stream import PromptStream, prompt_stream

# held-out pass@1 of ``policy`` after ``step`` steps; logs its own metrics and samples
Evaluate = Callable[[PreTrainedModel, PreTrainedTokenizerBase, int], float]


@dataclass
class RLResult:
    policy: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    steps: int
    seconds: float


@dataclass
class RLStart:
    """Where an RL stage starts: the local pieces, and the step and seconds a resumed run had
    reached (0 for a fresh one)."""

    tokenizer: PreTrainedTokenizerBase
    learner: LocalLearner
    prompts: PromptStream
    source: RolloutSource
    step: int
    seconds: float


def start_rl(
    ctx: RunContext,
    make_source: Callable[[PreTrainedTokenizerBase, PreTrainedModel], RolloutSource],
    init: str = "sft",
) -> RLStart:
    """GRPO's starting point: checkpoint ``init`` (``"init"``: the configured model), or the last
    checkpoint of an interrupted run (``ctx.run.resumed("rl")``), with its optimizer, schedule,
    generator and place in the prompt stream."""
    cfg, rl, algo = ctx.cfg, ctx.cfg.rl, ctx.cfg.algorithm
    resumed = ctx.run.resumed("rl")
    if resumed:
        policy, tokenizer = ctx.run.load("rl-last")
    else:
        policy, tokenizer = ctx.run.load(init) if init != "init" else ctx.initial_policy()
    policy = ctx.trainable(policy)  # LoRA adapters when model.lora_r > 0
    reference = None
    if algo.beta > 0:  # frozen copy of the starting policy; beta == 0 loads none
        reference, _ = ctx.run.load(init) if init != "init" else ctx.initial_policy()
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
    source = make_source(tokenizer, policy)
    settings = loss_settings(algo, source.max_tokens)
    learner = LocalLearner(policy, optimizer, scheduler, settings, algo, rl, reference)
    step = int(resumed["step"]) if resumed else 0
    seconds = float(resumed["seconds"]) if resumed else 0.0
    return RLStart(tokenizer, learner, prompts, source, step, seconds)


def train_rl(
    ctx: RunContext,
    start: RLStart,
    evaluate: Evaluate,
    source: RolloutSource | None = None,
    learner: Learner | None = None,
    before_update: Callable[[int, PromptStream], None] | None = None,
) -> RLResult:
    """The steps from ``start.step`` to ``rl.steps`` with ``source`` and ``learner`` (the local
    ones by default); ``before_update(step, prompts)`` runs between a step's samples and its
    update (asynchronous RL submits the next steps' samples there). Writes ``checkpoints/rl``."""
    cfg, rl, algo = ctx.cfg, ctx.cfg.rl, ctx.cfg.algorithm
    source = source or start.source
    learner = learner or start.learner
    tokenizer, prompts = start.tokenizer, start.prompts
    policy = start.learner.policy
    monitor = ctx.run_monitor()
    monitor.replay(read_metrics(ctx.dir))  # held-out rows so far; a resumed run's RL rows
    ctx.metrics.sinks.append(monitor)  # held-out rows logged during RL reach it too
    pad = pad_id(tokenizer)
    t0 = time.perf_counter()
    seconds = start.seconds
    step = start.step
    shortcut = getattr(ctx.task, "is_shortcut", None)  # a demo task's ground truth, if any
    engine = source.engine  # None: remote workers hold (and sync) their own engines
    if engine is not None:
        engine.sync(policy, start.step)  # the version is the number of updates so far
    try:
        with ctx.progress("RL (GRPO)", rl.steps) as advance:
            advance(start.step)
            for step in range(start.step + 1, rl.steps + 1):
                ts = time.perf_counter()
                key = sample_key(cfg.seed, step)
                batch = collect_batch(
                    policy, source, prompts, rl.prompts_per_step, algo, key, pad, monitor
                )
                fault_point(f"rl:step:{step}")
                if before_update is not None:
                    before_update(step, prompts)
                if engine is not None:
                    require_version(batch, step - 1)
                values = batch_metrics(batch)
                if batch.report is not None:
                    values.update(monitor.metrics(batch.report))
                if shortcut is not None:  # ground truth of a demo's shortcut: never the monitor's
                    texts = batch.rollouts.texts
                    values["hack/shortcut_share"] = sum(map(shortcut, texts)) / len(texts)
                if engine is not None:
                    engine.sleep()  # a GPU engine gives its memory to the update
                values.update(learner.update(batch))
                if engine is not None:
                    t_sync = time.perf_counter()
                    engine.wake()
                    engine.sync(learner.policy, step)
                    values["time/weight_sync"] = time.perf_counter() - t_sync
                    values.update(engine.stats())
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
                stopping = stop or ctx.interrupts.stop_requested()
                if stopping or (rl.save_every and step % rl.save_every == 0 and step < rl.steps):
                    state = {
                        "step": step,
                        "seconds": seconds + time.perf_counter() - t0,
                        "prompts": prompts.taken,
                        **learner.trainer_state(),
                        "torch_rng": torch.get_rng_state(),
                    }
                    ctx.run.save(learner.policy, tokenizer, "rl-last", state)
                    if stop:
                        raise MonitorStop(monitor.alerts[-1].message)
                    if ctx.interrupts.stop_requested():
                        raise Interrupted("rl")
        policy = learner.policy
    finally:
        ctx.metrics.sinks.remove(monitor)
    ctx.run.save(policy, tokenizer, "rl")
    return RLResult(policy, tokenizer, step, seconds + time.perf_counter() - t0)


def require_version(batch: Batch, version: int) -> None:
    """Refuse a batch sampled with weights other than the policy's (an engine that missed a
    sync): a stale sample is never trained on as if it were on-policy."""
    versions = batch.rollouts.versions
    if versions is None or bool((versions != version).any()):
        got = "unknown" if versions is None else sorted(set(versions.tolist()))
        raise StaleWeights(
            f"the step's rollouts were sampled with weights of version {got}, but the policy "
            f"is at version {version}: the engine was not synced after an update"
        )


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

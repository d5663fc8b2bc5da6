"""The RL loop, one for every recipe: the R1 recipe, the agentic recipe and ``rlvr train`` all
run this, each with its own rollout source (``rollout.sources``) and held-out evaluation.

Per step: the next ``prompts_per_step`` problems of a seeded, reshuffled stream; the source's
scored samples, drawn with keys of (seed, step, problem's place, sample) so that they depend
neither on how the work is split nor on where a resumed run restarted; advantages; the update;
one metrics row; a few samples kept for the report; a held-out check every ``eval_every``
steps; a checkpoint every ``save_every`` steps (and on Ctrl-C), from which ``--resume``
continues.
"""

from __future__ import annotations

import json
import random
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlvr.context import Interrupted, RunContext
from rlvr.rollout.sampling import sample_key
from rlvr.rollout.sources import RolloutSource
from rlvr.tasks.base import Example
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


def prompt_stream(examples: list[Example], seed: int, skip: int = 0) -> Iterator[Example]:
    """Training prompts forever, reshuffled each pass; ``skip`` replays a resumed run's order."""
    rng = random.Random(seed)
    i = 0
    while True:
        order = list(examples)
        rng.shuffle(order)
        for e in order:
            if i >= skip:
                yield e
            i += 1


def run_rl(
    ctx: RunContext,
    make_source: Callable[[PreTrainedTokenizerBase], RolloutSource],
    evaluate: Evaluate,
    init: str = "sft",
) -> RLResult:
    """GRPO from checkpoint ``init`` (``"init"``: the configured model), resuming at the last
    checkpoint of an interrupted run; writes ``checkpoints/rl``."""
    cfg, rl, algo = ctx.cfg, ctx.cfg.rl, ctx.cfg.algorithm
    progress = ctx.state.get("rl_progress", {})
    start = int(progress.get("step", 0))
    source_ckpt = "rl-last" if start else init
    policy, tokenizer = ctx.load(source_ckpt) if source_ckpt != "init" else ctx.initial_policy()
    policy = ctx.trainable(policy)  # LoRA adapters when model.lora_r > 0
    reference = None
    if algo.beta > 0:  # frozen copy of the starting policy; beta == 0 loads none
        reference, _ = ctx.load(init) if init != "init" else ctx.initial_policy()
        reference.eval().requires_grad_(False)
    if cfg.model.gradient_checkpointing:
        policy.gradient_checkpointing_enable()
    optimizer, scheduler = make_optimizer(
        policy, rl.lr, rl.steps * algo.mu, rl.warmup_ratio, rl.weight_decay, rl.schedule,
        fused=True,
    )  # fmt: skip
    with warnings.catch_warnings():  # stepping a schedule before any optimizer step is the point
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(start * algo.mu):  # resume: the schedule where it was (AdamW restarts)
            scheduler.step()
    train = ctx.task.examples("train", rl.steps * rl.prompts_per_step or 1)
    prompts = prompt_stream(train, cfg.seed, skip=start * rl.prompts_per_step)
    source = make_source(tokenizer)
    settings = loss_settings(algo, source.max_tokens)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    t0 = time.perf_counter()
    seconds = float(progress.get("seconds", 0.0))
    step = start
    with ctx.progress("RL (GRPO)", rl.steps) as advance:
        advance(start)
        for step in range(start + 1, rl.steps + 1):
            ts = time.perf_counter()
            batch = collect_batch(
                policy, source, prompts, rl.prompts_per_step, algo, sample_key(cfg.seed, step), pad
            )
            values = batch_metrics(batch)
            values.update(
                update_policy(policy, batch, optimizer, scheduler, settings, algo, rl, reference)
            )
            values["step_seconds"] = time.perf_counter() - ts
            n_tokens = float(batch.rollouts.completion_lengths.sum())
            values["tokens_per_second"] = n_tokens / values["step_seconds"]
            ctx.metrics.log("rl", step, **values)
            keep_samples(ctx, batch, step)
            advance(1, f"reward {values['reward']:.2f}")
            if rl.eval_every and step % rl.eval_every == 0 and step < rl.steps:
                advance(0, f"held-out {evaluate(policy, tokenizer, step):.2f}")
            if ctx.stop_requested() or (
                rl.save_every and step % rl.save_every == 0 and step < rl.steps
            ):
                ctx.save(policy, tokenizer, "rl-last")
                ctx.state["rl_progress"] = {
                    "step": step,
                    "seconds": seconds + time.perf_counter() - t0,
                }
                ctx.write_state()
                if ctx.stop_requested():
                    raise Interrupted("rl")
    ctx.save(policy, tokenizer, "rl")
    return RLResult(policy, tokenizer, step, seconds + time.perf_counter() - t0)


def keep_samples(ctx: RunContext, batch: Batch, step: int) -> None:
    """A few samples per step, with their verdicts, for the report (best and worst); an
    episode is kept whole, turn by turn."""
    n = ctx.cfg.logging.samples_per_step
    if not n:
        return
    order = sorted(range(len(batch.verdicts)), key=lambda i: batch.verdicts[i].score)
    picks = sorted(set(order[: n // 2 + n % 2] + order[len(order) - n // 2 :]))
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
            f.write(json.dumps(row) + "\n")

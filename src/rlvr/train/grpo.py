"""One GRPO step: G scored samples per prompt, group-relative advantages, clipped surrogate
with a KL penalty to a frozen reference. One function per step of the data flow:

    prompts --source (completions or episodes, scored)--> Rollouts, rewards
            --advantages--> update (mu times)

The loop around it (data order, checkpoints, logging) is ``train.loop``.

Choices, stated where they are made:
- pi_old log-probs are computed once per batch of rollouts, without grad. With ``mu == 1`` the
  policy has not moved since sampling, so pi_old = pi_theta.detach() exactly and the extra forward
  pass is skipped (the ratio is then exactly 1 and only its gradient matters).
- ``beta == 0`` loads no reference model at all.
- RL sees prompts and the verifier only, never the task's worked solutions.
- Groups whose rewards are all equal get zero advantage; with ``dynamic_sampling`` they are
  dropped and replaced by fresh prompts (DAPO), up to ``max_resample_rounds`` extra rounds.
  Without a KL or entropy term their rows carry zero gradient, so the update skips their
  forward and backward passes (the loss normalisers still count them: the gradient is exact).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import torch
from transformers import PreTrainedModel

from rlvr.algorithms import LossSettings, compute_advantages, policy_loss
from rlvr.config import AlgorithmConfig, RLConfig
from rlvr.cpu_threads import cpu_shards, on_threads
from rlvr.models.llama_ops import unsupported
from rlvr.monitor.live import RunMonitor, SampleReport
from rlvr.rollout.generate import Rollouts
from rlvr.rollout.sampling import sample_key
from rlvr.rollout.sources import RolloutSource
from rlvr.tasks.base import Example
from rlvr.train.logprobs import rollout_logprobs, token_logprobs, trimmed_slices
from rlvr.verifiers.base import Verdict


@dataclass
class Batch:
    """Everything one update needs, rows ordered group by group."""

    rollouts: Rollouts
    examples: list[Example]  # one per row
    verdicts: list[Verdict]
    rewards: torch.Tensor
    advantages: torch.Tensor
    loss_mask: torch.Tensor
    seconds: dict[str, float]
    report: SampleReport | None = None  # the monitor's flags and shadow scores, per row
    # rows sampled by an older policy than the one being updated (asynchronous RL, rlvr.scale):
    # their loss terms are importance-weighted by pi_old / mu (``policy_loss``)
    stale: torch.Tensor | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # the source's own (``env/*``)


def loss_settings(algo: AlgorithmConfig, max_tokens: int) -> LossSettings:
    return LossSettings(
        eps_low=algo.epsilon_low,
        eps_high=algo.epsilon_high,
        dual_clip=algo.dual_clip,
        beta=algo.beta,
        kl_estimator=algo.kl_estimator,
        ratio_level=algo.ratio_level,
        aggregation=algo.aggregation,
        max_completion_tokens=max_tokens,
        entropy_coef=algo.entropy_coef,
        importance_correction=algo.importance_correction,
        importance_clip=algo.importance_clip,
        engine_correction=algo.engine_correction,
        sequence_band=algo.importance_sequence_band,
    )


def overlong_penalty(
    lengths: torch.Tensor, max_tokens: int, buffer: int, penalty: float
) -> torch.Tensor:
    """DAPO's soft overlong punishment (eq. 13): 0 up to ``max - buffer`` tokens, then a linear
    ramp down to ``-penalty`` at the limit."""
    over = (lengths - (max_tokens - buffer)).clamp(min=0)
    return -penalty * over / max(buffer, 1)


def group_keys(step_key: int, round_: int, n: int) -> list[int]:
    """The sampling keys of a step's ``n`` groups in resampling round ``round_``: what a group
    samples depends on its key and the policy only (``rollout.sampling``)."""
    return [sample_key(step_key, round_, i) for i in range(n)]


def collect_batch(
    policy: PreTrainedModel,
    source: RolloutSource,
    prompts: Iterator[Example],
    prompts_per_step: int,
    algo: AlgorithmConfig,
    step_key: int,
    pad: int,
    monitor: RunMonitor | None = None,
) -> Batch:
    """Sample, verify and compute advantages for ``prompts_per_step`` groups (``source`` says
    how a group is sampled and scored: completions, or multi-turn episodes). Each group's
    sampling key is a hash of ``step_key``, the resampling round and its place in the round.

    With a ``monitor``, every sample is scanned (and shadow-scored) before the advantages:
    samples flagged for ``penalize`` score 0, those flagged for ``filter`` get no loss."""
    G = source.group_size
    seconds: dict[str, float] = {}
    kept: list[tuple[Rollouts, list[Example], list[Verdict], torch.Tensor]] = []
    counts: dict[str, float] = {}
    row_metrics: dict[str, list[float]] = {}
    n_kept, rounds = 0, 0
    while n_kept < prompts_per_step:
        need = prompts_per_step - n_kept
        examples = [next(prompts) for _ in range(need)]
        got = source.collect(policy, examples, group_keys(step_key, rounds, need))
        for key, value in got.seconds.items():
            seconds[key] = seconds.get(key, 0.0) + value
        for key, value in got.counts.items():
            counts[key] = counts.get(key, 0.0) + value
        ro, verdicts = got.rollouts, got.verdicts
        rows = [e for e in examples for _ in range(G)]
        rewards = torch.tensor([v.score for v in verdicts], dtype=torch.float32)
        groups = rewards.view(-1, G)
        informative = (groups != groups[:, :1]).any(dim=1)
        last_round = rounds >= algo.max_resample_rounds
        if algo.dynamic_sampling and not last_round and not bool(informative.all()):
            idx = informative.nonzero().squeeze(1).tolist()
            if idx:
                sel = torch.tensor([g * G + j for g in idx for j in range(G)])
                picked = sel.tolist()
                kept.append(
                    (
                        ro.select(sel),
                        [rows[i] for i in picked],
                        [verdicts[i] for i in picked],
                        rewards[sel],
                    )
                )
                for key, values in got.row_metrics.items():
                    row_metrics.setdefault(key, []).extend(values[i] for i in picked)
                n_kept += len(idx)
            rounds += 1
            continue
        kept.append((ro, rows, verdicts, rewards))
        for key, values in got.row_metrics.items():
            row_metrics.setdefault(key, []).extend(values)
        n_kept += need
    ro = Rollouts.concat([k[0] for k in kept], pad)
    rows = [e for k in kept for e in k[1]]
    verdicts = [v for k in kept for v in k[2]]
    rewards = torch.cat([k[3] for k in kept])
    report = None
    if monitor is not None:
        t0 = time.perf_counter()
        report = monitor.samples(ro.texts, [e.reference for e in rows], rewards.tolist())
        seconds["monitor"] = time.perf_counter() - t0
        if any(report.penalize):
            rewards = rewards.masked_fill(torch.tensor(report.penalize), 0.0)
    shaped = rewards
    if algo.overlong_buffer:
        shaped = rewards + overlong_penalty(
            ro.completion_lengths, source.max_tokens, algo.overlong_buffer, algo.overlong_penalty
        )
    advantages = compute_advantages(algo.advantage, shaped, G, scale=algo.scale, eps=algo.eps)
    loss_mask = ro.completion_mask.clone()
    if algo.mask_truncated:
        loss_mask[ro.truncated] = 0.0
    if report is not None and any(report.drop):
        loss_mask[torch.tensor(report.drop)] = 0.0
    metrics = dict(counts)
    for key, values in row_metrics.items():
        present = [v for v in values if not math.isnan(v)]
        metrics[key] = sum(present) / len(present) if present else math.nan
    return Batch(
        ro, rows, verdicts, rewards, advantages, loss_mask, seconds, report, metrics=metrics
    )


def update_shards(policy: PreTrainedModel, n_rows: int, seq_len: int) -> int:
    """Data-parallel shards for the update: one per core on CPU for policies the packed forward
    serves (its ops are thread-safe; HF modules and PEFT wrappers run in one piece)."""
    if unsupported(policy, seq_len) is not None:
        return 1
    return cpu_shards(next(policy.parameters()).device, n_rows, "RLVR_UPDATE_THREADS")


def accumulate_gradients(
    micro: list, micro_loss: Callable, params: list[torch.Tensor], shards: int
) -> list[dict]:
    """Back-propagate every micro-batch's loss into ``.grad``; returns their diagnostics.

    With one shard, one after another (``backward``). With more, the micro-batches are dealt to
    one thread per core; each thread sums its own gradients (``autograd.grad``) and the shards'
    sums are added in shard order, so the result does not depend on thread timing."""
    if shards == 1:
        results = []
        for mb in micro:
            loss, metrics = micro_loss(*mb)
            loss.backward()
            results.append(metrics)
        return results

    def shard(chunk: list) -> tuple[list[torch.Tensor | None], list[dict]]:
        grads: list[torch.Tensor | None] = [None] * len(params)
        metrics = []
        for mb in chunk:
            loss, m = micro_loss(*mb)
            metrics.append(m)
            got = torch.autograd.grad(loss, params, allow_unused=True)
            grads = [
                b if a is None else a if b is None else b + a
                for a, b in zip(got, grads, strict=True)
            ]
        return grads, metrics

    chunks = [micro[i::shards] for i in range(shards)]
    done = on_threads([partial(shard, c) for c in chunks if c])
    for i, p in enumerate(params):
        parts = [g[i] for g, _ in done if g[i] is not None]
        if parts:
            total = sum(parts[1:], parts[0])  # in shard order
            p.grad = total if p.grad is None else p.grad + total
    return [m for _, ms in done for m in ms]


def update_policy(
    policy: PreTrainedModel,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    settings: LossSettings,
    algo: AlgorithmConfig,
    rl: RLConfig,
    reference: PreTrainedModel | None = None,
    rows: torch.Tensor | None = None,
    all_reduce: Callable[[list[torch.Tensor]], None] | None = None,
) -> dict[str, float]:
    """mu optimizer steps on one batch of rollouts; returns the step's metrics.

    Data-parallel (``rlvr.scale``): each learner passes the whole batch, its share of the rows
    (``rows``) and ``all_reduce``, which sums the gradients over the learners in place. Every
    loss normaliser (rows, tokens, live rows) is the whole batch's, so the learners' gradients
    add up to the gradient of the whole batch's loss however many share it; so do the loss and
    the diagnostics, which each learner returns as its share of the sum."""
    ro = batch.rollouts
    t0 = time.perf_counter()
    old_logp = rollout_logprobs(policy, ro, rl.micro_batch_size) if algo.mu > 1 else None
    t1 = time.perf_counter()
    ref_logp = (
        rollout_logprobs(reference, ro, rl.micro_batch_size) if reference is not None else None
    )
    t2 = time.perf_counter()
    n_rows = len(ro)
    # A row with zero advantage (a tied group) carries exactly zero gradient when nothing else
    # is in the loss (no KL, no entropy bonus): skip its forward and backward. It still counts
    # in the normalisers (n_rows, the batch's tokens), so the gradient is the full batch's.
    live = torch.arange(n_rows)
    if settings.beta == 0 and not settings.entropy_coef:
        live = (batch.advantages != 0).nonzero().squeeze(1)
    n_live = max(len(live), 1)
    if rows is not None:  # this learner's share; the normalisers above stay the batch's
        live = live[torch.isin(live, rows)]
    stale = batch.stale if batch.stale is not None and bool(batch.stale.any()) else None
    # The engine's log-probs as the behaviour policy of every row: an engine with kernels of its
    # own (vLLM) samples from a slightly different distribution than the learner computes.
    engine_behaviour = ro.logprobs is not None and (
        settings.engine_correction == "on"
        or (settings.engine_correction == "auto" and ro.engine != "rlvr")
    )
    n_tokens_live = max(float(batch.loss_mask[live].sum()), 1.0)  # before this learner's share
    mismatch: list[tuple[float, float, float]] = []
    params = [p for p in policy.parameters() if p.requires_grad]
    shards = update_shards(policy, len(live), ro.input_ids.shape[1])
    # Data-parallel micro-batches on CPU (one per core, contiguous groups so rows that share a
    # prompt stay together); otherwise length-sorted micro-batches, one after another.
    size = max(1, min(rl.micro_batch_size, -(-len(live) // shards)))
    micro = list(trimmed_slices(ro.attention_mask[live], ro.prompt_len, size, shards == 1))

    def micro_loss(sub: torch.Tensor, cols: slice, plen: int) -> tuple[torch.Tensor, dict]:
        """One micro-batch's share of the full-batch loss, and its diagnostics (weighted)."""
        rows = live[sub]
        ids, att = ro.input_ids[rows, cols], ro.attention_mask[rows, cols]
        width = ids.shape[1] - plen
        logp, entropy = token_logprobs(
            policy, ids, att, width, settings.entropy_coef > 0, ro.temperature
        )
        mask = batch.loss_mask[rows, :width]
        old = old_logp[rows, :width] if old_logp is not None else logp.detach()
        ref = ref_logp[rows, :width] if ref_logp is not None else None
        behaviour = None
        if engine_behaviour:
            behaviour = ro.logprobs[rows, :width]
        elif stale is not None:  # a row sampled by pi_old itself keeps weight 1
            behaviour = torch.where(stale[rows, None], ro.logprobs[rows, :width], old)
        if ro.logprobs is not None and first_pass:
            mismatch.append(engine_mismatch(old, ro.logprobs[rows, :width], mask))
        loss, metrics = policy_loss(
            logp, old, batch.advantages[rows], mask, settings, ref, entropy, behaviour
        )
        # Micro-batches add up to the full-batch loss (gradient accumulation): a token mean
        # is weighted by the micro-batch's share of the tokens, the others by its rows.
        if settings.aggregation == "token":
            weight = float(mask.sum()) / max(float(batch.loss_mask.sum()), 1.0)
        else:
            weight = len(rows) / n_rows
        # diagnostics: means over the rows that carry gradient
        metrics["entropy"] = float((entropy.detach() * mask).sum() / mask.sum().clamp(min=1))
        metrics = {k: v * len(rows) / n_live for k, v in metrics.items()}
        metrics["loss"] = float(loss.detach()) * weight
        return loss * weight, metrics

    totals: dict[str, float] = {"loss": 0.0}
    count = 0
    policy.train()
    for epoch in range(algo.mu):
        first_pass = epoch == 0  # pi_old is the same in every pass: measure the mismatch once
        results = accumulate_gradients(micro, micro_loss, params, shards)
        for m in results:
            for key, value in m.items():
                totals[key] = totals.get(key, 0.0) + value
        for p in policy.parameters():  # all rows tied: a zero gradient, so Adam still steps
            if p.requires_grad and p.grad is None:
                p.grad = torch.zeros_like(p)
        if all_reduce is not None:
            all_reduce([p.grad for p in params])
        count += 1
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), rl.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    t3 = time.perf_counter()
    out = {k: v / count for k, v in totals.items()}
    out["grad_norm"] = float(grad_norm)
    out["learning_rate"] = scheduler.get_last_lr()[0]
    if mismatch:  # shares of the batch's token means (data-parallel learners add them up)
        out["rollout/mismatch_abs_logp"] = sum(m[0] for m in mismatch) / n_tokens_live
        out["rollout/mismatch_kl"] = sum(m[1] for m in mismatch) / n_tokens_live
        out["rollout/mismatch_max_ratio"] = max(m[2] for m in mismatch)
    out["time/old_logprobs"] = t1 - t0
    out["time/ref_logprobs"] = t2 - t1
    out["time/update"] = t3 - t2
    return out


def engine_mismatch(
    learner_logp: torch.Tensor, engine_logp: torch.Tensor, mask: torch.Tensor
) -> tuple[float, float, float]:
    """How far the engine's log-probs of its sampled tokens are from the learner's, over the
    masked tokens: (sum of |log pi_learner - log pi_engine|, sum of the k3 estimate of
    KL(pi_engine || pi_learner), the largest ratio pi_learner / pi_engine)."""
    with torch.no_grad():
        d = (learner_logp.detach() - engine_logp) * mask
        k3 = (torch.expm1(d) - d) * mask
        keep = mask > 0
        top = float(torch.exp(d[keep]).max()) if bool(keep.any()) else 1.0
        return float(d.abs().sum()), float(k3.sum()), top


def batch_metrics(batch: Batch) -> dict[str, float]:
    """TRL's metric names, so users feel at home."""
    G = batch.rollouts.group_size
    groups = batch.rewards.view(-1, G)
    lengths = batch.rollouts.completion_lengths
    n_tokens = float(lengths.sum())
    gen = batch.seconds["generate"]
    out = {
        "reward": float(batch.rewards.mean()),
        "reward_std": float(batch.rewards.std(correction=0)),
        "frac_reward_zero_std": float((groups.std(dim=1, correction=0) == 0).float().mean()),
        "completions/mean_length": float(lengths.mean()),
        "completions/max_length": float(lengths.max()),
        "completions/clipped_ratio": float(batch.rollouts.truncated.float().mean()),
        "tokens_per_second/generate": n_tokens / gen if gen > 0 else 0.0,
        "time/generate": gen,
        "time/verify": batch.seconds["verify"],
    }
    if batch.rollouts.versions is not None:  # the weights the samples came from
        out["rollout/weight_version"] = float(batch.rollouts.versions.min())
    if batch.rollouts.turns is not None:  # multi-turn episodes
        ro = batch.rollouts
        real = ro.attention_mask[:, ro.prompt_len :].sum(dim=1).float()
        out["episodes/turns"] = sum(
            sum(t["role"] == "model" for t in turns) for turns in ro.turns
        ) / len(ro.turns)
        out["episodes/env_tokens"] = float((real - lengths).mean())
        out["episodes/solved"] = sum(v.correct for v in batch.verdicts) / len(batch.verdicts)
    out.update(batch.metrics)
    return out

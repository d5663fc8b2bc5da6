"""The DeepSeek-R1 recipe, as the spec orders it:

    (a) cold-start SFT on a small set of worked solutions
    (b) RLVR with GRPO: prompts and the verifier only, never the solutions
    (c) rejection sampling: k completions per training prompt, keep the verified ones, deduplicated
    (d) final SFT on them

Each stage reads its input from the run directory and writes its output there, so a run resumes
at the first unfinished stage, and inside it at its last checkpoint (SFT and RL; rejection
sampling is redone, drawing the same samples from the same seed).

Where we depart from DeepSeek-R1: its final SFT restarts from the base model on 800k samples; our
base is a randomly initialised model, so by default the final SFT continues from the RL policy
(``final_sft.init: rl``); ``init: sft`` restarts from the cold-start checkpoint instead.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

from rlvr.config import SFTConfig
from rlvr.context import RunContext
from rlvr.eval import evaluate
from rlvr.faults import fault_point
from rlvr.progress import console
from rlvr.recipes.stages import Stage, run_stages, supervised
from rlvr.rollout.prompts import pad_id
from rlvr.runners import run_rl
from rlvr.tasks.base import Example
from rlvr.train.rejection import rejection_sample
from rlvr.train.sft import encode_pairs


def evaluate_stage(
    ctx: RunContext, model, tokenizer, after: str, step: int, sampling: bool = True
) -> dict:
    e = ctx.cfg.eval
    t0 = time.perf_counter()
    result = evaluate(
        model,
        tokenizer,
        ctx.heldout(),
        ctx.scoring.score,
        ctx.cfg.rollout.max_new_tokens,
        k=e.k,
        samples=e.samples,
        temperature=e.temperature,
        seed=ctx.cfg.seed,
        format_prompt=ctx.formatter(tokenizer),
        with_sampling=sampling,
        engine=ctx.engine(tokenizer, model),
    )
    values = {
        "heldout/pass@1": result["pass@1"],
        "eval_seconds": time.perf_counter() - t0,
        "after": after,
    }
    if sampling:
        values["heldout/pass@k"] = result[f"pass@{e.k}"]
        values["heldout/maj@k"] = result[f"maj@{e.k}"]
    ctx.metrics.log("eval", step, **values)
    samples_path = ctx.dir / "samples.jsonl"
    with samples_path.open("a") as f:
        for s in result["samples"]:
            f.write(json.dumps({"after": after, "step": step, **s}) + "\n")
    return result


def _solutions(examples: list[Example], task_name: str) -> list[Example]:
    missing = [e.id for e in examples if not e.solution]
    if missing:
        raise ValueError(
            f"task {task_name!r} has no worked solution for {len(missing)} examples "
            f"(first: {missing[0]}); "
            "SFT needs a solution column, or skip SFT with `rlvr train`"
        )
    return examples


def _supervised(
    ctx: RunContext,
    stage: str,
    label: str,
    model,
    tokenizer,
    prompts: list[str],
    completions: list[str],
    cfg: SFTConfig,
):
    """SFT on (prompt, completion) pairs, prompts formatted as the rollouts format them: the
    trained model and its step count."""
    fmt = ctx.formatter(tokenizer)
    pairs = encode_pairs(tokenizer, [fmt(p) for p in prompts], completions, cfg.max_length)
    return supervised(ctx, stage, label, model, tokenizer, pairs, pad_id(tokenizer), cfg)


def stage_sft(ctx: RunContext) -> dict[str, Any]:
    cfg = ctx.cfg
    model, tokenizer = ctx.initial_policy()
    examples = _solutions(ctx.task.examples("train", cfg.sft.examples), ctx.task.name)
    model, steps = _supervised(
        ctx,
        "sft",
        "cold-start SFT",
        model,
        tokenizer,
        [e.prompt for e in examples],
        [e.solution for e in examples],
        cfg.sft,
    )
    ctx.run.save(model, tokenizer, "sft")
    result = evaluate_stage(ctx, model, tokenizer, "sft", steps)
    summary = {
        "sft_accuracy": result["pass@1"],
        f"sft_pass@{cfg.eval.k}": result[f"pass@{cfg.eval.k}"],
        "sft_seconds": ctx.run.stage_seconds(),
        "sft_examples": len(examples),
    }
    ctx.run.mark_done("sft", **summary)
    return summary


def stage_rl(ctx: RunContext, init: str = "sft") -> dict[str, Any]:
    cfg = ctx.cfg

    def heldout(policy, tokenizer, step: int) -> float:
        return evaluate_stage(ctx, policy, tokenizer, "rl", step, sampling=False)["pass@1"]

    out = run_rl(ctx, ctx.rollout_source, heldout, init)
    result = evaluate_stage(ctx, out.policy, out.tokenizer, "rl", out.steps)
    summary = {
        "rl_accuracy": result["pass@1"],
        f"rl_pass@{cfg.eval.k}": result[f"pass@{cfg.eval.k}"],
        "rl_seconds": out.seconds,
        "rl_steps": cfg.rl.steps,
    }
    ctx.run.mark_done("rl", **summary)
    return summary


def stage_rejection(ctx: RunContext, source: str = "rl") -> dict[str, Any]:
    cfg, rs = ctx.cfg, ctx.cfg.rejection
    model, tokenizer = ctx.run.load(source)
    examples = ctx.task.examples("train", rs.prompts)
    batches = 0

    with ctx.progress("rejection sampling", len(examples)) as advance:

        def on_batch(n: int) -> None:
            nonlocal batches
            batches += 1
            advance(n)
            fault_point(f"rejection:batch:{batches}")

        # No checkpoint inside: a resumed run redoes this stage, and draws the same samples
        # (same checkpoint, same seed, generator fresh from it).
        kept, stats = rejection_sample(
            model,
            tokenizer,
            examples,
            ctx.scoring.score,
            rs.k,
            cfg.rollout.max_new_tokens,
            rs.temperature,
            seed=cfg.seed + 7,
            format_prompt=ctx.formatter(tokenizer),
            on_batch=on_batch,
            engine=ctx.engine(tokenizer, model),
        )
    with (ctx.dir / "rejection.jsonl").open("w") as f:
        for row in kept:
            f.write(json.dumps(row) + "\n")
    ctx.metrics.log("rejection", 0, **stats)
    summary = {f"rejection_{k}": v for k, v in stats.items()} | {
        "rejection_seconds": ctx.run.stage_seconds()
    }
    ctx.run.mark_done("rejection", **summary)
    return summary


def stage_final_sft(ctx: RunContext) -> dict[str, Any]:
    cfg, fs = ctx.cfg, ctx.cfg.final_sft
    path = ctx.dir / "rejection.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        # Nothing verified to learn from (a policy that never solves a training prompt): the RL
        # policy is the final one. Said loudly, recorded in the summary, never a crash at the end.
        console.print(f"[yellow]final SFT skipped: {path} holds no verified completions")
        model, tokenizer = ctx.run.load(fs.init)
        ctx.run.save(model, tokenizer, "final")
        result = evaluate_stage(ctx, model, tokenizer, "final_sft", 0)
        summary = {
            "final_accuracy": result["pass@1"],
            f"final_pass@{cfg.eval.k}": result[f"pass@{cfg.eval.k}"],
            "final_sft_examples": 0,
            "final_sft_skipped": "no verified completions",
        }
        ctx.run.mark_done("final_sft", **summary)
        return summary
    random.Random(cfg.seed).shuffle(rows)
    rows = rows[: fs.examples]
    model, tokenizer = ctx.run.load(fs.init)
    model, steps = _supervised(
        ctx,
        "final_sft",
        "final SFT",
        model,
        tokenizer,
        [r["prompt"] for r in rows],
        [r["completion"] for r in rows],
        fs,
    )
    ctx.run.save(model, tokenizer, "final")
    result = evaluate_stage(ctx, model, tokenizer, "final_sft", steps)
    summary = {
        "final_accuracy": result["pass@1"],
        f"final_pass@{cfg.eval.k}": result[f"pass@{cfg.eval.k}"],
        "final_sft_seconds": ctx.run.stage_seconds(),
        "final_sft_examples": len(rows),
    }
    ctx.run.mark_done("final_sft", **summary)
    return summary


STAGES: dict[str, Stage] = {
    "sft": stage_sft,
    "rl": stage_rl,
    "rejection": stage_rejection,
    "final_sft": stage_final_sft,
}


def run_recipe(ctx: RunContext, resume: bool = False) -> dict[str, Any]:
    """All four stages, skipping those already done; ``resume`` continues an unfinished one
    from its last checkpoint. The summary says whether the run cleared the recipe's bars."""
    summary = run_stages(ctx, STAGES, resume)
    summary.update(check_bars(summary, ctx.cfg.eval.k))
    (ctx.dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


# The recipe's own bars (README, "The main job, measured"): RL lifts held-out pass@1 by at least
# LIFT_BAR over its own cold start, and the final SFT keeps the RL accuracy within KEEP_BAR.
# Over many seeds and machines, the mean RL pass@1 is at least MEAN_RL_BAR (a bar on a matrix of
# runs, measured by bench/recipe_seeds.py, not on one run).
LIFT_BAR = 0.30
KEEP_BAR = 0.02
MEAN_RL_BAR = 0.85


def check_bars(summary: dict[str, Any], k: int = 8) -> dict[str, Any]:
    """Whether a finished run cleared the recipe's bars, and if not, what to try.

    ``bars``: each bar's name and whether it held; ``bars_cleared``; ``bars_advice``: one line
    per missed bar, read from the run's own figures (the cold start's pass@1 and pass@k, RL's)."""
    sft, rl, final = (summary.get(key) for key in ("sft_accuracy", "rl_accuracy", "final_accuracy"))
    if sft is None or rl is None or final is None:
        return {"bars": {}, "bars_cleared": False, "bars_advice": ["the run did not finish"]}
    lift_name = f"rl_accuracy - sft_accuracy >= {LIFT_BAR:.2f}"
    keep_name = f"final_accuracy >= rl_accuracy - {KEEP_BAR:.2f}"
    # a hair of slack for float sums such as 0.8 - 0.5
    bars = {lift_name: rl - sft >= LIFT_BAR - 1e-9, keep_name: final >= rl - KEEP_BAR - 1e-9}
    advice = []
    if not bars[lift_name]:
        sft_k = summary.get(f"sft_pass@{k}")
        if sft >= 1 - LIFT_BAR - 0.05:
            advice.append(
                f"the cold start already solves {sft:.0%} of held-out problems, which leaves RL "
                f"less than {LIFT_BAR:+.2f} to lift: a shorter cold start (-o sft.epochs=...) "
                "or another --seed"
            )
        elif rl < sft:
            advice.append(
                f"RL made the policy worse ({sft:.3f} -> {rl:.3f}; see kl and reward in "
                "metrics.jsonl): a lower -o rl.lr=..., or another --seed"
            )
        elif sft_k is not None and rl <= sft_k + 0.05:
            advice.append(
                f"RL stopped near what the cold start could already sample (its pass@{k} "
                f"{sft_k:.3f}, RL {rl:.3f}): more RL steps (-o rl.steps=...), or a stronger "
                "cold start to sample from (-o sft.epochs=...), or another --seed"
            )
        else:
            advice.append(
                f"RL lifted {rl - sft:+.3f}: more RL steps (-o rl.steps=...), or another --seed"
            )
    if not bars[keep_name]:
        advice.append(
            f"the final SFT lost {rl - final:.3f} of RL's accuracy: a lower -o final_sft.lr=..., "
            "or fewer -o final_sft.examples=...; checkpoints/rl holds the RL policy"
        )
    return {"bars": bars, "bars_cleared": all(bars.values()), "bars_advice": advice}

"""The recipe of an imported environment (``--env vf:ID``, ``--env openenv:...``): audit its
reward, RL on its episodes, held-out evaluation.

No cold start: an imported environment has no demonstrations, so RL starts from the run's
initial model (``--model``, or a cold-start checkpoint of this run when there is one).

    (a) the audit (``interop.audit``): rlvr's known-hack probes against the environment's own
        reward; a reward that pays one warns loudly and refuses to train unless
        ``task.allow_weak_verifier`` (``--allow-weak-verifier``);
    (b) GRPO on its episodes (``train.loop`` with the family's source), the hack monitor
        scanning them as code or as answers by the environment's kind;
    (c) greedy held-out episodes: ``heldout/pass@1`` (the reward at its maximum),
        ``heldout/reward`` and the environment's own metrics.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from rlvr.context import RunContext
from rlvr.interop import external
from rlvr.progress import console
from rlvr.recipes.stages import Stage, run_stages
from rlvr.runners import run_rl
from rlvr.wiring import env_options


def check_reward(ctx: RunContext) -> dict[str, Any]:
    """The audit before training (see the module docstring); returns it as plain data."""
    from rlvr.interop.audit import audit
    from rlvr.verifiers.selftest import WeakVerifierError

    result = audit(ctx.cfg.env.name, env_options(ctx.cfg))
    (ctx.dir / "env_audit.json").write_text(json.dumps(result.to_dict(), indent=2))
    if result.weak:
        if not ctx.cfg.task.allow_weak_verifier:
            paid = ", ".join(p.name for p in result.probes if p.paid)
            raise WeakVerifierError(
                f"the reward of {ctx.cfg.env.name} pays known hacks ({paid}), so a policy can "
                "score without solving the task (rlvr verify --env shows each probe's reward). "
                "Fix the environment's reward, or pass --allow-weak-verifier to train on it anyway"
            )
        console.print("[bold red]WARNING: training on a reward that pays known hacks:")
        for line in result.lines():
            console.print(f"[red]  {line}")
    return result.to_dict()


def evaluate(ctx: RunContext, policy, tokenizer, after: str, step: int) -> dict[str, float]:
    """Greedy held-out episodes; logs ``heldout/*`` and the samples, returns the summary."""
    fam = external.family(ctx.cfg.env.name)
    t0 = time.perf_counter()
    result = fam.evaluate(ctx.cfg, policy, tokenizer, ctx.heldout())
    values = {
        f"heldout/{k}": float(v)
        for k, v in result.items()
        if isinstance(v, int | float) and k not in ("n",)
    }
    ctx.metrics.log("eval", step, after=after, eval_seconds=time.perf_counter() - t0, **values)
    with (ctx.dir / "samples.jsonl").open("a") as f:
        for s in result["samples"]:
            f.write(json.dumps({"after": after, "step": step, **s}) + "\n")
    return {f"{after}_accuracy": result["pass@1"], f"{after}_reward": result["reward"]}


def stage_rl(ctx: RunContext, init: str = "init") -> dict[str, Any]:
    cfg = ctx.cfg
    try:
        audit = check_reward(ctx)
        fam = external.family(cfg.env.name)
        # the monitor's scanners follow the environment's kind (``monitor.live.scanner_for``)
        ctx.scoring.verifier_name = "code" if fam.kind(env_options(cfg)) == "code" else "answer"

        def heldout(policy, tokenizer, step: int) -> float:
            return evaluate(ctx, policy, tokenizer, "rl", step)["rl_accuracy"]

        out = run_rl(ctx, ctx.rollout_source, heldout, init)
        summary = evaluate(ctx, out.policy, out.tokenizer, "rl", out.steps)
    finally:
        external.close_all()
    summary.update(rl_seconds=out.seconds, rl_steps=cfg.rl.steps, env_weak_reward=audit["weak"])
    summary = {k: v for k, v in summary.items() if not (isinstance(v, float) and math.isnan(v))}
    ctx.run.mark_done("rl", **summary)
    return summary


STAGES: dict[str, Stage] = {"rl": stage_rl}


def run_recipe(ctx: RunContext, resume: bool = False) -> dict[str, Any]:
    return run_stages(ctx, STAGES, resume)

"""What every recipe does around its stages: run them in order (skipping those a resumed run
finished), one supervised stage with its progress bar and metrics, and the summary at the end."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from transformers import PreTrainedModel

from rlvr.config import SFTConfig
from rlvr.context import Interrupted, RunContext, console
from rlvr.tracking.plots import plot_run
from rlvr.train.sft import Sequence, train_sequences

Stage = Callable[[RunContext], dict[str, Any]]


def supervised(
    ctx: RunContext,
    stage: str,
    label: str,
    model: PreTrainedModel,
    sequences: list[Sequence],
    pad: int,
    cfg: SFTConfig,
) -> int:
    """One SFT stage with its progress bar and metrics; raises Interrupted on Ctrl-C."""
    total = cfg.epochs * ((len(sequences) + cfg.batch_size - 1) // cfg.batch_size)
    with ctx.progress(label, total) as advance:

        def on_step(m: dict) -> None:
            ctx.metrics.log(
                stage,
                m["step"],
                loss=m["loss"],
                grad_norm=m["grad_norm"],
                learning_rate=m["learning_rate"],
            )
            advance(1, f"loss {m['loss']:.3f}")

        steps = train_sequences(
            model,
            sequences,
            pad,
            cfg,
            seed=ctx.cfg.seed,
            on_step=on_step,
            should_stop=ctx.stop_requested,
        )
    if ctx.stop_requested():
        raise Interrupted(stage)
    return steps


def write_summary(ctx: RunContext, wall_seconds: float) -> dict[str, Any]:
    summary = dict(ctx.state["summary"])
    summary["wall_seconds"] = ctx.state.get("wall_seconds", 0.0) + wall_seconds
    if "sft_accuracy" in summary and "rl_accuracy" in summary:
        summary["rl_lift"] = summary["rl_accuracy"] - summary["sft_accuracy"]
    (ctx.dir / "summary.json").write_text(json.dumps(summary, indent=2))
    try:
        plot_run(ctx.dir)
    except Exception as exc:  # a plot must never lose a finished run
        console.print(f"[yellow]plotting failed: {exc}")
    return summary


def run_stages(ctx: RunContext, stages: dict[str, Stage]) -> dict[str, Any]:
    """Every stage in order, skipping those already done (``--resume``); the summary."""
    t0 = time.perf_counter()
    try:
        with ctx.interruptible():
            for stage, run in stages.items():
                if stage in ctx.state["done"]:
                    console.print(f"[dim]{stage}: done earlier, skipped")
                    continue
                run(ctx)
    finally:
        ctx.state["wall_seconds"] = ctx.state.get("wall_seconds", 0.0) + time.perf_counter() - t0
        ctx.write_state()
    return write_summary(ctx, 0.0)

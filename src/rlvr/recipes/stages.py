"""What every recipe does around its stages: run them in order (skipping those a resumed run
finished), one supervised stage with its progress bar and metrics, and the summary at the end."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlvr.config import SFTConfig
from rlvr.context import RunContext
from rlvr.faults import fault_point
from rlvr.monitor.live import MonitorStop
from rlvr.progress import Interrupted, console
from rlvr.tracking.plots import plot_run
from rlvr.train.sft import Sequence, train_sequences

Stage = Callable[[RunContext], dict[str, Any]]


def supervised(
    ctx: RunContext,
    stage: str,
    label: str,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sequences: list[Sequence],
    pad: int,
    cfg: SFTConfig,
) -> tuple[PreTrainedModel, int]:
    """One SFT stage with its progress bar and metrics: the trained model and its step count.

    Saves ``checkpoints/<stage>-last`` every ``cfg.save_every`` steps and on Ctrl-C (then
    raises Interrupted); a resumed stage continues from that checkpoint, with ``model`` replaced
    by its weights, exactly where the killed process left off."""
    resumed = ctx.run.resumed(stage)
    if resumed is not None:
        model, _ = ctx.run.load(f"{stage}-last")
    total = cfg.epochs * ((len(sequences) + cfg.batch_size - 1) // cfg.batch_size)
    with ctx.progress(label, total) as advance:
        advance(resumed["step"] if resumed else 0)

        def on_step(m: dict) -> None:
            ctx.metrics.log(
                stage,
                m["step"],
                loss=m["loss"],
                grad_norm=m["grad_norm"],
                learning_rate=m["learning_rate"],
            )
            advance(1, f"loss {m['loss']:.3f}")
            fault_point(f"{stage}:step:{m['step']}")

        def checkpoint(state: dict[str, Any]) -> None:
            ctx.run.save(model, tokenizer, f"{stage}-last", state)

        steps = train_sequences(
            model,
            sequences,
            pad,
            cfg,
            seed=ctx.cfg.seed,
            on_step=on_step,
            should_stop=ctx.interrupts.stop_requested,
            checkpoint=checkpoint,
            resume=resumed,
        )
    if ctx.interrupts.stop_requested():
        raise Interrupted(stage)
    return model, steps


def write_summary(ctx: RunContext) -> dict[str, Any]:
    """``summary.json``: every stage's summary, ``rl_lift``, and ``wall_seconds``, the run's
    wall-clock time summed over all the processes that worked on it (a process killed without
    warning counts up to its last checkpoint; ``RunContext`` says how)."""
    summary = dict(ctx.run.state["summary"])
    summary["wall_seconds"] = ctx.run.wall_seconds()
    if "sft_accuracy" in summary and "rl_accuracy" in summary:
        summary["rl_lift"] = summary["rl_accuracy"] - summary["sft_accuracy"]
    (ctx.dir / "summary.json").write_text(json.dumps(summary, indent=2))
    try:
        plot_run(ctx.dir)
    except Exception as exc:  # a plot must never lose a finished run
        console.print(f"[yellow]plotting failed: {exc}")
    return summary


def run_stages(ctx: RunContext, stages: dict[str, Stage], resume: bool = False) -> dict[str, Any]:
    """Every stage in order, skipping those already done; with ``resume`` an unfinished stage
    continues from its last checkpoint (``RunContext.begin_stage``). The summary."""
    try:
        with ctx.interrupts.interruptible():
            for stage, run in stages.items():
                if stage in ctx.run.state["done"]:
                    console.print(f"[dim]{stage}: done earlier, skipped")
                    continue
                ctx.run.begin_stage(stage, resume)
                run(ctx)
    except MonitorStop as stop:  # the run saved; its summary says why it ended
        ctx.run.state["summary"]["stopped_by_monitor"] = str(stop)
        ctx.run.state["wall_seconds"] = ctx.run.wall_seconds()
        write_summary(ctx)
        raise
    finally:
        ctx.run.state["wall_seconds"] = ctx.run.wall_seconds()
        ctx.run.write_state()
    return write_summary(ctx)

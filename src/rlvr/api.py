"""The Python API behind every CLI command: each command calls exactly one function here."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rlvr.config import RunConfig
from rlvr.context import RunContext
from rlvr.eval import evaluate
from rlvr.models.load import load_policy
from rlvr.recipes import r1


def run(cfg: RunConfig, resume: bool = False) -> dict[str, Any]:
    """The whole R1 recipe into ``runs/<name>/``; ``resume`` continues an interrupted run."""
    ctx = RunContext(cfg, fresh=not resume)
    try:
        return r1.run_recipe(ctx)
    finally:
        ctx.close()


def _single_stage(cfg: RunConfig, stage: str, **kwargs: Any) -> dict[str, Any]:
    ctx = RunContext(cfg)
    ctx.state["done"] = [s for s in ctx.state["done"] if s != stage]
    ctx.state.pop(f"{stage}_progress", None)
    runner = {
        "sft": r1.stage_sft,
        "rl": r1.stage_rl,
        "rejection": r1.stage_rejection,
        "final_sft": r1.stage_final_sft,
    }[stage]
    t0 = time.perf_counter()
    try:
        with ctx.interruptible():
            runner(ctx, **kwargs)
        return r1.write_summary(ctx, time.perf_counter() - t0)
    finally:
        ctx.close()


def sft(cfg: RunConfig) -> dict[str, Any]:
    """Cold-start SFT only: writes ``checkpoints/sft``."""
    return _single_stage(cfg, "sft")


def train(cfg: RunConfig) -> dict[str, Any]:
    """RL only: from this run's SFT checkpoint when there is one, else from ``model.path``
    (or a fresh embedded model). Writes ``checkpoints/rl``."""
    init = "sft" if (cfg.run_dir / "checkpoints" / "sft" / "config.json").exists() else "init"
    return _single_stage(cfg, "rl", init=init)


def sample(cfg: RunConfig, source: str = "rl") -> dict[str, Any]:
    """Rejection sampling from a checkpoint of this run: writes ``rejection.jsonl``."""
    return _single_stage(cfg, "rejection", source=source)


def eval_model(
    cfg: RunConfig, model_path: str | Path, output: str | Path | None = None
) -> dict[str, Any]:
    """Held-out pass@1 (greedy) and pass@k of any checkpoint on the configured task."""
    from rlvr.context import build_task
    from rlvr.rollout.prompts import format_prompt
    from rlvr.verifiers.base import get_verifier
    from rlvr.verifiers.pool import VerifierPool

    task = build_task(cfg)
    verifier = get_verifier(cfg.task.verifier or task.verifier, **dict(task.verifier_options))
    model, tokenizer = load_policy(model_path, cfg.model.device, cfg.model.dtype)
    e = cfg.eval
    with VerifierPool(workers=cfg.rl.verifier_workers) as pool:
        result = evaluate(
            model,
            tokenizer,
            task.examples("heldout", e.heldout),
            lambda r, ref: pool.score(verifier, r, ref),
            cfg.rollout.max_new_tokens,
            k=e.k,
            samples=e.samples,
            temperature=e.temperature,
            seed=cfg.seed,
            format_prompt=lambda p: format_prompt(
                tokenizer, p, cfg.task.system_prompt, cfg.task.use_chat_template
            ),
        )
    result["model"] = str(model_path)
    result["task"] = cfg.task.name
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps(result, indent=2))
    return result


def report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html``, self-contained (plots embedded): returns its path."""
    from rlvr.tracking.report import write_report

    return write_report(run_dir)

"""The Python API behind every CLI command: each command calls exactly one function here."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
from typing import Any

import rlvr.interop  # noqa: F401  (registers the vf: and openenv: environments)
from rlvr.config import ConfigError, RunConfig
from rlvr.context import RunContext
from rlvr.eval import evaluate
from rlvr.models.load import load_policy
from rlvr.progress import console
from rlvr.recipes import agentic_code, hack_demo, r1
from rlvr.recipes.stages import write_summary
from rlvr.runners import on_ranks, one_process

RECIPES = {"r1": r1, "agentic_code": agentic_code, "hack_demo": hack_demo}


def _recipe(cfg: RunConfig):
    """The recipe whose stages serve ``cfg``: with an environment, the agentic recipe's; with
    an imported one (``vf:``, ``openenv:``), the imported recipe's."""
    from rlvr.interop.external import is_external

    if is_external(cfg.env.name):
        from rlvr.recipes import imported

        return imported
    if cfg.env.name and cfg.recipe == "r1":
        if "recipe" in cfg.model_fields_set:
            raise ConfigError(
                "the r1 recipe is single-turn; environments (env.name) run with "
                "--recipe agentic_code"
            )
        return agentic_code
    return RECIPES[cfg.recipe]


def run(cfg: RunConfig, resume: bool = False, allow_config_change: bool = False) -> dict[str, Any]:
    """The configured recipe (``cfg.recipe``) into the run directory; ``resume`` continues an
    interrupted run from its last checkpoint, exactly (README: "Interrupted runs"), with the
    settings it was started with unless ``allow_config_change``."""
    one_process("run")
    recipe = _recipe(cfg)
    ctx = RunContext(cfg, fresh=not resume, resume=resume, allow_config_change=allow_config_change)
    try:
        return recipe.run_recipe(ctx, resume)
    finally:
        ctx.close()


def _single_stage(
    cfg: RunConfig, stage: str, resume: bool, allow_config_change: bool = False, **kwargs: Any
) -> dict[str, Any]:
    """One stage of the recipe into the run directory: from scratch, or with ``resume`` from
    its last checkpoint (a stage already finished is then left as it is)."""
    if stage != "rl":
        one_process({"sft": "sft", "rejection": "sample"}.get(stage, stage))
    recipe = _recipe(cfg)
    if stage not in recipe.STAGES:
        raise ConfigError(f"the {cfg.recipe} recipe has no {stage!r} stage")
    ctx = RunContext(cfg, resume=resume, allow_config_change=allow_config_change)
    try:
        with ctx.interrupts.interruptible():
            if resume and stage in ctx.run.state["done"]:
                console.print(f"[dim]{stage}: done earlier, nothing to resume")
            else:
                ctx.run.state["done"] = [s for s in ctx.run.state["done"] if s != stage]
                ctx.run.begin_stage(stage, resume)
                recipe.STAGES[stage](ctx, **kwargs)
        return write_summary(ctx)
    finally:
        ctx.run.state["wall_seconds"] = ctx.run.wall_seconds()
        ctx.run.write_state()
        ctx.close()


def sft(cfg: RunConfig, resume: bool = False, allow_config_change: bool = False) -> dict[str, Any]:
    """Cold-start SFT only: writes ``checkpoints/sft``; ``resume`` continues an interrupted
    one."""
    return _single_stage(cfg, "sft", resume, allow_config_change)


def train(
    cfg: RunConfig, resume: bool = False, allow_config_change: bool = False
) -> dict[str, Any]:
    """RL only: from this run's SFT checkpoint when there is one, else from ``model.path``
    (or a fresh embedded model). Writes ``checkpoints/rl``; ``resume`` continues an
    interrupted one."""
    init = "sft" if (cfg.run_dir / "checkpoints" / "sft" / "config.json").exists() else "init"
    # under torchrun, rank 0 trains and the other ranks serve it (and return {})
    return on_ranks(lambda: _single_stage(cfg, "rl", resume, allow_config_change, init=init))


def sample(
    cfg: RunConfig, source: str = "rl", resume: bool = False, allow_config_change: bool = False
) -> dict[str, Any]:
    """Rejection sampling from a checkpoint of this run: writes ``rejection.jsonl``. It holds
    no checkpoint of its own: ``resume`` redoes it unless it finished (same samples)."""
    return _single_stage(cfg, "rejection", resume, allow_config_change, source=source)


def eval_model(
    cfg: RunConfig, model_path: str | Path, output: str | Path | None = None
) -> dict[str, Any]:
    """Held-out pass@1 (greedy) and pass@k of any checkpoint on the configured task; with an
    environment, greedy episodes with real feedback, one attempt, and blank feedback."""
    from rlvr.interop.external import is_external

    run = _eval_episodes if cfg.env.name else _eval_completions
    if is_external(cfg.env.name):
        run = _eval_imported
    result = run(cfg, model_path)
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps(result, indent=2))
    return result


def _eval_completions(cfg: RunConfig, model_path: str | Path) -> dict[str, Any]:
    from rlvr.verifiers.base import get_verifier
    from rlvr.verifiers.pool import VerifierPool
    from rlvr.wiring import build_engine, build_task, formatter

    task = build_task(cfg)
    verifier = get_verifier(cfg.task.verifier or task.verifier, **dict(task.verifier_options))
    model, tokenizer = load_policy(model_path, cfg.model.device, cfg.model.dtype)
    e = cfg.eval
    engine = build_engine(cfg, tokenizer, model)
    with VerifierPool(workers=cfg.rl.verifier_workers) as pool, closing(engine):
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
            format_prompt=formatter(cfg, tokenizer),
            engine=engine,
        )
    result["model"] = str(model_path)
    result["task"] = cfg.task.name
    result["engine"] = engine.name
    return result


def _eval_episodes(cfg: RunConfig, model_path: str | Path) -> dict[str, Any]:
    from rlvr.wiring import build_engine, build_task

    model, tokenizer = load_policy(model_path, cfg.model.device, cfg.model.dtype)
    heldout = build_task(cfg).examples("heldout", cfg.eval.heldout)
    engine = build_engine(cfg, tokenizer, model)
    result: dict[str, Any] = {"model": str(model_path), "env": cfg.env.name, "engine": engine.name}
    with closing(engine):
        for name in agentic_code.VARIANTS:
            got = agentic_code.play_variant(cfg, model, tokenizer, heldout, name, engine)
            prefix = agentic_code.metric_prefix(name)
            result[f"{prefix}pass@1"] = got["pass@1"]
            result[f"{prefix}reward"] = got["reward"]
            result[f"{prefix}turns"] = got["turns"]
            if name == "multi_turn":
                result["n"], result["samples"] = got["n"], got["samples"]
    return result


def _eval_imported(cfg: RunConfig, model_path: str | Path) -> dict[str, Any]:
    """Greedy episodes of an imported environment on its held-out problems."""
    from rlvr.interop import external
    from rlvr.wiring import build_task

    model, tokenizer = load_policy(model_path, cfg.model.device, cfg.model.dtype)
    heldout = build_task(cfg).examples("heldout", cfg.eval.heldout)
    try:
        result = external.family(cfg.env.name).evaluate(cfg, model, tokenizer, heldout)
    finally:
        external.close_all()
    return {"model": str(model_path), "env": cfg.env.name, **result}


def verify_env(cfg: RunConfig, problems: int = 4):
    """``rlvr verify --env``: the known-hack probes against an imported environment's reward
    (``interop.audit``); returns the :class:`rlvr.interop.audit.Audit`."""
    from rlvr.interop import external
    from rlvr.interop.audit import audit
    from rlvr.wiring import env_options

    try:
        return audit(cfg.env.name, env_options(cfg), problems)
    finally:
        external.close_all()


def serve_env(name: str, host: str, port: int, options: dict[str, Any], max_sessions: int) -> None:
    """``rlvr serve-env``: an rlvr task or environment as an OpenEnv server (``interop.serve``)."""
    from rlvr.interop.external import require

    require("openenv", "rlvr serve-env", 'pip install "rlvr[envs]" (openenv-core)')
    from rlvr.interop.serve import serve

    serve(name, host, port, options, max_sessions)


def report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html``, self-contained (plots embedded): returns its path."""
    from rlvr.tracking.report import write_report

    return write_report(run_dir)


def monitor(path: str | Path, overrides: list[str] | None = None):
    """Replay the reward-hacking and health detectors over a finished run directory (its
    ``metrics.jsonl``) or over a JSONL of ``{prompt, completion, reward, step}`` samples from any
    trainer; returns a :class:`rlvr.monitor.replay.MonitorReport` (``.alerts``, ``.lines()``)."""
    from rlvr.monitor.replay import monitor_run

    return monitor_run(path, overrides)

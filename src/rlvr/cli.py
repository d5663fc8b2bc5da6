"""The ``rlvr`` command: a thin typer layer; each command calls one function of ``rlvr.api``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Reinforcement learning from verifiable rewards: GRPO, verifiers, the DeepSeek-R1 recipe.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
_state = {"debug": False}
MONITOR_STOP_EXIT = 3  # a monitor detector whose action is ``stop`` ended the run

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config (see `rlvr config`)")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-o", help="override a field: -o rl.steps=100 (repeatable)"),
]
NameOpt = Annotated[str | None, typer.Option(help="run name: the run directory is runs/<name>")]
SeedOpt = Annotated[int | None, typer.Option(help="random seed")]


RunDirOpt = Annotated[
    Path | None, typer.Option("--out", help="the run directory (default runs/<name>)")
]
AllowChangeOpt = Annotated[
    bool,
    typer.Option(
        "--allow-config-change",
        help="with --resume: go on although the settings differ from the run's config.yaml "
        "(the differences are printed and kept in state.json)",
    ),
]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        help="continue an interrupted run from its last checkpoint, exactly as if it had not "
        "stopped (same machine and thread count)"
    ),
]


RayOpt = Annotated[
    bool,
    typer.Option(
        "--ray",
        help="run the RL stage on Ray actors, on a local cluster (scale.rollout_workers, "
        "scale.verifier_workers, scale.learners, scale.mode; `pip install 'rlvr[ray]'`)",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option("--ray-address", help="run the RL stage on this Ray cluster (e.g. auto)"),
]


EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="what samples rollouts: auto (vLLM where installed and faster for the model), "
        "rlvr (rlvr's own decoders) or vllm (`make setup-vllm`); rollout.engine",
    ),
]


def _engine_fields(engine: str | None, fields: dict[str, Any]) -> None:
    if engine is not None:
        fields.setdefault("rollout", {})["engine"] = engine


def _scale_fields(ray: bool, ray_address: str | None) -> dict[str, Any]:
    if ray_address:
        return {"scale": {"ray": True, "ray_address": ray_address}}
    return {"scale": {"ray": True}} if ray else {}


def _run_dir_fields(out: Path | None, name: str | None) -> dict[str, Any]:
    """``--out DIR`` is the run directory itself: RunConfig keeps it as out_dir/name."""
    if out is None:
        return {"name": name}
    if name is not None:
        raise typer.BadParameter("give --out (the run directory) or --name, not both")
    out = out.expanduser()
    return {"out_dir": str(out.parent), "name": out.name}


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False) -> None:
    _state["debug"] = debug


def _config(config: Path | None, overrides: list[str] | None, **fields: Any):
    from rlvr.config import load_config

    top = {k: v for k, v in fields.items() if v is not None}
    return load_config(config, overrides or [], **top)


def _print_summary(summary: dict[str, Any], title: str) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key == "bars_advice":
            continue  # said after the table
        if isinstance(value, dict):  # one row per entry: the recipe's bars
            for name, ok in value.items():
                table.add_row(
                    f"{key}: {name}", "yes" if ok is True else "no" if ok is False else str(ok)
                )
            continue
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    out = Console()
    out.print(table)
    if "bars_cleared" in summary:
        if summary["bars_cleared"]:
            out.print("[green]This run cleared the recipe's bars.")
        else:
            out.print("[yellow]This run missed the recipe's bars. What to try:")
            for line in summary.get("bars_advice", []):
                out.print(f"[yellow]  - {line}")


@app.command()
def run(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    name: NameOpt = None,
    out: RunDirOpt = None,
    seed: SeedOpt = None,
    resume: ResumeOpt = False,
    allow_config_change: AllowChangeOpt = False,
    recipe: Annotated[
        str | None,
        typer.Option(
            help="r1 (default): SFT -> GRPO -> rejection sampling -> SFT; agentic_code: SFT -> "
            "multi-turn GRPO with code execution feedback -> held-out controls"
        ),
    ] = None,
    allow_weak_verifier: AllowWeakOpt = False,
    ray: RayOpt = False,
    ray_address: RayAddressOpt = None,
    engine: EngineOpt = None,
    env: Annotated[
        str | None,
        typer.Option(help="an environment: code_feedback, vf:ID (verifiers), openenv:URL|PACKAGE"),
    ] = None,
) -> None:
    """A whole recipe (default: DeepSeek-R1's cold-start SFT -> GRPO -> rejection sampling ->
    final SFT)."""
    fields: dict[str, Any] = {"seed": seed, "recipe": recipe, **_run_dir_fields(out, name)}
    fields.update(_scale_fields(ray, ray_address))
    _engine_fields(engine, fields)
    if env:
        fields["env"] = {"name": env}
    if allow_weak_verifier:
        fields["task"] = {"allow_weak_verifier": True}
    cfg = _config(config, set_, **fields)
    from rlvr import api  # after validation: a config error never waits for torch to import

    summary = api.run(cfg, resume=resume, allow_config_change=allow_config_change)
    _print_summary(summary, f"run {cfg.run_dir}")


@app.command()
def sft(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    name: NameOpt = None,
    out: RunDirOpt = None,
    seed: SeedOpt = None,
    resume: ResumeOpt = False,
    allow_config_change: AllowChangeOpt = False,
) -> None:
    """Cold-start SFT on the task's worked solutions (writes checkpoints/sft)."""
    from rlvr import api

    cfg = _config(config, set_, seed=seed, **_run_dir_fields(out, name))
    _print_summary(api.sft(cfg, resume, allow_config_change), "sft")


DataOpt = Annotated[
    str | None,
    typer.Option(
        help="your data: .jsonl, .json, .csv, .parquet or a saved `datasets` directory, "
        "with prompt and answer columns"
    ),
]
SkipBadOpt = Annotated[
    bool, typer.Option("--skip-bad-rows", help="drop invalid data rows (listed) and go on")
]
DeviceOpt = Annotated[str | None, typer.Option(help="auto | cpu | cuda (bf16 on GPU)")]
AllowWeakOpt = Annotated[
    bool,
    typer.Option(
        "--allow-weak-verifier",
        help="train even if the verifier fails its self-test (to watch reward hacking happen)",
    ),
]
EnvOpt = Annotated[
    str | None,
    typer.Option(
        help="a multi-turn environment (episodes, not completions): code_feedback; vf:ID (a "
        "verifiers taskset: installed id or local path); openenv:URL (a running OpenEnv server) "
        "or openenv:PACKAGE (an installed OpenEnv environment, started here); options with "
        "-o env.options.KEY=VALUE"
    ),
]


def _task_fields(
    task: str | None, data: str | None, verifier: str | None, skip_bad_rows: bool
) -> dict[str, Any]:
    if task and data:
        raise typer.BadParameter("give --task or --data, not both")
    fields: dict[str, Any] = {}
    if data:
        fields = {"name": "file", "options": {"path": data}}
        if skip_bad_rows:
            fields["options"]["skip_bad_rows"] = True
    elif task:
        fields["name"] = task
    if verifier:
        fields["verifier"] = verifier
    return fields


def _model_fields(
    model: str | None,
    device: str | None,
    lora_r: int | None = None,
    lora_alpha: int | None = None,
    lora_targets: str | None = None,
    merge_lora: bool | None = None,
) -> dict[str, Any]:
    fields = {
        "path": model,
        "device": device,
        "lora_r": lora_r,
        "lora_alpha": lora_alpha,
        "lora_target_modules": lora_targets.split(",") if lora_targets else None,
        "lora_merge": merge_lora,
    }
    return {k: v for k, v in fields.items() if v is not None}


@app.command()
def train(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    name: NameOpt = None,
    out: RunDirOpt = None,
    seed: SeedOpt = None,
    model: Annotated[str | None, typer.Option(help="local Hugging Face model directory")] = None,
    data: DataOpt = None,
    task: Annotated[
        str | None, typer.Option(help="task name, e.g. arithmetic, reasoning_gym:NAME")
    ] = None,
    env: EnvOpt = None,
    verifier: Annotated[
        str | None, typer.Option(help="verifier name, e.g. math, code (default: the task's)")
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="RL steps")] = None,
    skip_bad_rows: SkipBadOpt = False,
    device: DeviceOpt = None,
    system_prompt: Annotated[
        str | None, typer.Option(help="system prompt (chat-template models)")
    ] = None,
    lora_r: Annotated[int | None, typer.Option(help="LoRA rank; 0 = full fine-tuning")] = None,
    lora_alpha: Annotated[int | None, typer.Option(help="LoRA alpha (default 2 * r)")] = None,
    lora_targets: Annotated[
        str | None, typer.Option(help="comma-separated modules to adapt (default all-linear)")
    ] = None,
    merge_lora: Annotated[
        bool | None, typer.Option("--merge-lora", help="also save merged weights")
    ] = None,
    resume: ResumeOpt = False,
    allow_config_change: AllowChangeOpt = False,
    allow_weak_verifier: AllowWeakOpt = False,
    ray: RayOpt = False,
    ray_address: RayAddressOpt = None,
    engine: EngineOpt = None,
) -> None:
    """RL with GRPO (from this run's SFT checkpoint, or from --model). Data-parallel under
    ``torchrun --nproc-per-node N -m rlvr train ...``; on Ray actors with --ray."""
    from rlvr import api

    fields: dict[str, Any] = {"seed": seed, **_run_dir_fields(out, name)}
    fields.update(_scale_fields(ray, ray_address))
    _engine_fields(engine, fields)
    model_fields = _model_fields(model, device, lora_r, lora_alpha, lora_targets, merge_lora)
    if model_fields:
        fields["model"] = model_fields
    task_fields = _task_fields(task, data, verifier, skip_bad_rows)
    if system_prompt is not None:
        task_fields["system_prompt"] = system_prompt
    if task_fields:
        fields["task"] = task_fields
    if env:
        fields["env"] = {"name": env}
        if skip_bad_rows:
            fields["env"]["options"] = {"skip_bad_rows": True}
    if allow_weak_verifier:
        fields.setdefault("task", {})["allow_weak_verifier"] = True
    if max_steps is not None:
        fields["rl"] = {"steps": max_steps}
    cfg = _config(config, set_, **fields)
    summary = api.train(cfg, resume=resume, allow_config_change=allow_config_change)
    if summary:  # a torchrun rank above 0 has none: rank 0 writes the run
        _print_summary(summary, f"train {cfg.run_dir}")


@app.command()
def sample(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    name: NameOpt = None,
    out: RunDirOpt = None,
    seed: SeedOpt = None,
    source: Annotated[str, typer.Option(help="checkpoint of the run to sample from")] = "rl",
    resume: ResumeOpt = False,
    allow_config_change: AllowChangeOpt = False,
) -> None:
    """Rejection sampling: k samples per training prompt, verified ones kept (rejection.jsonl)."""
    from rlvr import api

    cfg = _config(config, set_, seed=seed, **_run_dir_fields(out, name))
    _print_summary(api.sample(cfg, source, resume, allow_config_change), "sample")


def _default_eval_output(model: str, out: Path | None) -> Path:
    """``--out DIR`` -> DIR/eval.json; a run's checkpoint -> that run's eval-<stage>.json;
    any other model directory -> eval.json inside it."""
    if out is not None:
        return out / "eval.json"
    path = Path(model)
    if path.parent.name == "checkpoints":
        return path.parent.parent / f"eval-{path.name}.json"
    return path / "eval.json"


@app.command("eval")
def eval_(
    model: Annotated[str, typer.Option(help="model or checkpoint directory (HF or LoRA)")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    data: DataOpt = None,
    task: Annotated[str | None, typer.Option(help="task name")] = None,
    env: EnvOpt = None,
    verifier: Annotated[
        str | None, typer.Option(help="verifier name (default: the task's)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="directory for eval.json (e.g. the run dir)")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="write the results as JSON here")] = None,
    skip_bad_rows: SkipBadOpt = False,
    device: DeviceOpt = None,
    engine: EngineOpt = None,
) -> None:
    """pass@1 (greedy) and pass@k (unbiased estimator) of a model on held-out problems.

    With --data, every row of the file is a held-out problem (up to eval.heldout)."""
    from rlvr import api

    fields: dict[str, Any] = {"seed": seed}
    task_fields = _task_fields(task, data, verifier, skip_bad_rows)
    if data:
        task_fields["options"]["heldout_fraction"] = 1.0
    if task_fields:
        fields["task"] = task_fields
    if env:
        fields["env"] = {"name": env}
    if device:
        fields["model"] = {"device": device}
    _engine_fields(engine, fields)
    output = output or _default_eval_output(model, out)
    result = api.eval_model(_config(config, set_, **fields), model, output)
    _print_summary({k: v for k, v in result.items() if k != "samples"}, f"eval {model}")
    console.print(f"results written to {output}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
) -> None:
    """Write RUN_DIR/report.html: config, summary, plots and sample completions, in one file."""
    from rlvr import api

    path = api.report(run_dir)
    console.print(f"report written to {path}")


@app.command()
def monitor(
    path: Annotated[
        Path,
        typer.Argument(
            help="a run directory, its metrics.jsonl, or a JSONL of {prompt, completion, reward, "
            "step} samples (from TRL, verl, ...)"
        ),
    ],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-o", help="a monitor setting: -o patience=2 (repeatable)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Re-run the reward-hacking and health detectors on a finished run: one line per alert and
    a verdict. Exit code 0 with or without alerts."""
    # like `verify`, straight to the light module: rlvr.api would import torch for nothing
    from rlvr.monitor.replay import monitor_run

    report = monitor_run(path, set_)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict()) + "\n")
    else:
        sys.stdout.write("\n".join(report.lines()) + "\n")


@app.command()
def verify(
    input: Annotated[
        str | None,
        typer.Option(
            "--input", "-i", help="JSONL of {id, verifier, response, reference}; - for stdin"
        ),
    ] = None,
    output: Annotated[str, typer.Option("--output", help="JSONL of verdicts; - for stdout")] = "-",
    workers: Annotated[
        int | None, typer.Option(help="concurrent checks (default: CPU count)")
    ] = None,
    unsafe: Annotated[
        bool, typer.Option(help="allow running code without sandbox isolation")
    ] = False,
    env: Annotated[
        str | None,
        typer.Option(
            help="audit an imported environment's reward instead (vf:ID, openenv:...): "
            "rlvr's known-hack probes, each probe's reward; exit code 1 when one is paid"
        ),
    ] = None,
    set_: SetOpt = None,
    problems: Annotated[int, typer.Option(help="--env: problems each probe is tried on")] = 4,
    as_json: Annotated[bool, typer.Option("--json", help="--env: print one JSON object")] = False,
) -> None:
    """Score a batch of responses: one verdict line per input line, in order. With --env,
    audit an imported environment's reward against rlvr's known-hack probes."""
    if env:
        from rlvr import api

        result = api.verify_env(_config(None, set_, env={"name": env}), problems)
        text = json.dumps(result.to_dict()) if as_json else "\n".join(result.lines())
        sys.stdout.write(text + "\n")
        if result.weak:  # a CI check can fail on it (click swallows typer.Exit here)
            raise SystemExit(1)
        return
    if input is None:
        raise typer.BadParameter("give --input (responses to score) or --env (an environment)")
    from rlvr.verifiers.batch import verify_jsonl

    summary = verify_jsonl(input, output, workers=workers, unsafe=unsafe)
    console.print(json.dumps(summary))


@app.command("serve-env")
def serve_env(
    name: Annotated[
        str,
        typer.Argument(help="an rlvr task (arithmetic, humaneval, coq:..., ...) or environment"),
    ],
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-o", help="an option of the task or environment: -o seed=1"),
    ] = None,
    max_sessions: Annotated[
        int, typer.Option(help="concurrent sessions (episodes) the server holds")
    ] = 64,
) -> None:
    """Serve an rlvr task or environment as an OpenEnv server (reset / step / state, HTTP and
    WebSocket): other trainers train on rlvr's sandbox and checkers unchanged."""
    from rlvr import api
    from rlvr.config import parse_overrides

    api.serve_env(name, host, port, parse_overrides(set_ or []), max_sessions)


@app.command("config")
def show_config(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Print the resolved configuration (defaults, file and overrides) as YAML."""
    import yaml

    cfg = _config(config, set_)
    sys.stdout.write(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


def main() -> None:
    """Entry point: user errors become one clear line and a non-zero exit, not a traceback."""
    import os

    # Set before transformers is imported (only commands that load a model import it; `rlvr
    # verify` must start fast): quiet HF's own logging and its weight-loading bars.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rlvr.config import ConfigError

    try:
        app(standalone_mode=False)
    except (typer.Exit, SystemExit) as exc:
        raise SystemExit(getattr(exc, "exit_code", getattr(exc, "code", 0))) from None
    except typer.Abort:
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 - the one place errors meet the user
        import click

        from rlvr.monitor.live import MonitorStop
        from rlvr.progress import Interrupted

        if _state["debug"] or "--debug" in sys.argv:
            raise
        if isinstance(exc, MonitorStop):
            console.print(
                f"[red]stopped by the monitor: {exc}. The run saved its last checkpoint and its "
                "summary; alerts.jsonl has the alerts."
            )
            raise SystemExit(MONITOR_STOP_EXIT) from None
        if isinstance(exc, Interrupted):
            command = next((a for a in sys.argv[1:] if not a.startswith("-")), "run")
            console.print(
                f"[yellow]interrupted during {exc}; state saved. Continue with the same "
                f"command and --resume (rlvr {command} ... --resume)"
            )
            raise SystemExit(130) from None
        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        kind = "config error" if isinstance(exc, ConfigError) else type(exc).__name__
        console.print(f"[bold red]error[/] ({kind}): {exc}")
        console.print("[dim]run with --debug for the traceback[/]")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

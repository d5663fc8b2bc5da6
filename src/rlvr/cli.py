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

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config (see `rlvr config`)")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-o", help="override a field: -o rl.steps=100 (repeatable)"),
]
NameOpt = Annotated[str | None, typer.Option(help="run name: the run directory is <out>/<name>")]
OutOpt = Annotated[str | None, typer.Option(help="parent folder of run directories (default runs)")]
SeedOpt = Annotated[int | None, typer.Option(help="random seed")]


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
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)


@app.command()
def run(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    name: NameOpt = None,
    out: OutOpt = None,
    seed: SeedOpt = None,
    resume: Annotated[
        bool, typer.Option(help="continue an interrupted run from its last checkpoint")
    ] = False,
) -> None:
    """The whole DeepSeek-R1 recipe: cold-start SFT -> GRPO -> rejection sampling -> final SFT."""
    from rlvr import api

    cfg = _config(config, set_, name=name, out_dir=out, seed=seed)
    summary = api.run(cfg, resume=resume)
    _print_summary(summary, f"run {cfg.run_dir}")


@app.command()
def sft(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    name: NameOpt = None,
    out: OutOpt = None,
    seed: SeedOpt = None,
) -> None:
    """Cold-start SFT on the task's worked solutions (writes checkpoints/sft)."""
    from rlvr import api

    _print_summary(api.sft(_config(config, set_, name=name, out_dir=out, seed=seed)), "sft")


@app.command()
def train(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    name: NameOpt = None,
    out: OutOpt = None,
    seed: SeedOpt = None,
    model: Annotated[str | None, typer.Option(help="local Hugging Face model directory")] = None,
    task: Annotated[str | None, typer.Option(help="task name, e.g. arithmetic, humaneval")] = None,
    verifier: Annotated[
        str | None, typer.Option(help="verifier name (default: the task's)")
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="RL steps")] = None,
) -> None:
    """RL with GRPO (from this run's SFT checkpoint, or from --model)."""
    from rlvr import api

    fields: dict[str, Any] = {"name": name, "out_dir": out, "seed": seed}
    if model:
        fields["model"] = {"path": model}
    task_fields = {k: v for k, v in {"name": task, "verifier": verifier}.items() if v}
    if task_fields:
        fields["task"] = task_fields
    if max_steps is not None:
        fields["rl"] = {"steps": max_steps}
    _print_summary(api.train(_config(config, set_, **fields)), "train")


@app.command()
def sample(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    name: NameOpt = None,
    out: OutOpt = None,
    seed: SeedOpt = None,
    source: Annotated[str, typer.Option(help="checkpoint of the run to sample from")] = "rl",
) -> None:
    """Rejection sampling: k completions per training prompt, verified ones kept (rejection.jsonl)."""
    from rlvr import api

    _print_summary(
        api.sample(_config(config, set_, name=name, out_dir=out, seed=seed), source), "sample"
    )


@app.command("eval")
def eval_(
    model: Annotated[str, typer.Option(help="checkpoint directory (save_pretrained output)")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    task: Annotated[str | None, typer.Option(help="task name")] = None,
    verifier: Annotated[
        str | None, typer.Option(help="verifier name (default: the task's)")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="write the results as JSON here")] = None,
) -> None:
    """Held-out pass@1 (greedy) and pass@k (unbiased estimator) of a checkpoint."""
    from rlvr import api

    fields: dict[str, Any] = {"seed": seed}
    task_fields = {k: v for k, v in {"name": task, "verifier": verifier}.items() if v}
    if task_fields:
        fields["task"] = task_fields
    result = api.eval_model(_config(config, set_, **fields), model, output)
    _print_summary({k: v for k, v in result.items() if k != "samples"}, f"eval {model}")


@app.command()
def verify(
    input: Annotated[
        str,
        typer.Option(
            "--input", "-i", help="JSONL of {id, verifier, response, reference}; - for stdin"
        ),
    ],
    output: Annotated[str, typer.Option("--output", help="JSONL of verdicts; - for stdout")] = "-",
    workers: Annotated[
        int | None, typer.Option(help="concurrent checks (default: CPU count)")
    ] = None,
    unsafe: Annotated[
        bool, typer.Option(help="allow running code without sandbox isolation")
    ] = False,
) -> None:
    """Score a batch of responses: one verdict line per input line, in order."""
    from rlvr.verifiers.batch import verify_jsonl

    summary = verify_jsonl(input, output, workers=workers, unsafe=unsafe)
    console.print(json.dumps(summary))


@app.command("config")
def show_config(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Print the resolved configuration (defaults, file and overrides) as YAML."""
    import yaml

    cfg = _config(config, set_)
    sys.stdout.write(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


def main() -> None:
    """Entry point: user errors become one clear line and a non-zero exit, not a traceback."""
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    from rlvr.config import ConfigError

    try:
        app(standalone_mode=False)
    except (typer.Exit, SystemExit) as exc:
        raise SystemExit(getattr(exc, "exit_code", getattr(exc, "code", 0))) from None
    except typer.Abort:
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 - the one place errors meet the user
        import click

        from rlvr.recipes.context import Interrupted

        if _state["debug"] or "--debug" in sys.argv:
            raise
        if isinstance(exc, Interrupted):
            console.print(
                f"[yellow]interrupted during {exc}; state saved. Continue with: rlvr run --resume"
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

"""What every stage of a run shares: the config, the run directory, the task, the scorer, the
metrics log, progress bars, and interruption handling. State between processes lives only in
the run directory (``state.json``, ``metrics.jsonl``, HF checkpoints)."""

from __future__ import annotations

import inspect
import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlvr.config import RunConfig, dump_config
from rlvr.models.load import load_policy
from rlvr.models.lora import apply_lora, is_peft, save_merged
from rlvr.models.tiny import save_tiny
from rlvr.rollout.prompts import format_prompt
from rlvr.tasks.base import Example, Task, get_task
from rlvr.tracking.metrics import MetricsLog
from rlvr.verifiers.base import Verdict, get_verifier
from rlvr.verifiers.pool import VerifierPool

console = Console(stderr=True)


class Interrupted(Exception):
    """Ctrl-C arrived; the stage saved what it had and the run can ``--resume``."""


def env_options(cfg: RunConfig) -> dict[str, Any]:
    """The environment's options: the configured ones, the run's seed and turn limit, and the
    prompt style the policy reads (words for a chat model, compact for the embedded one)."""
    options = {"seed": cfg.seed, "max_turns": cfg.env.max_turns, **cfg.env.options}
    if "style" not in options:
        chat = cfg.task.use_chat_template
        if chat is None and cfg.model.path:
            chat = _has_chat_template(cfg.model.path)
        options["style"] = "instruct" if chat else "compact"
    return options


def _has_chat_template(path: str) -> bool:
    from transformers import AutoTokenizer

    from rlvr.models.lora import adapter_base_path, is_adapter_dir

    where = adapter_base_path(Path(path)) if is_adapter_dir(Path(path)) else path
    try:
        return bool(AutoTokenizer.from_pretrained(where, local_files_only=True).chat_template)
    except (OSError, ValueError):
        return False


def make_env(
    cfg: RunConfig, example: Example, blank_feedback: bool = False, max_turns: int | None = None
):
    """One episode's environment on ``example``. ``blank_feedback``: every observation is the
    same text (a control); ``max_turns=1``: a single attempt (the other control)."""
    from rlvr.envs import BlankFeedback, get_env_family
    from rlvr.envs.base import accepted

    turns = max_turns or cfg.env.max_turns
    family = get_env_family(cfg.env.name)
    env = family(example, **accepted(family, {**env_options(cfg), "max_turns": turns}))
    return BlankFeedback(env, turns, cfg.env.blank_text) if blank_feedback else env


def episode_runner(
    cfg: RunConfig, tokenizer: PreTrainedTokenizerBase, max_turns: int | None = None
):
    """Plays batches of episodes with the run's limits and prompt format."""
    from rlvr.rollout.episodes import EpisodeLimits, EpisodeRunner, TurnCodec

    e = cfg.env
    limits = EpisodeLimits(max_turns or e.max_turns, e.max_turn_tokens, e.max_episode_tokens)
    codec = TurnCodec(tokenizer, cfg.task.system_prompt, cfg.task.use_chat_template)
    return EpisodeRunner(tokenizer, codec, limits, e.workers or os.cpu_count() or 1)


def build_task(cfg: RunConfig) -> Task:
    from rlvr.tasks.base import _TASKS  # the factory, to see which options it takes

    if cfg.env.name:  # the environment's problems
        from rlvr.envs.base import EnvTask

        return EnvTask(cfg.env.name, **env_options(cfg))

    family = cfg.task.name.partition(":")[0]
    options = dict(cfg.task.options)
    factory = _TASKS.get(family)
    params = inspect.signature(factory).parameters if factory is not None else {}
    if "seed" in params:
        options.setdefault("seed", cfg.seed)
    if "verifier" in params and cfg.task.verifier:  # a file task parses references for it
        options.setdefault("verifier", cfg.task.verifier)
    return get_task(cfg.task.name, **options)


class RunContext:
    def __init__(self, cfg: RunConfig, fresh: bool = False) -> None:
        self.cfg = cfg
        self.dir = cfg.run_dir
        if fresh and (self.dir / "state.json").exists():
            raise FileExistsError(
                f"{self.dir} already holds a run; pass --resume to continue it, or choose another "
                "--name (or delete the directory)"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, self.dir / "config.yaml")
        if cfg.model.threads:
            torch.set_num_threads(cfg.model.threads)
        self.task = build_task(cfg)
        verifier_name = cfg.task.verifier or self.task.verifier
        self.verifier = (
            None  # an environment scores its own episodes
            if cfg.env.name and not cfg.task.verifier
            else get_verifier(verifier_name, **dict(self.task.verifier_options))
        )
        self.pool = VerifierPool(workers=cfg.rl.verifier_workers)
        self.metrics = MetricsLog(self.dir, sinks=self._sinks())
        self.state = self._read_state()
        self._stop_requested = False

    # -- scoring and prompts ---------------------------------------------------------------
    def score(self, responses: list[str], references: list[Any]) -> list[Verdict]:
        if self.verifier is None:
            raise RuntimeError("this run's rewards come from its environment, not a verifier")
        return self.pool.score(self.verifier, responses, references)

    def make_env(
        self, example: Example, blank_feedback: bool = False, max_turns: int | None = None
    ):
        return make_env(self.cfg, example, blank_feedback, max_turns)

    def episode_runner(self, tokenizer: PreTrainedTokenizerBase, max_turns: int | None = None):
        return episode_runner(self.cfg, tokenizer, max_turns)

    def formatter(self, tokenizer: PreTrainedTokenizerBase):
        system, chat = self.cfg.task.system_prompt, self.cfg.task.use_chat_template
        return lambda prompt: format_prompt(tokenizer, prompt, system, chat)

    def heldout(self) -> list[Example]:
        return self.task.examples("heldout", self.cfg.eval.heldout)

    # -- checkpoints and state -------------------------------------------------------------
    def checkpoint_dir(self, stage: str) -> Path:
        return self.dir / "checkpoints" / stage

    def initial_policy(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        m = self.cfg.model
        if m.path:
            return load_policy(m.path, m.device, m.dtype)
        init = self.checkpoint_dir("init")
        if not (init / "config.json").exists():
            from rlvr.rollout.episodes import OBS_TAGS

            save_tiny(
                init,
                seed=self.cfg.seed,
                extra_tags=OBS_TAGS if self.cfg.env.name else (),
                hidden_size=m.hidden_size,
                num_layers=m.num_layers,
                num_heads=m.num_heads,
            )
        return load_policy(init, m.device, m.dtype)

    def trainable(self, model: PreTrainedModel) -> PreTrainedModel:
        """The policy to train: with fresh LoRA adapters when ``model.lora_r > 0``."""
        return apply_lora(model, self.cfg.model)

    def load(self, stage: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        path = self.checkpoint_dir(stage)
        return load_policy(path, self.cfg.model.device, self.cfg.model.dtype)

    def save(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, stage: str) -> Path:
        path = self.checkpoint_dir(stage)
        tmp = path.with_name(path.name + ".tmp")
        model.save_pretrained(tmp)  # a PeftModel saves its adapters only
        tokenizer.save_pretrained(tmp)
        if self.cfg.model.lora_merge and is_peft(model) and not stage.endswith("-last"):
            merged = self.checkpoint_dir(stage + "-merged")
            save_merged(model, merged)
            tokenizer.save_pretrained(merged)
        if path.exists():
            old = path.with_name(path.name + ".old")
            os.replace(path, old)
            os.replace(tmp, path)
            _rmtree(old)
        else:
            os.replace(tmp, path)
        return path

    def _read_state(self) -> dict[str, Any]:
        path = self.dir / "state.json"
        return json.loads(path.read_text()) if path.exists() else {"done": [], "summary": {}}

    def write_state(self) -> None:
        path = self.dir / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        os.replace(tmp, path)

    def mark_done(self, stage: str, **summary: Any) -> None:
        if stage not in self.state["done"]:
            self.state["done"].append(stage)
        self.state["summary"].update(summary)
        self.state.pop(f"{stage}_progress", None)
        self.write_state()

    # -- progress and interruption ---------------------------------------------------------
    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[Any]:
        bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not self.cfg.logging.progress,
            transient=False,
        )
        with bar:
            task_id = bar.add_task(description, total=total, info="")

            def advance(n: int = 1, info: str | None = None) -> None:
                bar.update(task_id, advance=n, **({"info": info} if info is not None else {}))

            yield advance

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """First Ctrl-C asks the running stage to save and stop at the next step boundary."""

        def handler(signum, frame):  # noqa: ARG001
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            console.print(
                "[yellow]interrupt: saving at the end of this step (Ctrl-C again to abort)"
            )

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def stop_requested(self) -> bool:
        return self._stop_requested

    def close(self) -> None:
        self.metrics.close()
        self.pool.close()

    def _sinks(self) -> list:
        if not self.cfg.logging.trackers:
            return []
        from rlvr.tracking.sinks import make_sinks

        return make_sinks(self.cfg.logging.trackers, self.dir, self.cfg.model_dump(mode="json"))


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def wall_clock() -> float:
    return time.perf_counter()

"""What every stage of a run shares: the config, the run directory, the task, the scorer, the
metrics log, progress bars, and interruption handling. State between processes lives only in
the run directory (``state.json``, ``metrics.jsonl``, HF checkpoints).

How a run survives a hard kill (``--resume``):

- A stage that runs long saves ``checkpoints/<stage>-last`` now and then: the HF checkpoint and,
  in the same directory swap, ``trainer_state.pt`` with everything its next step depends on
  (optimizer moments, LR schedule, random generators, position in the data, step, seconds)
  and where the run's append-only logs (``metrics.jsonl``, ``samples.jsonl``) ended.
- ``state.json`` records the same log ends each time a stage finishes (``state["logs"]``).
- A resumed stage starts from its ``-last`` checkpoint when it has one, else from scratch; the
  log rows written after that point are moved to ``<log>.dropped.jsonl``, so every step appears
  once and the resumed run writes the rows the uninterrupted run would have written.
- One process per run directory: ``run.lock`` (``RunLock``).
"""

from __future__ import annotations

import fcntl
import inspect
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
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

from rlvr.config import ConfigError, RunConfig, config_changes, dump_config
from rlvr.faults import fault_point
from rlvr.models.load import load_policy
from rlvr.models.lora import apply_lora, is_peft, save_merged
from rlvr.models.tiny import save_tiny
from rlvr.rollout.prompts import format_prompt
from rlvr.tasks.base import Example, Task, get_task
from rlvr.tracking.metrics import MetricsLog, drop_after
from rlvr.verifiers.base import Verdict, get_verifier
from rlvr.verifiers.pool import VerifierPool

console = Console(stderr=True)


LOGS = ("metrics.jsonl", "samples.jsonl")  # append-only; a resume cuts them back
TRAINER_STATE = "trainer_state.pt"


class Interrupted(Exception):
    """Ctrl-C arrived; the stage saved what it had and the run can ``--resume``."""


class RunLocked(RuntimeError):
    """Another live process holds the run directory."""


class RunLock:
    """One process per run directory: an exclusive ``flock`` on ``<dir>/run.lock``.

    Held for the life of the process (released by ``release`` or by the OS when the process
    dies, however it dies, so a crash leaves no stale lock: the file stays, the lock does not).
    The file holds the holder's PID, so the process that is refused can say who holds it.
    Child processes do not inherit it: rlvr starts them with ``subprocess``, which closes it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / "run.lock"
        self._file = self.path.open("a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "(starting up)"
            self._file.close()
            raise RunLocked(
                f"{run_dir} is in use by process {holder} (it holds {self.path}); one process "
                "per run directory: wait for it to finish or stop it, then run again "
                "(with --resume to continue)"
            ) from None
        self._file.truncate(0)
        self._file.write(f"{os.getpid()}\n")
        self._file.flush()

    def release(self) -> None:
        if not self._file.closed:
            self._file.close()  # closing the descriptor drops the flock


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


def rollout_source(
    cfg: RunConfig, tokenizer: PreTrainedTokenizerBase, score: Any = None
):  # -> rlvr.rollout.sources.SingleTurn | Episodes
    """The run's rollout source: episodes in the run's environment (``env.name``), else
    single-turn completions scored by ``score``. From the config alone, so that a rollout worker
    on another machine (``rlvr.scale``) builds the same one (its ``score`` is None: verifier
    workers score)."""
    from functools import partial

    from rlvr.envs import external
    from rlvr.rollout.sources import Episodes, SingleTurn

    r = cfg.rollout
    if external.is_external(cfg.env.name):  # vf:ID, openenv:...: the family's own source
        return external.source(cfg, tokenizer)
    if cfg.env.name:
        runner = episode_runner(cfg, tokenizer)
        return Episodes(runner, partial(make_env, cfg), r.group_size, r.temperature, r.top_p)
    return SingleTurn(
        tokenizer, score, r.group_size, r.max_new_tokens, r.temperature, r.top_p,
        formatter(cfg, tokenizer),
    )  # fmt: skip


def formatter(cfg: RunConfig, tokenizer: PreTrainedTokenizerBase) -> Callable[[str], str]:
    """A task prompt -> the text the policy continues (``rollout.prompts``)."""
    from functools import partial

    system, chat = cfg.task.system_prompt, cfg.task.use_chat_template
    return partial(format_prompt, tokenizer, system_prompt=system, use_chat_template=chat)


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
    """A run directory held by this process (``RunLock``) and what its stages share.

    Times: ``wall_seconds()`` is the run's wall-clock time summed over every process that
    worked on it; a process killed without warning counts up to its last checkpoint (the
    work it did after that is redone, and counted, by the process that resumes). A stage's
    seconds (``stage_seconds()``) are counted the same way."""

    def __init__(
        self,
        cfg: RunConfig,
        fresh: bool = False,
        resume: bool = False,
        allow_config_change: bool = False,
    ) -> None:
        self.cfg = cfg
        self.allow_config_change = allow_config_change
        self._config_changes: list[str] = []
        self.dir = cfg.run_dir
        self._t0 = time.perf_counter()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lock = RunLock(self.dir)
        try:
            self._setup(fresh, resume)
        except BaseException:
            self.lock.release()  # now, not whenever the half-built context is collected
            raise

    def _setup(self, fresh: bool, resume: bool) -> None:
        """Everything else, under the lock."""
        cfg = self.cfg
        if fresh and (self.dir / "state.json").exists():
            raise FileExistsError(
                f"{self.dir} already holds a run; pass --resume to continue it, or choose another "
                "--name (or delete the directory)"
            )
        if resume:
            self._check_resumed_config()
        dump_config(cfg, self.dir / "config.yaml")
        if cfg.model.threads:
            torch.set_num_threads(cfg.model.threads)
        self.task = build_task(cfg)
        verifier_name = cfg.task.verifier or self.task.verifier
        self.verifier_name = None if cfg.env.name and not cfg.task.verifier else verifier_name
        self.verifier = None  # an environment scores its own episodes
        if self.verifier_name is not None:
            self._self_test(self.verifier_name, dict(self.task.verifier_options))
            self.verifier = get_verifier(self.verifier_name, **dict(self.task.verifier_options))
        self.eval_verifier = self.verifier
        if cfg.eval.verifier and cfg.eval.verifier != self.verifier_name:
            self.eval_verifier = get_verifier(cfg.eval.verifier)
        self.pool = VerifierPool(workers=cfg.rl.verifier_workers)
        self.metrics = MetricsLog(self.dir, sinks=self._sinks())
        self.state = self._read_state()
        if self._config_changes:
            self.state.setdefault("config_changes", []).append(self._config_changes)
        self.write_state()  # from now on a fresh ``rlvr run`` here asks for --resume
        self._wall_before = float(self.state.get("wall_seconds", 0.0))
        self._stage_t0, self._stage_before = self._t0, 0.0
        self._resumed: dict[str, dict[str, Any]] = {}
        self._stop_requested = False

    def _self_test(self, name: str, options: dict[str, Any]) -> None:
        """Known hacks must score 0 and a known-good answer 1 before a run trains on a verifier;
        ``task.allow_weak_verifier`` (``--allow-weak-verifier``) goes on with a warning."""
        from rlvr.verifiers.selftest import require_strong_verifier

        result = require_strong_verifier(name, options, self.cfg.task.allow_weak_verifier)
        if not result.passed:
            console.print(f"[yellow]verifier {name!r} failed its self-test; training on it anyway:")
            for line in result.lines():
                console.print(f"[yellow]  {line}")

    # -- scoring and prompts ---------------------------------------------------------------
    def score(self, responses: list[str], references: list[Any]) -> list[Verdict]:
        if self.verifier is None:
            raise RuntimeError("this run's rewards come from its environment, not a verifier")
        return self.pool.score(self.verifier, responses, references)

    def eval_score(self, responses: list[str], references: list[Any]) -> list[Verdict]:
        """Held-out scoring: ``eval.verifier`` when set, else the reward's verifier."""
        if self.eval_verifier is None:
            raise RuntimeError("this run's rewards come from its environment, not a verifier")
        return self.pool.score(self.eval_verifier, responses, references)

    def run_monitor(self):
        """The monitor of this run's RL stage (``monitor:``): scanners by the verifier's kind,
        the shadow verifier, the step detectors and their actions."""
        from rlvr.monitor.live import RunMonitor, scanner_for

        m = self.cfg.monitor
        shadow = None
        if m.enabled and m.shadow_verifier:
            strict = get_verifier(m.shadow_verifier, **dict(m.shadow_options))

            def shadow(texts: list[str], refs: list[Any]) -> list[float]:
                return [v.score for v in self.pool.score(strict, texts, refs)]

        return RunMonitor(
            m, self.dir, scanner_for(self.verifier_name), shadow, say=lambda t: console.print(t)
        )

    def make_env(
        self, example: Example, blank_feedback: bool = False, max_turns: int | None = None
    ):
        return make_env(self.cfg, example, blank_feedback, max_turns)

    def formatter(self, tokenizer: PreTrainedTokenizerBase) -> Callable[[str], str]:
        return formatter(self.cfg, tokenizer)

    def rollout_source(self, tokenizer: PreTrainedTokenizerBase):
        """This run's rollout source (``rollout_source``), scored by its verifier pool."""
        return rollout_source(self.cfg, tokenizer, None if self.verifier is None else self.score)

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
        """The policy to train: with fresh LoRA adapters when ``model.lora_r > 0``, drawn from
        the run's seed (torch's global generator starts from a random seed in each process, so
        a seeded run would not repeat), without touching the global generator's stream."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed)
            return apply_lora(model, self.cfg.model)

    def load(self, stage: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        path = self._settled(stage)
        return load_policy(path, self.cfg.model.device, self.cfg.model.dtype)

    def save(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        stage: str,
        trainer_state: dict[str, Any] | None = None,
    ) -> Path:
        """Write checkpoint ``stage`` so that a kill at any instant leaves a usable one: the new
        one is written beside it (``.tmp``), the old one moved aside (``.old``), the new one
        moved in, the old one deleted. A kill between the two moves leaves only ``.old``, which
        ``load`` moves back. ``trainer_state`` (a ``-last`` checkpoint's optimizer, generators,
        step, ...) is saved inside the same directory, with where the logs ended."""
        path = self.checkpoint_dir(stage)
        tmp = path.with_name(path.name + ".tmp")
        old = path.with_name(path.name + ".old")
        _rmtree(tmp)  # a save killed half-way
        model.save_pretrained(tmp)  # a PeftModel saves its adapters only
        tokenizer.save_pretrained(tmp)
        if trainer_state is not None:
            run = {
                "logs": self._log_sizes(),
                "wall_seconds": self.wall_seconds(),
                "stage_seconds": self.stage_seconds(),
            }
            torch.save({**trainer_state, "run": run}, tmp / TRAINER_STATE)
        if self.cfg.model.lora_merge and is_peft(model) and not stage.endswith("-last"):
            merged = self.checkpoint_dir(stage + "-merged")
            save_merged(model, merged)
            tokenizer.save_pretrained(merged)
        if path.exists():
            _rmtree(old)  # left by a save killed after its first move, and recovered since
            os.replace(path, old)
        fault_point(f"save:{stage}")
        os.replace(tmp, path)
        _rmtree(old)
        return path

    def _settled(self, stage: str) -> Path:
        """Checkpoint ``stage``'s directory, after finishing the swap of a save that was killed
        between its two moves (only ``.old`` is left: it is the last good checkpoint)."""
        path = self.checkpoint_dir(stage)
        old = path.with_name(path.name + ".old")
        if not path.exists() and old.exists():
            os.replace(old, path)
        return path

    def _trainer_state(self, stage: str) -> dict[str, Any] | None:
        path = self._settled(stage) / TRAINER_STATE
        if not path.exists():
            return None
        return torch.load(path, map_location="cpu", weights_only=True)

    def _check_resumed_config(self) -> None:
        """A resumed run must have the settings it was started with, or it is not the run it
        claims to continue: the differences are an error, unless ``allow_config_change``, when
        they are printed and kept in ``state.json`` (``config_changes``)."""
        import yaml

        saved_path = self.dir / "config.yaml"
        if not saved_path.exists() or not (self.dir / "state.json").exists():
            return
        saved = yaml.safe_load(saved_path.read_text()) or {}
        changes = config_changes(saved, self.cfg)
        if not changes:
            return
        listed = "; ".join(changes[:8]) + (
            f"; and {len(changes) - 8} more" if len(changes) > 8 else ""
        )
        if not self.allow_config_change:
            raise ConfigError(
                f"--resume with settings other than the run's ({saved_path}): {listed}. Resume "
                "with the same command and settings, or pass --allow-config-change to go on "
                "with these (the run is then no longer what an uninterrupted one would be)"
            )
        console.print(f"[yellow]resuming with changed settings: {listed}")
        self._config_changes = changes

    # -- stages, resume and the logs -------------------------------------------------------
    def begin_stage(self, stage: str, resume: bool) -> dict[str, Any] | None:
        """Set the run directory up for ``stage``: with ``resume``, from its last checkpoint
        (``checkpoints/<stage>-last``) when it has one; otherwise from scratch, which discards
        every ``-last`` checkpoint (they belong to attempts whose log rows are dropped now).
        Log rows written after the chosen point move to ``<log>.dropped.jsonl``. Returns the
        checkpoint's trainer state (also kept for ``resumed``), or None."""
        last = self.checkpoint_dir(f"{stage}-last")
        ckpt = self._trainer_state(f"{stage}-last") if resume else None
        if resume and ckpt is None and last.exists():
            console.print(f"[yellow]{last} holds no trainer state: {stage} starts over")
        if ckpt is None:
            for path in (self.dir / "checkpoints").glob("*-last*"):
                _rmtree(path)
        point = ckpt["run"] if ckpt else {"logs": self.state["logs"]}
        dropped = {}
        for name, size in point["logs"].items():
            n = drop_after(self.dir / name, size)
            if n:
                dropped[name] = n
        if ckpt:
            self._wall_before = max(self._wall_before, float(ckpt["run"]["wall_seconds"]))
            self._resumed[stage] = ckpt
        self._stage_t0 = time.perf_counter()
        self._stage_before = float(ckpt["run"]["stage_seconds"]) if ckpt else 0.0
        if ckpt or dropped:
            where = f"from {last}" if ckpt else "from its start"
            gone = ", ".join(f"{n} row{'s' * (n != 1)} of {name}" for name, n in dropped.items())
            console.print(
                f"[dim]{stage}: resuming {where}"
                + (f"; {gone} written after it moved to *.dropped.jsonl" if gone else "")
            )
        return ckpt

    def resumed(self, stage: str) -> dict[str, Any] | None:
        """The trainer state ``stage`` continues from (set by ``begin_stage``), or None."""
        return self._resumed.get(stage)

    def wall_seconds(self) -> float:
        """The run's wall-clock seconds over all its processes so far (see the class doc)."""
        return self._wall_before + time.perf_counter() - self._t0

    def stage_seconds(self) -> float:
        """Seconds spent on the current stage over all processes so far."""
        return self._stage_before + time.perf_counter() - self._stage_t0

    def _log_sizes(self) -> dict[str, int]:
        return {name: _size(self.dir / name) for name in LOGS}

    def _read_state(self) -> dict[str, Any]:
        path = self.dir / "state.json"
        if not path.exists():
            return {"done": [], "summary": {}, "logs": dict.fromkeys(LOGS, 0)}
        state = json.loads(path.read_text())
        state.setdefault("logs", self._log_sizes())  # a run directory from before resume
        return state

    def write_state(self) -> None:
        path = self.dir / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        os.replace(tmp, path)

    def mark_done(self, stage: str, **summary: Any) -> None:
        """Record ``stage`` as finished, with where the logs end now (the point a later
        stage's restart cuts back to) and the time so far; its ``-last`` checkpoint goes."""
        if stage not in self.state["done"]:
            self.state["done"].append(stage)
        self.state["summary"].update(summary)
        self.state.pop(f"{stage}_progress", None)
        self.state["logs"] = self._log_sizes()
        self.state["wall_seconds"] = self.wall_seconds()
        self.write_state()
        _rmtree(self.checkpoint_dir(f"{stage}-last"))

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
        self.lock.release()

    def _sinks(self) -> list:
        if not self.cfg.logging.trackers:
            return []
        from rlvr.tracking.sinks import make_sinks

        return make_sinks(self.cfg.logging.trackers, self.dir, self.cfg.model_dump(mode="json"))


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def wall_clock() -> float:
    return time.perf_counter()

"""A run directory, the one place a run's state lives between processes: ``config.yaml``,
``state.json``, the append-only logs (``metrics.jsonl``, ``samples.jsonl``) and Hugging Face
checkpoints (``checkpoints.py``). One process holds it at a time (``RunLock``).

How a run survives a hard kill (``--resume``):

- A stage that runs long saves ``checkpoints/<stage>-last`` now and then, with the trainer
  state its next step depends on and where the logs ended.
- ``state.json`` records the same log ends each time a stage finishes (``state["logs"]``).
- A resumed stage starts from its ``-last`` checkpoint when it has one, else from scratch; the
  log rows written after that point are moved to ``<log>.dropped.jsonl``, so every step appears
  once and the resumed run writes the rows the uninterrupted run would have written.

Times: ``wall_seconds()`` sums the run's wall-clock time over every process that worked on it;
a process killed without warning counts up to its last checkpoint (what it did after is redone,
and counted, by the process that resumes). ``stage_seconds()`` likewise.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

import yaml
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlvr.checkpoints import read_trainer_state, rmtree, settled, write_checkpoint
from rlvr.config import ConfigError, RunConfig, config_changes, dump_config
from rlvr.models.load import load_policy
from rlvr.progress import console
from rlvr.tracking.metrics import drop_after

LOGS = ("metrics.jsonl", "samples.jsonl")  # append-only; a resume cuts them back


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


class RunDir:
    """``cfg.run_dir``, held by this process: its lock, config, state, stages and checkpoints.

    Construction takes the lock, refuses a fresh start over an existing run and a resume with
    other settings, and writes ``config.yaml``; ``open_state`` then reads ``state.json`` (after
    the caller has built what may still fail, so a run that never started leaves no state)."""

    def __init__(
        self,
        cfg: RunConfig,
        fresh: bool = False,
        resume: bool = False,
        allow_config_change: bool = False,
    ) -> None:
        self.cfg, self.allow_config_change = cfg, allow_config_change
        self.dir = cfg.run_dir
        self._t0 = time.perf_counter()
        self._config_changes: list[str] = []
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lock = RunLock(self.dir)
        try:
            if fresh and (self.dir / "state.json").exists():
                raise FileExistsError(
                    f"{self.dir} already holds a run; pass --resume to continue it, or choose "
                    "another --name (or delete the directory)"
                )
            if resume:
                self._check_resumed_config()
            dump_config(cfg, self.dir / "config.yaml")
        except BaseException:
            self.lock.release()  # now, not whenever the half-built object is collected
            raise

    def open_state(self) -> None:
        self.state = self._read_state()
        if self._config_changes:
            self.state.setdefault("config_changes", []).append(self._config_changes)
        self.write_state()  # from now on a fresh ``rlvr run`` here asks for --resume
        self._wall_before = float(self.state.get("wall_seconds", 0.0))
        self._stage_t0, self._stage_before = self._t0, 0.0
        self._resumed: dict[str, dict[str, Any]] = {}

    def _check_resumed_config(self) -> None:
        """A resumed run must have the settings it was started with, or it is not the run it
        claims to continue: the differences are an error, unless ``allow_config_change``, when
        they are printed and kept in ``state.json`` (``config_changes``)."""
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

    # -- checkpoints -----------------------------------------------------------------------
    def checkpoint_dir(self, stage: str) -> Path:
        return self.dir / "checkpoints" / stage

    def load(self, stage: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        path = settled(self.checkpoint_dir(stage))
        return load_policy(path, self.cfg.model.device, self.cfg.model.dtype)

    def save(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        stage: str,
        trainer_state: dict[str, Any] | None = None,
    ) -> Path:
        """Checkpoint ``stage`` (``checkpoints.write_checkpoint``); ``trainer_state`` (a
        ``-last`` checkpoint's optimizer, generators, step, ...) is saved with where the logs
        end and the times so far."""
        if trainer_state is not None:
            run = {
                "logs": self._log_sizes(),
                "wall_seconds": self.wall_seconds(),
                "stage_seconds": self.stage_seconds(),
            }
            trainer_state = {**trainer_state, "run": run}
        merged = None
        if self.cfg.model.lora_merge and not stage.endswith("-last"):
            merged = self.checkpoint_dir(stage + "-merged")
        return write_checkpoint(self.checkpoint_dir(stage), model, tokenizer, trainer_state, merged)

    # -- stages and the logs ---------------------------------------------------------------
    def begin_stage(self, stage: str, resume: bool) -> dict[str, Any] | None:
        """Set the run directory up for ``stage``: with ``resume``, from its last checkpoint
        (``checkpoints/<stage>-last``) when it has one; otherwise from scratch, which discards
        every ``-last`` checkpoint (they belong to attempts whose log rows are dropped now).
        Log rows written after the chosen point move to ``<log>.dropped.jsonl``. Returns the
        checkpoint's trainer state (also kept for ``resumed``), or None."""
        last = self.checkpoint_dir(f"{stage}-last")
        ckpt = read_trainer_state(last) if resume else None
        if resume and ckpt is None and last.exists():
            console.print(f"[yellow]{last} holds no trainer state: {stage} starts over")
        if ckpt is None:
            for path in (self.dir / "checkpoints").glob("*-last*"):
                rmtree(path)
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
        rmtree(self.checkpoint_dir(f"{stage}-last"))

    def wall_seconds(self) -> float:
        """The run's wall-clock seconds over all its processes so far (see the module doc)."""
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

    def release(self) -> None:
        self.lock.release()


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0

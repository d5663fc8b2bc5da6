"""A recipe stage's view of its run: the parts it is made of, each usable alone.

- ``run`` (``run_dir.RunDir``): the directory, its lock, config, state, stages, checkpoints;
- ``task`` and ``scoring`` (``wiring``): the problems and the verifier pool that scores them;
- ``metrics`` (``tracking.metrics``): ``metrics.jsonl`` and the tracking sinks;
- ``interrupts`` (``progress``): Ctrl-C as a request to save and stop.

The few methods here are those that need several parts at once (the starting policy lives in
the run directory; the rollout source and the monitor score with the run's pool). Evaluating a
checkpoint needs ``wiring`` only, no run directory and no lock.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import torch
from rich.markup import escape
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlvr import wiring
from rlvr.config import RunConfig
from rlvr.progress import Advance, Interrupts, console, progress_bar
from rlvr.rollout.engines.base import Engine
from rlvr.run_dir import RunDir
from rlvr.tasks.base import Example
from rlvr.tracking.metrics import MetricsLog


class RunContext:
    """The run directory of ``cfg`` held by this process, and what its stages share."""

    def __init__(
        self,
        cfg: RunConfig,
        fresh: bool = False,
        resume: bool = False,
        allow_config_change: bool = False,
    ) -> None:
        self.cfg = cfg
        self.run = RunDir(cfg, fresh, resume, allow_config_change)
        self.dir: Path = self.run.dir
        try:
            if cfg.model.threads:
                torch.set_num_threads(cfg.model.threads)
            self.task = wiring.build_task(cfg)
            self.scoring = wiring.Scoring(cfg, self.task)
            self.metrics = MetricsLog(self.dir, sinks=_sinks(cfg, self.dir))
            self.run.open_state()
        except BaseException:
            self.run.release()  # now, not whenever the half-built context is collected
            raise
        self.interrupts = Interrupts()
        self._engine: Engine | None = None

    # -- what needs several parts ----------------------------------------------------------
    def initial_policy(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        return wiring.initial_policy(self.cfg, self.run.checkpoint_dir("init"))

    def trainable(self, model: PreTrainedModel) -> PreTrainedModel:
        return wiring.trainable(self.cfg, model)

    def engine(self, tokenizer: PreTrainedTokenizerBase, policy: PreTrainedModel) -> Engine:
        """The run's rollout engine (``wiring.build_engine``), built once, on first use: the
        rollout source, the held-out checks and rejection sampling all sample with it."""
        if self._engine is None:
            self._engine = wiring.build_engine(self.cfg, tokenizer, policy)
            why = escape(self._engine.reason)  # "rlvr[vllm]" is not markup
            console.print(f"[dim]rollout engine: {self._engine.name} ({why})")
            summary = {"rollout_engine": self._engine.name}
            self.run.state["summary"].update(summary, rollout_engine_reason=self._engine.reason)
        return self._engine

    def rollout_source(self, tokenizer: PreTrainedTokenizerBase, policy: PreTrainedModel):
        """This run's rollout source (``wiring.rollout_source``), sampled by the run's engine
        and scored by its verifier pool."""
        score = None if self.scoring.verifier is None else self.scoring.score
        engine = self.engine(tokenizer, policy)
        return wiring.rollout_source(self.cfg, tokenizer, score, engine)

    def run_monitor(self):
        return wiring.run_monitor(self.cfg, self.dir, self.scoring)

    def formatter(self, tokenizer: PreTrainedTokenizerBase) -> Callable[[str], str]:
        return wiring.formatter(self.cfg, tokenizer)

    def make_env(
        self, example: Example, blank_feedback: bool = False, max_turns: int | None = None
    ):
        return wiring.make_env(self.cfg, example, blank_feedback, max_turns)

    def heldout(self) -> list[Example]:
        return self.task.examples("heldout", self.cfg.eval.heldout)

    def progress(self, description: str, total: int) -> AbstractContextManager[Advance]:
        return progress_bar(description, total, self.cfg.logging.progress)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
        self.metrics.close()
        self.scoring.close()
        self.run.release()


def _sinks(cfg: RunConfig, run_dir: Path) -> list:
    if not cfg.logging.trackers:
        return []
    from rlvr.tracking.sinks import make_sinks

    return make_sinks(cfg.logging.trackers, run_dir, cfg.model_dump(mode="json"))

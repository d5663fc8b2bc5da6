"""Where the RL stage runs, decided once, above the loop: in this process, on Ray actors
(``scale.ray``), or data-parallel over torchrun ranks (``rlvr.scale``).

The loop (``train.loop``) takes a rollout source and a learner and never asks which kind they
are; a scaled run hands it remote ones built over the local pieces, with this process as the
single controller (it owns the data order, the advantages, the checkpoints). Recipes call
``run_rl`` here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers import PreTrainedTokenizerBase

from rlvr import scale
from rlvr.config import ConfigError
from rlvr.context import RunContext
from rlvr.rollout.sources import RolloutSource
from rlvr.train.loop import Evaluate, RLResult, start_rl, train_rl


def run_rl(
    ctx: RunContext,
    make_source: Callable[[PreTrainedTokenizerBase], RolloutSource],
    evaluate: Evaluate,
    init: str = "sft",
) -> RLResult:
    """GRPO from checkpoint ``init`` (or the last checkpoint of an interrupted run), locally or
    scaled out as the config and the launcher say; writes ``checkpoints/rl``."""
    if scale.wanted(ctx.cfg) and ctx.cfg.env.name:
        from rlvr.envs import get_env_family

        if hasattr(get_env_family(ctx.cfg.env.name), "source"):
            raise ConfigError(
                f"--env {ctx.cfg.env.name} runs in one process: its episodes come from its own "
                "loop (verifiers, OpenEnv), which rlvr's Ray and torchrun workers do not host; "
                "drop --ray / torchrun"
            )
    start = start_rl(ctx, make_source, init)
    scaled = None
    try:
        if not scale.wanted(ctx.cfg):
            return train_rl(ctx, start, evaluate)
        scaled = scale.scale_out(ctx, start.tokenizer, start.source, start.learner, start.step)
        return train_rl(ctx, start, evaluate, scaled.source, scaled.learner, scaled.before_update)
    finally:
        if scaled is not None:
            scaled.close()
        start.source.close()


def one_process(command: str) -> None:
    """Under torchrun (several ranks) only ``rlvr train`` is data-parallel: any other command is
    an error that says so."""
    if scale.torchrun_world() > 1:
        from rlvr.scale.torchrun import only_train

        only_train(command)


def on_ranks(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``work`` (a command's whole work) in this process; under torchrun on rank 0, while the
    other ranks serve its requests (their result is empty)."""
    if scale.torchrun_world() == 1:
        return work()
    from rlvr.scale.torchrun import run_ranks

    return run_ranks(work)

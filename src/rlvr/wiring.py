"""What a run is made of, built from its ``RunConfig`` alone: the task, the verifier (self-tested)
and its pool, the environment of an episode, the episode runner, the prompt format, the rollout
source, the monitor, and the starting policy.

No run directory, lock or progress bar is needed here: evaluating a checkpoint, a rollout worker
on another machine (``rlvr.scale``) and a recipe stage all build the same pieces the same way.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlvr.config import RunConfig
from rlvr.models.load import load_policy
from rlvr.models.lora import apply_lora
from rlvr.models.tiny import save_tiny
from rlvr.progress import console
from rlvr.rollout.engines.base import Engine
from rlvr.rollout.prompts import format_prompt
from rlvr.tasks.base import Example, Task, get_task
from rlvr.verifiers.base import Verdict, get_verifier
from rlvr.verifiers.pool import VerifierPool


# -- the task and its scoring ------------------------------------------------------------------
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


class Scoring:
    """The run's reward verifier (None when an environment scores its own episodes), the
    held-out one (``eval.verifier``, else the reward's), and the pool both run in. Known hacks
    must score 0 and a known-good answer 1 before a run trains on a verifier;
    ``task.allow_weak_verifier`` (``--allow-weak-verifier``) goes on with a warning."""

    def __init__(self, cfg: RunConfig, task: Task) -> None:
        name = cfg.task.verifier or task.verifier
        self.verifier_name = None if cfg.env.name and not cfg.task.verifier else name
        self.verifier_options = dict(task.verifier_options)
        self.verifier = None
        if self.verifier_name is not None:
            self._self_test(cfg, self.verifier_name)
            self.verifier = get_verifier(self.verifier_name, **self.verifier_options)
        self.eval_verifier = self.verifier
        if cfg.eval.verifier and cfg.eval.verifier != self.verifier_name:
            self.eval_verifier = get_verifier(cfg.eval.verifier)
        self.pool = VerifierPool(workers=cfg.rl.verifier_workers)

    def _self_test(self, cfg: RunConfig, name: str) -> None:
        from rlvr.verifiers.selftest import require_strong_verifier

        result = require_strong_verifier(name, self.verifier_options, cfg.task.allow_weak_verifier)
        if not result.passed:
            console.print(f"[yellow]verifier {name!r} failed its self-test; training on it anyway:")
            for line in result.lines():
                console.print(f"[yellow]  {line}")

    def score(self, responses: list[str], references: list[Any]) -> list[Verdict]:
        if self.verifier is None:
            raise RuntimeError("this run's rewards come from its environment, not a verifier")
        return self.pool.score(self.verifier, responses, references)

    def eval_score(self, responses: list[str], references: list[Any]) -> list[Verdict]:
        """Held-out scoring: ``eval.verifier`` when set, else the reward's verifier."""
        if self.eval_verifier is None:
            raise RuntimeError("this run's rewards come from its environment, not a verifier")
        return self.pool.score(self.eval_verifier, responses, references)

    def close(self) -> None:
        self.pool.close()


def run_monitor(cfg: RunConfig, run_dir: Path, scoring: Scoring):
    """The monitor of a run's RL stage (``monitor:``): scanners by the verifier's kind, the
    shadow verifier, the step detectors and their actions."""
    from rlvr.monitor.live import RunMonitor, scanner_for

    m = cfg.monitor
    shadow = None
    if m.enabled and m.shadow_verifier:
        strict = get_verifier(m.shadow_verifier, **dict(m.shadow_options))

        def shadow(texts: list[str], refs: list[Any]) -> list[float]:
            return [v.score for v in scoring.pool.score(strict, texts, refs)]

    return RunMonitor(
        m, run_dir, scanner_for(scoring.verifier_name), shadow, say=lambda t: console.print(t)
    )


# -- environments, prompts and the rollout source ----------------------------------------------
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
    cfg: RunConfig,
    tokenizer: PreTrainedTokenizerBase,
    max_turns: int | None = None,
    engine: Engine | None = None,
):
    """Plays batches of episodes with the run's limits and prompt format, sampled by
    ``engine`` (rlvr's own decoders by default)."""
    from rlvr.rollout.episodes import EpisodeLimits, EpisodeRunner, TurnCodec

    e = cfg.env
    limits = EpisodeLimits(max_turns or e.max_turns, e.max_turn_tokens, e.max_episode_tokens)
    codec = TurnCodec(tokenizer, cfg.task.system_prompt, cfg.task.use_chat_template)
    return EpisodeRunner(tokenizer, codec, limits, e.workers or os.cpu_count() or 1, engine)


# a single-turn prompt may take this many tokens in the engine's maximum length, unless
# rollout.vllm.max_model_len says otherwise (a longer prompt is an error that names it)
PROMPT_TOKENS = 1024


def build_engine(
    cfg: RunConfig, tokenizer: PreTrainedTokenizerBase, policy: PreTrainedModel
) -> Engine:
    """The run's rollout engine (``rollout.engine``) for this policy; ``engine.reason`` says
    why it was chosen. Its maximum length follows the run's lengths: an episode's token budget,
    or a prompt and its completion."""
    from rlvr.rollout.engines import make_engine

    if cfg.env.name:
        length = cfg.env.max_episode_tokens
    else:
        length = PROMPT_TOKENS + cfg.rollout.max_new_tokens
    base = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
    length = min(length, getattr(base.config, "max_position_embeddings", None) or length)
    return make_engine(cfg.rollout, tokenizer, policy, length)


def formatter(cfg: RunConfig, tokenizer: PreTrainedTokenizerBase) -> Callable[[str], str]:
    """A task prompt -> the text the policy continues (``rollout.prompts``)."""
    system, chat = cfg.task.system_prompt, cfg.task.use_chat_template
    return partial(format_prompt, tokenizer, system_prompt=system, use_chat_template=chat)


def rollout_source(
    cfg: RunConfig, tokenizer: PreTrainedTokenizerBase, score: Any = None, engine: Any = None
):  # -> rlvr.rollout.sources.SingleTurn | Episodes
    """The run's rollout source: episodes in the run's environment (``env.name``), else
    single-turn completions scored by ``score``, sampled by ``engine`` (``build_engine``; rlvr's
    own decoders when None). From the config alone, so that a rollout worker on another machine
    (``rlvr.scale``) builds the same one (its ``score`` is None: verifier workers score)."""
    from rlvr.envs import get_env_family
    from rlvr.rollout.sources import Episodes, SingleTurn

    r = cfg.rollout
    if cfg.env.name and hasattr(family := get_env_family(cfg.env.name), "source"):
        return family.source(cfg, tokenizer, engine)  # its own episode loop (vf:ID)
    if cfg.env.name:
        runner = episode_runner(cfg, tokenizer, engine=engine)
        return Episodes(runner, partial(make_env, cfg), r.group_size, r.temperature, r.top_p)
    return SingleTurn(
        tokenizer, score, r.group_size, r.max_new_tokens, r.temperature, r.top_p,
        formatter(cfg, tokenizer), engine,
    )  # fmt: skip


# -- the starting policy -----------------------------------------------------------------------
def initial_policy(
    cfg: RunConfig, init_dir: Path
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``model.path``, or the embedded model, built once from the run's seed into ``init_dir``
    (with the observation tags when the run plays an environment)."""
    m = cfg.model
    if m.path:
        return load_policy(m.path, m.device, m.dtype)
    if not (init_dir / "config.json").exists():
        from rlvr.rollout.episodes import OBS_TAGS

        save_tiny(
            init_dir,
            seed=cfg.seed,
            extra_tags=OBS_TAGS if cfg.env.name else (),
            hidden_size=m.hidden_size,
            num_layers=m.num_layers,
            num_heads=m.num_heads,
        )
    return load_policy(init_dir, m.device, m.dtype)


def trainable(cfg: RunConfig, model: PreTrainedModel) -> PreTrainedModel:
    """The policy to train: with fresh LoRA adapters when ``model.lora_r > 0``, drawn from the
    run's seed (torch's global generator starts from a random seed in each process, so a seeded
    run would not repeat), without touching the global generator's stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return apply_lora(model, cfg.model)

"""The agentic coding recipe: a model that writes code, runs it, reads the feedback and fixes it.

    (a) cold-start SFT on demonstration episodes that teach the format only: write a function;
        after the feedback, write another one. A revision in a demonstration is another guess
        drawn without reading the feedback (``demonstration`` of the environment), so whatever
        use of the feedback the policy shows later, RL taught it.
    (b) multi-turn GRPO: G episodes per problem, each attempt run in the sandbox, the reward the
        final attempt's share of hidden tests passed (``train.loop`` with an ``Episodes`` source).
    (c) held-out evaluation, greedy, with two controls that run the same policy with the same
        budget: one attempt only (``single_turn``), and every observation replaced by the same
        "try again" text for the same number of turns (``blank_feedback``). The cold-start
        policy is evaluated the same three ways.

``summary.json``: ``sft_accuracy``, ``rl_accuracy``, ``rl_single_turn_accuracy``,
``rl_blank_feedback_accuracy`` (held-out pass@1: greedy, final attempt, all hidden tests
passed), the same with ``_reward`` (mean graded reward), and the cold start's controls.
"""

from __future__ import annotations

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlvr.config import RunConfig
from rlvr.context import RunContext
from rlvr.eval import evaluate_episodes
from rlvr.recipes.stages import Stage, run_stages, supervised
from rlvr.rollout.engines import Engine
from rlvr.rollout.episodes import TurnCodec
from rlvr.rollout.prompts import pad_id
from rlvr.runners import run_rl
from rlvr.tasks.base import Example
from rlvr.train.sft import Sequence
from rlvr.wiring import episode_runner, make_env

# how each control runs the environment, and its summary-key suffix
VARIANTS = {
    "multi_turn": {"suffix": "", "blank_feedback": False, "single": False},
    "single_turn": {"suffix": "_single_turn", "blank_feedback": False, "single": True},
    "blank_feedback": {"suffix": "_blank_feedback", "blank_feedback": True, "single": False},
}


def demonstrations(ctx: RunContext, tokenizer: PreTrainedTokenizerBase, n: int) -> list[Sequence]:
    """``n`` demonstration episodes as token sequences (the model's turns learned, the
    environment's replies only read), played through the real environment and sandbox. A share
    (``env.demo_blank_share``) gets the blank-feedback text as every reply, so that control
    measures the use of feedback, not the surprise of a text never seen."""
    cfg = ctx.cfg
    problems = ctx.task.examples("train")
    rng = random.Random(cfg.seed)
    picks: list[Example] = []
    while len(picks) < n:
        order = list(problems)
        rng.shuffle(order)
        picks += order[: n - len(picks)]
    codec = TurnCodec(tokenizer, cfg.task.system_prompt, cfg.task.use_chat_template)
    eos = tokenizer.eos_token_id

    blank = set(rng.sample(range(n), round(cfg.env.demo_blank_share * n)))

    def episode(i: int) -> Sequence:
        env = ctx.make_env(picks[i], blank_feedback=i in blank)
        if not hasattr(env, "demonstration"):
            raise ValueError(
                f"environment {cfg.env.name!r} has no demonstrations for a cold start; "
                "train from a model with `rlvr train --env` instead"
            )
        ids = codec.prompt_ids(env.reset())
        learned = [0] * len(ids)
        own = random.Random(f"{cfg.seed}:demo:{i}")
        memory: list = []
        for turn in range(1, cfg.env.max_turns + 1):
            action = env.demonstration(own, memory)
            tokens = tokenizer(action, add_special_tokens=False)["input_ids"] + [eos]
            ids += tokens
            learned += [1] * len(tokens)
            reply = env.step(action)
            if reply.done or turn == cfg.env.max_turns:
                break
            obs = codec.reply_ids(reply.observation)
            ids += obs
            learned += [0] * len(obs)
        return ids, learned

    with ThreadPoolExecutor(max(1, cfg.env.workers or 2)) as pool:
        return list(pool.map(episode, range(n)))


def play_variant(
    cfg: RunConfig,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    heldout: list[Example],
    name: str,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Greedy episodes on ``heldout`` under variant ``name`` (``VARIANTS``): real feedback, one
    attempt, or blank feedback for the same number of turns (``eval.evaluate_episodes``),
    sampled by ``engine`` (rlvr's own decoders by default)."""
    v = VARIANTS[name]
    turns = 1 if v["single"] else cfg.env.max_turns
    runner = episode_runner(cfg, tokenizer, max_turns=turns, engine=engine)
    try:
        envs = [make_env(cfg, e, v["blank_feedback"], turns) for e in heldout]
        return evaluate_episodes(model, runner, envs)
    finally:
        runner.close()


def metric_prefix(name: str) -> str:
    """``heldout/<prefix>pass@1``: none for the real-feedback variant, ``<name>/`` else."""
    return "" if name == "multi_turn" else f"{name}/"


def evaluate_variants(
    ctx: RunContext,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    after: str,
    step: int,
    variants: tuple[str, ...] = tuple(VARIANTS),
) -> dict[str, float]:
    """Held-out greedy episodes under each variant; logs ``heldout/*`` metrics and samples, and
    returns the summary values (``<after>_accuracy``, ``<after>_single_turn_reward``, ...)."""
    out: dict[str, float] = {}
    heldout = ctx.heldout()
    for name in variants:
        t0 = time.perf_counter()
        result = play_variant(
            ctx.cfg, model, tokenizer, heldout, name, ctx.engine(tokenizer, model)
        )
        key, suffix = metric_prefix(name), VARIANTS[name]["suffix"]
        ctx.metrics.log(
            "eval",
            step,
            after=after,
            **{
                f"heldout/{key}pass@1": result["pass@1"],
                f"heldout/{key}reward": result["reward"],
                f"heldout/{key}turns": result["turns"],
                "eval_seconds": time.perf_counter() - t0,
            },
        )
        with (ctx.dir / "samples.jsonl").open("a") as f:
            for s in result["samples"]:
                row = {"after": after, "variant": name, "step": step, **s}
                f.write(json.dumps(row) + "\n")
        out[f"{after}{suffix}_accuracy"] = result["pass@1"]
        out[f"{after}{suffix}_reward"] = result["reward"]
    return out


def stage_sft(ctx: RunContext) -> dict[str, Any]:
    cfg = ctx.cfg
    model, tokenizer = ctx.initial_policy()
    sequences = demonstrations(ctx, tokenizer, cfg.sft.examples)
    model, steps = supervised(
        ctx, "sft", "cold-start SFT", model, tokenizer, sequences, pad_id(tokenizer), cfg.sft
    )
    ctx.run.save(model, tokenizer, "sft")
    summary = evaluate_variants(ctx, model, tokenizer, "sft", steps)
    summary.update(sft_seconds=ctx.run.stage_seconds(), sft_examples=len(sequences))
    ctx.run.mark_done("sft", **summary)
    return summary


def stage_rl(ctx: RunContext, init: str = "sft") -> dict[str, Any]:
    cfg = ctx.cfg

    def heldout(policy, tokenizer, step: int) -> float:
        values = evaluate_variants(ctx, policy, tokenizer, "rl", step, ("multi_turn",))
        return values["rl_accuracy"]

    out = run_rl(ctx, ctx.rollout_source, heldout, init)
    summary = evaluate_variants(ctx, out.policy, out.tokenizer, "rl", out.steps, ("multi_turn",))
    summary.update(rl_seconds=out.seconds, rl_steps=cfg.rl.steps)
    ctx.run.mark_done("rl", **summary)
    return summary


def stage_controls(ctx: RunContext) -> dict[str, Any]:
    """The RL policy with one attempt, and with blank feedback: same problems, same budget."""
    model, tokenizer = ctx.run.load("rl")
    summary = evaluate_variants(
        ctx, model, tokenizer, "rl", ctx.cfg.rl.steps, ("single_turn", "blank_feedback")
    )
    ctx.run.mark_done("controls", **summary)
    return summary


STAGES: dict[str, Stage] = {"sft": stage_sft, "rl": stage_rl, "controls": stage_controls}


def run_recipe(ctx: RunContext, resume: bool = False) -> dict[str, Any]:
    """Cold start, multi-turn GRPO and the held-out controls, skipping stages already done;
    ``resume`` continues an unfinished one from its last checkpoint."""
    return run_stages(ctx, STAGES, resume)

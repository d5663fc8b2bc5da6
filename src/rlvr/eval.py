"""Held-out evaluation: greedy pass@1, and pass@k with the unbiased estimator of Chen et al.
(2021, eq. 1): with n samples of which c are correct, ``pass@k = 1 - C(n-c, k) / C(n, k)``;
for multi-turn environments, greedy episodes (``evaluate_episodes``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlvr.envs.base import Env
from rlvr.rollout.engines import Engine
from rlvr.rollout.episodes import EpisodeRunner
from rlvr.rollout.generate import generate
from rlvr.tasks.base import Example
from rlvr.verifiers.answer import extract_answer
from rlvr.verifiers.base import Verdict

ScoreFn = Callable[[list[str], list], list[Verdict]]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n is correct."""
    if not 0 <= c <= n or k > n or k < 1:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def maj_at_k(answers: list[str | None], reference_correct: list[bool]) -> bool:
    """Majority vote over extracted answers: is the most common answer a correct one?"""
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return False
    top = votes.most_common(1)[0][0]
    return any(ok for a, ok in zip(answers, reference_correct, strict=True) if a == top)


def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[Example],
    score: ScoreFn,
    max_new_tokens: int,
    k: int = 8,
    samples: int = 8,
    temperature: float = 1.0,
    batch_prompts: int = 64,
    seed: int = 0,
    format_prompt: Callable[[str], str] = lambda p: p,
    with_sampling: bool = True,
    engine: Engine | None = None,
) -> dict[str, float | list]:
    """``pass@1`` (greedy), ``pass@k`` and ``maj@k`` (sampled), and a few greedy completions,
    sampled by ``engine`` (rlvr's own decoders by default) with ``model``'s weights."""
    if engine is not None:
        engine.prepare(model)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    greedy_ok: list[bool] = []
    pass_k: list[float] = []
    maj_k: list[bool] = []
    shown: list[dict] = []
    for start in range(0, len(examples), batch_prompts):
        chunk = examples[start : start + batch_prompts]
        prompts = [format_prompt(e.prompt) for e in chunk]
        refs = [e.reference for e in chunk]
        greedy = generate(
            model, tokenizer, prompts, 1, max_new_tokens, temperature=0.0, engine=engine
        )
        verdicts = score(greedy.texts, refs)
        greedy_ok += [v.correct for v in verdicts]
        if len(shown) < 8:
            shown += [
                {
                    "prompt": e.prompt,
                    "completion": t,
                    "score": v.score,
                    "status": v.status,
                    "detail": v.detail,
                }
                for e, t, v in zip(chunk, greedy.texts, verdicts, strict=True)
            ][: 8 - len(shown)]
        if not with_sampling:
            continue
        sampled = generate(
            model,
            tokenizer,
            prompts,
            samples,
            max_new_tokens,
            temperature=temperature,
            generator=generator,
            engine=engine,
        )
        sv = score(sampled.texts, [r for r in refs for _ in range(samples)])
        for i in range(len(chunk)):
            group = sv[i * samples : (i + 1) * samples]
            ok = [v.correct for v in group]
            pass_k.append(pass_at_k(samples, sum(ok), k))
            answers = [extract_answer(t) for t in sampled.texts[i * samples : (i + 1) * samples]]
            maj_k.append(maj_at_k(answers, ok))
    out: dict[str, float | list] = {
        "pass@1": float(np.mean(greedy_ok)),
        "n": len(examples),
        "samples": shown,
    }
    if with_sampling:
        out[f"pass@{k}"] = float(np.mean(pass_k))
        out[f"maj@{k}"] = float(np.mean(maj_k))
    return out


def evaluate_episodes(
    model: PreTrainedModel,
    runner: EpisodeRunner,
    envs: list[Env],
    shown: int = 8,
) -> dict[str, Any]:
    """Greedy multi-turn episodes, one per environment (a held-out problem each).

    ``pass@1``: the share of episodes whose final attempt passes every hidden test; ``reward``:
    the mean graded reward (tests passed / total of the final attempt); ``turns``: model turns
    per episode. ``samples``: the first ``shown`` episodes, turn by turn, with their verdicts."""
    runner.engine.prepare(model)
    ro, verdicts = runner.run(model, envs, group_size=1, temperature=0.0)
    turns = ro.turns or [[] for _ in envs]
    return {
        "pass@1": float(np.mean([v.correct for v in verdicts])),
        "reward": float(np.mean([v.score for v in verdicts])),
        "turns": float(np.mean([sum(t["role"] == "model" for t in ep) for ep in turns])),
        "n": len(envs),
        "samples": [
            {
                "prompt": env.example.prompt,
                "completion": text,
                "turns": ep,
                "score": v.score,
                "status": v.status,
                "detail": v.detail,
            }
            for env, text, ep, v in list(zip(envs, ro.texts, turns, verdicts, strict=True))[:shown]
        ],
    }

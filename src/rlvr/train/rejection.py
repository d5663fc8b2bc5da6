"""Rejection sampling (DeepSeek-R1 stage 3): k completions per training prompt from the RL
policy; keep the verified-correct ones, each distinct completion of a prompt once."""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlvr.rollout.engines import Engine
from rlvr.rollout.generate import generate
from rlvr.tasks.base import Example
from rlvr.verifiers.base import Verdict

ScoreFn = Callable[[list[str], list], list[Verdict]]


def rejection_sample(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[Example],
    score: ScoreFn,
    k: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    batch_prompts: int = 64,
    seed: int = 0,
    format_prompt: Callable[[str], str] = lambda p: p,
    on_batch: Callable[[int], None] | None = None,
    engine: Engine | None = None,
) -> tuple[list[dict], dict[str, float]]:
    """Verified, deduplicated ``{"prompt", "completion", "reference"}`` rows and their stats,
    sampled by ``engine`` (rlvr's own decoders by default).

    Truncated completions are dropped even when the verifier accepts them: the final SFT must
    not learn to run out of tokens.
    """
    if engine is not None:
        engine.prepare(model)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    kept: list[dict] = []
    seen: set[tuple[str, str]] = set()
    n_correct = n_total = 0
    for start in range(0, len(examples), batch_prompts):
        chunk = examples[start : start + batch_prompts]
        ro = generate(
            model,
            tokenizer,
            [format_prompt(e.prompt) for e in chunk],
            k,
            max_new_tokens,
            temperature=temperature,
            generator=generator,
            engine=engine,
        )
        rows = [e for e in chunk for _ in range(k)]
        verdicts = score(ro.texts, [e.reference for e in rows])
        for e, text, v, cut in zip(rows, ro.texts, verdicts, ro.truncated.tolist(), strict=True):
            n_total += 1
            if not v.correct or cut:
                continue
            n_correct += 1
            if (e.prompt, text) in seen:
                continue
            seen.add((e.prompt, text))
            kept.append(
                {"id": e.id, "prompt": e.prompt, "completion": text, "reference": e.reference}
            )
        if on_batch:
            on_batch(len(chunk))
    stats = {
        "sampled": n_total,
        "correct": n_correct,
        "kept_unique": len(kept),
        "accept_rate": n_correct / max(n_total, 1),
        "prompts_with_a_kept_sample": len({r["prompt"] for r in kept}),
    }
    return kept, stats

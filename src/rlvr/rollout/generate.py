"""Batched sampling of G completions per prompt, with a KV cache.

Why our own loop rather than ``model.generate``: per generated token, ``generate`` runs a stack of
logits processors, stopping criteria and cache bookkeeping that a 1M-parameter model cannot hide,
and it keeps finished sequences in the batch until the longest one ends. Here, per token:
one forward over the still-active rows, one sample. Concretely:
- each prompt is encoded once; its KV cache is copied G times (``batch_repeat_interleave``);
- rows that emitted EOS leave the batch (``batch_select_indices``) and cost nothing after;
- prompts are left-padded with explicit position ids, so padding never shifts a position.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from rlvr.cpu_threads import cpu_shards, on_threads
from rlvr.rollout import fast_decode
from rlvr.rollout.engines.base import Engine, Sampled
from rlvr.rollout.engines.native import NativeEngine
from rlvr.rollout.prompts import pad_id
from rlvr.rollout.sampling import Sampler


@dataclass
class Rollouts:
    """G completions for each of P prompts, flat and ordered group by group (P*G rows).

    ``input_ids`` is prompt (left-padded to ``prompt_len``) then completion (right-padded).
    ``attention_mask`` marks every real token. ``completion_mask`` marks the completion tokens
    that carry loss: the model's own tokens, up to and including EOS. For a multi-turn episode
    the completion is the model's turns and the environment's replies in order, and only the
    model's turns carry loss (the replies are real tokens, attended to, with mask 0).
    ``logprobs`` holds each sampled token's log-prob under the policy that sampled it (0 where the
    mask is 0). ``turns`` is, per episode, its text turn by turn (None for single-turn rows).
    ``versions`` is, per row, the version of the policy whose weights sampled it (the number of
    updates before it; None where no engine was synced: a checkpoint's evaluation). ``engine``
    names the engine that sampled (``rlvr`` or ``vllm``): the loss treats a vLLM engine's
    log-probs as the behaviour policy (``algorithm.engine_correction``).
    """

    input_ids: torch.Tensor  # (N, prompt_len + T)
    attention_mask: torch.Tensor  # (N, prompt_len + T)
    completion_mask: torch.Tensor  # (N, T) float
    prompt_len: int
    texts: list[str]
    truncated: torch.Tensor  # (N,) bool: no EOS within the token budget
    group_size: int
    temperature: float = 1.0  # the policy the tokens were sampled from is softmax(logits / T)
    logprobs: torch.Tensor | None = None  # (N, T) behaviour log-probs of the sampled tokens
    turns: list[list[dict]] | None = None  # per row: [{"role": "model"|"env", "text": ...}, ...]
    versions: torch.Tensor | None = None  # (N,) long: the policy version that sampled each row
    engine: str = "rlvr"  # the engine that sampled the rows (``rollout.engines``)

    @property
    def completion_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_len :]

    @property
    def completion_lengths(self) -> torch.Tensor:
        """Tokens the model produced (an environment's reply is not the model's length)."""
        return self.completion_mask.sum(dim=1)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, rows: torch.Tensor) -> Rollouts:
        """The given rows (whole groups, for the advantages to stay right), everything else kept."""
        picked = rows.tolist()
        return replace(
            self,
            input_ids=self.input_ids[rows],
            attention_mask=self.attention_mask[rows],
            completion_mask=self.completion_mask[rows],
            texts=[self.texts[i] for i in picked],
            truncated=self.truncated[rows],
            logprobs=self.logprobs[rows] if self.logprobs is not None else None,
            turns=[self.turns[i] for i in picked] if self.turns is not None else None,
            versions=self.versions[rows] if self.versions is not None else None,
        )

    @staticmethod
    def concat(parts: list[Rollouts], pad: int) -> Rollouts:
        """Rows of several batches in one: prompts re-padded on the left, completions on the
        right."""
        if len(parts) == 1:
            return parts[0]
        plen = max(p.prompt_len for p in parts)
        width = max(p.completion_mask.shape[1] for p in parts)

        def both_sides(t: torch.Tensor, p: Rollouts, value: int) -> torch.Tensor:
            left, right = plen - p.prompt_len, width - p.completion_mask.shape[1]
            return torch.nn.functional.pad(t, (left, right), value=value)

        def right(t: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=0.0)

        with_logprobs = all(p.logprobs is not None for p in parts)
        with_turns = all(p.turns is not None for p in parts)
        with_versions = all(p.versions is not None for p in parts)
        return replace(
            parts[0],
            input_ids=torch.cat([both_sides(p.input_ids, p, pad) for p in parts]),
            attention_mask=torch.cat([both_sides(p.attention_mask, p, 0) for p in parts]),
            completion_mask=torch.cat([right(p.completion_mask) for p in parts]),
            prompt_len=plen,
            texts=[t for p in parts for t in p.texts],
            truncated=torch.cat([p.truncated for p in parts]),
            logprobs=torch.cat([right(p.logprobs) for p in parts]) if with_logprobs else None,
            turns=[t for p in parts for t in p.turns] if with_turns else None,
            versions=torch.cat([p.versions for p in parts]) if with_versions else None,
        )


def cache_kwarg(model: PreTrainedModel) -> str:
    """transformers 5 names the cache argument ``cache``; 4.x named it ``past_key_values``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: list[str], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=True)
    finally:
        tokenizer.padding_side = old_side
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


def left_pad(
    rows: list[list[int]], pad: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists as one left-padded batch: ``(ids, attention_mask)``."""
    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids.to(device), mask.to(device)


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


def hf_decode(
    model: PreTrainedModel,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    group_size: int,
    max_new_tokens: int,
    pick: Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]],
    eos: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The decode loop through the HF forward: ``(tokens (N, T), lengths (N,), finished (N,),
    logprobs (N, T))`` for N = prompts * group_size; ``pick(logits, rows, t)`` maps the logits of
    the unfinished rows (``rows``: their indices in the N) at position t to their tokens and
    those tokens' log-probs (``rollout.sampling.Sampler``)."""
    device = prompt_ids.device
    kw = cache_kwarg(model)
    cache = DynamicCache()
    out = model(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        position_ids=positions(prompt_mask),
        use_cache=True,
        logits_to_keep=1,
        **{kw: cache},
    )
    logits = out.logits[:, -1, :]
    if group_size > 1:
        cache.batch_repeat_interleave(group_size)
        logits = logits.repeat_interleave(group_size, dim=0)
        prompt_mask = prompt_mask.repeat_interleave(group_size, dim=0)

    n = prompt_mask.shape[0]
    tokens = torch.zeros((n, max_new_tokens), dtype=torch.long, device=device)
    logprobs = torch.zeros((n, max_new_tokens), dtype=torch.float32, device=device)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    lengths = torch.full((n,), max_new_tokens, dtype=torch.long, device=device)
    active = torch.arange(n, device=device)  # rows of the full batch still in the cache
    mask = prompt_mask.clone()  # attention mask of the active rows
    next_pos = positions(prompt_mask)[:, -1] + 1
    for t in range(max_new_tokens):
        nxt, logp = pick(logits, active, t)
        tokens[active, t] = nxt
        logprobs[active, t] = logp
        done = nxt == eos if eos is not None else torch.zeros_like(nxt, dtype=torch.bool)
        if done.any():
            lengths[active[done]] = t + 1
            finished[active[done]] = True
        if t == max_new_tokens - 1 or bool(finished.all()):
            break
        keep = ~done
        if not bool(keep.all()):
            keep_idx = keep.nonzero().squeeze(1)
            cache.batch_select_indices(keep_idx)
            active, nxt, mask, next_pos = (
                active[keep_idx],
                nxt[keep_idx],
                mask[keep_idx],
                next_pos[keep_idx],
            )
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        out = model(
            input_ids=nxt.unsqueeze(1),
            attention_mask=mask,
            position_ids=next_pos.unsqueeze(1),
            use_cache=True,
            **{kw: cache},
        )
        logits = out.logits[:, -1, :]
        next_pos = next_pos + 1
    return tokens, lengths, finished, logprobs


def use_fast_decode(model: PreTrainedModel, total_len: int) -> bool:
    """The plain-torch loop of ``fast_decode`` serves Llama-family models unless
    ``RLVR_FAST_DECODE=0``; PEFT wrappers and anything it cannot reproduce use the HF loop."""
    if os.environ.get("RLVR_FAST_DECODE", "1") == "0" or hasattr(model, "get_base_model"):
        return False
    return fast_decode.unsupported(model, total_len) is None


def decode_shards(model: PreTrainedModel, fast: bool, n_prompts: int) -> int:
    """How many threads decode the batch, each a contiguous shard of the prompts.

    On CPU a decode step of a small model is a chain of small matmuls that one core runs as
    fast as two, so the batch is split in one shard per intra-op thread, each shard decoded on
    one core by ``fast_decode``'s TorchScript step (which runs without the GIL). Elsewhere, or
    with ``RLVR_DECODE_THREADS=1``, one batch."""
    if not fast:
        return 1
    return cpu_shards(next(model.parameters()).device, n_prompts, "RLVR_DECODE_THREADS")


def _sharded_decode(
    model, prompt_ids, prompt_mask, group_size, max_new_tokens, eos, shards, sampler: Sampler
):  # fmt: skip
    """``fast_decode.decode`` of each shard of the prompts in its own thread, one core each.

    Keyed sampling draws the same tokens however the batch is sharded. From a stream, each shard
    samples from its own generator, seeded from the caller's: a seeded run draws the same tokens
    every time for a given number of shards."""
    seeds = (
        torch.randint(0, 2**62, (shards,), generator=sampler.generator).tolist()
        if sampler.keys is None
        else [0] * shards
    )
    parts = list(
        zip(prompt_ids.tensor_split(shards), prompt_mask.tensor_split(shards), strict=True)
    )
    starts = [0]
    for ids, _ in parts:
        starts.append(starts[-1] + len(ids) * group_size)

    def job(ids: torch.Tensor, mask: torch.Tensor, seed: int, start: int, stop: int):
        shard_gen = torch.Generator(ids.device).manual_seed(seed)
        pick = sampler.shard(start, stop, shard_gen)
        first = int(mask.any(dim=0).nonzero()[0]) if mask.any() else 0  # the shard's own padding
        return fast_decode.decode(
            model, ids[:, first:], mask[:, first:], group_size, max_new_tokens, pick, eos
        )

    outs = on_threads(
        [
            partial(job, ids, mask, seed, starts[i], starts[i + 1])
            for i, ((ids, mask), seed) in enumerate(zip(parts, seeds, strict=True))
        ]
    )
    return tuple(torch.cat(parts) for parts in zip(*outs, strict=True))


@torch.no_grad()
def sample_ids(
    model: PreTrainedModel,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    group_size: int,
    max_new_tokens: int,
    eos: int | None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    keys: torch.Tensor | None = None,
) -> Sampled:
    """``group_size`` continuations of each left-padded prompt row: the fast decode path (one
    shard per core on CPU) where it serves the model, else the HF loop. ``keys`` (one per
    continuation, prompt-major) make the sampling keyed (``rollout.sampling``); without them it
    draws from ``generator``."""
    was_training = model.training
    model.eval()
    sampler = Sampler(temperature, top_p, generator, keys)
    fast = use_fast_decode(model, prompt_ids.shape[1] + max_new_tokens)
    shards = decode_shards(model, fast, prompt_ids.shape[0])
    if shards == 1:
        out = (fast_decode.decode if fast else hf_decode)(
            model, prompt_ids, prompt_mask, group_size, max_new_tokens, sampler, eos
        )
    else:
        out = _sharded_decode(
            model, prompt_ids, prompt_mask, group_size, max_new_tokens, eos, shards, sampler
        )
    if was_training:
        model.train()
    return Sampled(*out)


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    group_size: int = 1,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    keys: torch.Tensor | None = None,
    engine: Engine | None = None,
) -> Rollouts:
    """Sample ``group_size`` completions for each prompt (greedy when ``temperature == 0``);
    keyed by ``keys`` (one per completion) when given, else from ``generator``. The prompts go
    to the ``engine`` (rlvr's own decoders by default) as token ids, and the rollouts hold
    exactly the token ids it sampled; the texts are decoded from them for the verifiers."""
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    pad = pad_id(tokenizer)
    rows = tokenizer(prompts, add_special_tokens=True)["input_ids"]
    engine = engine or NativeEngine(pad)
    out = engine.sample(
        model, rows, group_size, max_new_tokens, eos, temperature, top_p,
        keys.tolist() if keys is not None else None, generator,
    )  # fmt: skip
    prompt_ids, prompt_mask = left_pad(rows, pad, device)
    prompt_ids = prompt_ids.repeat_interleave(group_size, dim=0)
    prompt_mask = prompt_mask.repeat_interleave(group_size, dim=0)
    n = prompt_ids.shape[0]
    steps = torch.arange(out.tokens.shape[1], device=device).unsqueeze(0)
    completion_mask = (steps < out.lengths.unsqueeze(1)).float()
    tokens = torch.where(completion_mask.bool(), out.tokens, torch.full_like(out.tokens, pad))
    width = int(out.lengths.max().item()) if n else 0
    tokens, completion_mask = tokens[:, :width], completion_mask[:, :width]
    texts = tokenizer.batch_decode(
        [row[: int(k)].tolist() for row, k in zip(tokens, out.lengths, strict=True)],
        skip_special_tokens=True,
    )
    return Rollouts(
        input_ids=torch.cat([prompt_ids, tokens], dim=1),
        attention_mask=torch.cat([prompt_mask, completion_mask.long()], dim=1),
        completion_mask=completion_mask,
        prompt_len=prompt_ids.shape[1],
        texts=texts,
        truncated=~out.finished,
        group_size=group_size,
        temperature=temperature if temperature > 0 else 1.0,
        logprobs=out.logprobs[:, :width] * completion_mask,
        versions=torch.full((n,), engine.version, dtype=torch.long)
        if engine.version is not None
        else None,
        engine=engine.name,
    )

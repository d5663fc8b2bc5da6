"""Per-token log-probs of completions under a model, in length-trimmed micro-batches."""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
from transformers import PreTrainedModel

from rlvr.models.llama_ops import unsupported
from rlvr.rollout.generate import Rollouts, positions
from rlvr.train.packed_logprobs import packed_logprobs, tempered_logprobs


def use_packed(model: PreTrainedModel, attention_mask: torch.Tensor, n_completion: int) -> bool:
    """The packed forward serves Llama-family models on left-padded, non-empty prompts unless
    ``RLVR_PACKED=0``; PEFT wrappers and anything it cannot reproduce use the HF forward."""
    if os.environ.get("RLVR_PACKED", "1") == "0":
        return False
    prompt = attention_mask[:, : attention_mask.shape[1] - n_completion]
    if prompt.shape[1] == 0 or not bool(prompt[:, -1].all()):
        return False
    return unsupported(model, attention_mask.shape[1]) is None


def trimmed_slices(
    attention_mask: torch.Tensor,
    prompt_len: int,
    size: int,
    by_length: bool = True,
) -> Iterator[tuple[torch.Tensor, slice, int]]:
    """Row indices of each micro-batch (rows of similar length together, or in their order when
    not ``by_length``) and the columns that hold any real token for them: the prompt's common
    left padding and the completions' common right padding are cut, so no compute goes to
    columns that are padding in every row. A completion's real tokens (a multi-turn episode's
    environment replies included) are contiguous from its first column."""
    n = attention_mask.shape[0]
    real = attention_mask[:, prompt_len:]
    lengths = real.sum(dim=1).float()
    order = torch.argsort(lengths, descending=True) if by_length else torch.arange(n)
    for start in range(0, n, size):
        rows = order[start : start + size]
        real_prompt = attention_mask[rows, :prompt_len].any(dim=0).nonzero()
        first = int(real_prompt[0]) if len(real_prompt) else prompt_len
        width = int(real[rows].sum(dim=1).max().item()) if len(rows) else 0
        yield rows, slice(first, prompt_len + max(width, 1)), prompt_len - first


def token_logprobs(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    n_completion: int,
    entropy_grad: bool = False,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and entropies of the last ``n_completion`` tokens of each row. The entropy
    carries gradient only when ``entropy_grad`` (an entropy bonus is in the loss).

    Only the logits that predict completion tokens are materialised (``logits_to_keep``): with a
    150k-token vocabulary, the full logits tensor would dwarf everything else in memory.
    Llama-family policies take ``packed_logprobs`` (each prompt once, no compute on padding).
    """
    fn = packed_logprobs if use_packed(model, attention_mask, n_completion) else hf_logprobs
    return fn(model, input_ids, attention_mask, n_completion, entropy_grad, temperature)


def hf_logprobs(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    n_completion: int,
    entropy_grad: bool = False,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``token_logprobs`` through the model's own forward: any model, any padding."""
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=positions(attention_mask),
        logits_to_keep=n_completion + 1,
        use_cache=False,
    )
    targets = input_ids[:, -n_completion:]
    return tempered_logprobs(out.logits[:, :-1, :], targets, temperature, entropy_grad)


@torch.no_grad()
def rollout_logprobs(model: PreTrainedModel, rollouts: Rollouts, micro_batch: int) -> torch.Tensor:
    """Log-probs of every completion token, no grad, batched: for pi_old and pi_ref."""
    out = torch.zeros_like(rollouts.completion_mask)
    for rows, cols, plen in trimmed_slices(
        rollouts.attention_mask, rollouts.prompt_len, micro_batch
    ):
        ids, mask = rollouts.input_ids[rows, cols], rollouts.attention_mask[rows, cols]
        width = ids.shape[1] - plen
        logp, _ = token_logprobs(model, ids, mask, width, temperature=rollouts.temperature)
        out[rows, :width] = logp.to(out.dtype)
    return out

"""Completion log-probs with each distinct prompt encoded once and no compute on padding.

Why: a GRPO batch is G completions of each prompt, right-padded to the longest. Through the HF
forward every row re-encodes its prompt and every padding column costs a full layer. Here, for
Llama-family policies (``models.llama_ops``):
- the distinct prompts of the batch are encoded once each; every completion attends to its
  prompt's keys and values (gathered, so the gradient from all G completions adds up on the one
  prompt encoding: the same gradient as G copies);
- the matmuls (q/k/v, o, MLP, lm_head) run on the real tokens only, packed into one
  (tokens, hidden) matrix; only attention sees a padded layout, one gather per tensor per layer;
- logits are formed only where they predict a completion token.

It returns what ``logprobs.token_logprobs`` returns (log-probs and entropies of the completion
positions, (rows, completion width)), zero at padding positions, equal to the HF forward's to
float rounding (tested, gradients included). Models it cannot reproduce use the HF forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rlvr.models import llama_ops
from rlvr.models.llama_ops import LayerWeights, rms, rotate


def tempered_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float, entropy_grad: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of ``targets`` and entropies under softmax(logits / T): the distribution the
    tokens were sampled from (as TRL and verl score them; otherwise a temperature != 1 makes
    every update silently off-policy). The entropy carries gradient only if ``entropy_grad``."""
    logp_all = torch.log_softmax(logits.float() / temperature, dim=-1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def packed_logprobs(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    n_completion: int,
    entropy_grad: bool = False,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as ``token_logprobs``: rows are a left-padded prompt then a right-padded
    completion of ``n_completion`` columns."""
    device = input_ids.device
    plen = input_ids.shape[1] - n_completion
    # The distinct prompts (ids and padding together), and which one each row continues.
    prompt_key = torch.cat([input_ids[:, :plen], attention_mask[:, :plen]], dim=1)
    uniq, row_prompt = torch.unique(prompt_key, dim=0, return_inverse=True)
    prompt_ids, prompt_real = uniq[:, :plen], uniq[:, plen:].bool()
    comp_ids, comp_real = input_ids[:, plen:], attention_mask[:, plen:].bool()
    n_prompts, rows = len(uniq), len(input_ids)

    prompt_lens = prompt_real.sum(dim=1)
    prompt_pos = (prompt_real.long().cumsum(dim=1) - 1).clamp(min=0)
    comp_pos = prompt_lens[row_prompt, None] + torch.arange(n_completion, device=device)
    ids_pad, pos_pad = input_ids.new_zeros(1), prompt_pos.new_zeros(1)
    p_index = prompt_real.reshape(-1).nonzero().squeeze(1)  # into (n_prompts * plen)
    c_index = comp_real.reshape(-1).nonzero().squeeze(1)  # into (rows * n_completion)
    n_p, n_c = len(p_index), len(c_index)
    # Packed tokens: the prompts' real tokens, the completions' real tokens, then one dummy
    # token that fills every padding slot of the attention layout (its keys are masked out and
    # its queries' outputs dropped, so it gets exactly zero gradient).
    dummy = n_p + n_c
    ids = torch.cat([prompt_ids.reshape(-1)[p_index], comp_ids.reshape(-1)[c_index], ids_pad])
    pos = torch.cat([prompt_pos.reshape(-1)[p_index], comp_pos.reshape(-1)[c_index], pos_pad])
    prompt_slot = torch.full((n_prompts * plen,), dummy, dtype=torch.long, device=device)
    prompt_slot[p_index] = torch.arange(n_p, device=device)
    prompt_slot = prompt_slot.view(n_prompts, plen)
    comp_slot = torch.full((rows * n_completion,), dummy, dtype=torch.long, device=device)
    comp_slot[c_index] = torch.arange(n_p, dummy, device=device)
    comp_slot = comp_slot.view(rows, n_completion)
    key_slot = torch.cat([prompt_slot[row_prompt], comp_slot], dim=1)  # each row's prompt + own
    back = torch.cat([c_index, c_index.new_zeros(1)])  # the dummy's output: any finite row

    heads, kv_heads, d = llama_ops.dims(model)
    cos, sin = llama_ops.rotary_table(model, int(pos.max()) + 1)
    cos, sin = cos[pos].unsqueeze(1), sin[pos].unsqueeze(1)  # (tokens, 1, D)

    # Masks (True = may attend). A padding query sees itself, so no softmax row is empty.
    ar_p = torch.arange(plen, device=device)
    causal_p = ar_p[None, :] <= ar_p[:, None]
    p_mask = (causal_p & prompt_real[:, None, :]) | torch.eye(plen, dtype=torch.bool, device=device)
    ar_c = torch.arange(n_completion, device=device)
    causal_c = (ar_c[None, :] <= ar_c[:, None]) & comp_real[:, None, :]
    c_mask = torch.cat(
        [prompt_real[row_prompt][:, None, :].expand(-1, n_completion, -1), causal_c], dim=2
    )
    c_mask[..., plen:] |= torch.eye(n_completion, dtype=torch.bool, device=device)
    p_mask, c_mask = p_mask.unsqueeze(1), c_mask.unsqueeze(1)

    def attend(q, k, v, mask, scale):
        return F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=mask,
            scale=scale,
            enable_gqa=heads != kv_heads,
        ).transpose(1, 2)

    embed = model.model.embed_tokens  # its padding_idx row gets no gradient, as in HF
    x = F.embedding(ids, embed.weight, padding_idx=embed.padding_idx)
    for layer in model.model.layers:
        lay = LayerWeights(layer)
        qkv = F.linear(rms(x, lay.ln1), lay.qkv_w, lay.qkv_b).view(-1, heads + 2 * kv_heads, d)
        qk, v = rotate(qkv[:, : heads + kv_heads], cos, sin), qkv[:, heads + kv_heads :]
        q, k = qk[:, :heads], qk[:, heads:]
        out_p = attend(q[prompt_slot], k[prompt_slot], v[prompt_slot], p_mask, lay.scaling)
        out_c = attend(q[comp_slot], k[key_slot], v[key_slot], c_mask, lay.scaling)
        o = torch.cat(
            [
                out_p.reshape(n_prompts * plen, heads * d)[p_index],
                out_c.reshape(rows * n_completion, heads * d)[back],
            ]
        )
        x = lay.mlp(x + lay.o(o))

    # The hidden state that predicts each real completion token: the prompt's last token for
    # the first, the previous completion token for the others (a real token's predecessor in
    # its completion is real, so ``comp_slot`` gives its packed position).
    last_of_prompt = prompt_lens.cumsum(dim=0) - 1  # left padding: the last column is real
    source = torch.cat([last_of_prompt[row_prompt, None], comp_slot[:, :-1]], dim=1)
    hidden = rms(x[source.reshape(-1)[c_index]], model.model.norm)
    targets = comp_ids.reshape(-1)[c_index]
    logp, entropy = tempered_logprobs(model.lm_head(hidden), targets, temperature, entropy_grad)

    def padded(values: torch.Tensor) -> torch.Tensor:
        out = values.new_zeros(rows * n_completion)
        out[c_index] = values
        return out.view(rows, n_completion)

    return padded(logp), padded(entropy)

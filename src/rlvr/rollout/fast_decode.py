"""A plain-torch decode loop for Llama-family policies (Llama, Qwen2, Mistral).

Why: for the small policies rlvr trains on CPU, a decode step through the HF modules is mostly
Python overhead per module call (``docs/speed.md``: a forward is ~30 module calls per layer, cache
growth by ``torch.cat``, rotary cos/sin recomputed every step, row removal by
``batch_select_indices``). This loop does the same arithmetic in a few tensor ops per layer:
- it reads the HF modules' weights as they are at call time (the live policy changes every step);
  the q/k/v and gate/up weights are concatenated once per call, so one matmul serves each group;
- the KV cache is preallocated (rows x kv-heads x (prompt + max_new) x head_dim), written in place;
- cos/sin come from the model's own rotary module, once, for every position the call can reach;
- left padding is an explicit key mask; finished rows stay in the batch (their tokens are
  ignored) until a quarter of the batch has finished, then the cache is compacted in one copy;
- each decode step (one token for every row) is one TorchScript call, ``_decode_step``: no
  Python between its ops, and no GIL held, so ``generate`` can run one shard of the batch per
  CPU core at once (at this size a matmul runs no faster on two threads than on one).

It returns what ``generate``'s HF loop returns, calls ``pick`` on the same rows in the same order
(so a seeded sampler draws the same tokens), and its logits match the HF forward to float
rounding. Anything it does not model exactly (other rope types, sliding windows shorter than the
sequence, LoRA-wrapped layers, other activations) makes ``unsupported`` say why, and ``generate``
falls back to the HF path.
"""

# TorchScript parses the annotations of ``_decode_step``: it reads Optional[X], not X | None.
# ruff: noqa: UP045
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlvr.models import llama_ops
from rlvr.models.llama_ops import LayerWeights, rms, rms_norm, rotate

COMPACT_FRACTION = 0.25  # compact the cache once this share of its rows has finished
unsupported = llama_ops.unsupported


LayerTuple = tuple[
    Tensor, Tensor, Optional[Tensor], Tensor, Optional[Tensor],  # ln1, qkv w/b, o w/b
    Tensor, Tensor, Optional[Tensor], Tensor, Optional[Tensor],  # ln2, gate_up w/b, down w/b
]  # fmt: skip


def _decode_step(
    ids: Tensor,
    cos: Tensor,
    sin: Tensor,
    bias: Tensor,
    col: int,
    ks: list[Tensor],
    vs: list[Tensor],
    layers: list[LayerTuple],
    embed: Tensor,
    norm_w: Tensor,
    lm_w: Tensor,
    lm_b: Optional[Tensor],
    heads: int,
    kv_heads: int,
    eps: float,
    scaling: float,
) -> Tensor:
    """One decode step of every row (one new token each, ``ids`` (B,)) as a single TorchScript
    call: the same ops as ``_Runner.forward`` with S = 1, without Python between them, and
    without the GIL, so two shards of a batch decode on two cores at once."""
    b, d = ids.shape[0], cos.shape[-1]
    x = F.embedding(ids, embed)
    for i, lay in enumerate(layers):
        ln1, qkv_w, qkv_b, o_w, o_b, ln2, gu_w, gu_b, down_w, down_b = lay
        qkv = F.linear(rms_norm(x, ln1, eps), qkv_w, qkv_b).view(b, heads + 2 * kv_heads, d)
        qk = rotate(qkv[:, : heads + kv_heads], cos, sin)
        kc, vc = ks[i], vs[i]
        kc[:, :, col] = qk[:, heads:]
        vc[:, :, col] = qkv[:, heads + kv_heads :]
        q = qk[:, :heads].reshape(b, kv_heads, heads // kv_heads, d)
        att = torch.matmul(q, kc[:, :, : col + 1].transpose(-1, -2)).mul_(scaling)
        o = torch.matmul(att.add_(bias).softmax(-1), vc[:, :, : col + 1])
        x = x + F.linear(o.reshape(b, heads * d), o_w, o_b)
        gate, up = F.linear(rms_norm(x, ln2, eps), gu_w, gu_b).chunk(2, dim=-1)
        x = x + F.linear(F.silu(gate) * up, down_w, down_b)
    return F.linear(rms_norm(x, norm_w, eps), lm_w, lm_b)


_scripted: list = []


def _step_fn():
    """``_decode_step`` compiled by TorchScript once per process; the plain Python function
    (same ops, with Python between them) where TorchScript is unavailable."""
    if not _scripted:
        try:
            with warnings.catch_warnings():  # deprecated, not removed: it is what releases the GIL
                warnings.simplefilter("ignore", DeprecationWarning)
                _scripted.append(torch.jit.script(_decode_step))
        except Exception:  # a torch without TorchScript: same arithmetic, slower
            _scripted.append(_decode_step)
    return _scripted[0]


class _Runner:
    def __init__(self, model: nn.Module, rows: int, max_len: int):
        self.model = model
        self.layers = [LayerWeights(layer) for layer in model.model.layers]
        self.heads, self.kv_heads, self.head_dim = llama_ops.dims(model)
        p = next(model.parameters())
        shape = (rows, self.kv_heads, max_len, self.head_dim)
        self.k = [p.new_empty(shape) for _ in self.layers]
        self.v = [p.new_empty(shape) for _ in self.layers]
        self.cos, self.sin = llama_ops.rotary_table(model, max_len)  # computed once per call
        self.tuples = [
            (
                lay.ln1.weight,
                lay.qkv_w,
                lay.qkv_b,
                lay.o.weight,
                lay.o.bias,
                lay.ln2.weight,
                lay.gate_up_w,
                lay.gate_up_b,
                lay.down.weight,
                lay.down.bias,
            )  # fmt: skip
            for lay in self.layers
        ]
        self.eps = model.model.norm.variance_epsilon
        self.scaling = self.layers[0].scaling if self.layers else 1.0

    def step(self, ids: torch.Tensor, pos: torch.Tensor, col: int, bias: torch.Tensor):
        """Logits (B, V) of one new token per row at positions ``pos`` (B,), its K/V written to
        cache column ``col``; ``bias`` (B, 1, 1, col + 1) is 0 for real keys, -inf for padding."""
        m = self.model
        return _step_fn()(
            ids,
            self.cos[pos].unsqueeze(1),
            self.sin[pos].unsqueeze(1),
            bias,
            col,
            self.k,
            self.v,
            self.tuples,
            m.model.embed_tokens.weight,
            m.model.norm.weight,
            m.lm_head.weight,
            m.lm_head.bias,
            self.heads,
            self.kv_heads,
            self.eps,
            self.scaling,
        )

    def prefill(self, ids: torch.Tensor, pos: torch.Tensor, keys: torch.Tensor):
        """Last-position logits of the prompts ``ids`` (B, S) at positions ``pos`` (B, S),
        writing K/V into cache columns ``0:S``; ``keys`` (B, S) is True where a token is real."""
        b, s = ids.shape
        h, kvh, d = self.heads, self.kv_heads, self.head_dim
        # causal and padding; a pad query also sees itself (no empty softmax row)
        causal = torch.ones(s, s, dtype=torch.bool, device=ids.device).tril()
        mask = (causal & keys[:, None, :]) | torch.eye(s, dtype=torch.bool, device=ids.device)
        cos, sin = self.cos[pos].unsqueeze(2), self.sin[pos].unsqueeze(2)  # (B, S, 1, D)
        x = F.embedding(ids, self.model.model.embed_tokens.weight)
        for lay, kc, vc in zip(self.layers, self.k, self.v, strict=True):
            qkv = F.linear(rms(x, lay.ln1), lay.qkv_w, lay.qkv_b).view(b, s, h + 2 * kvh, d)
            qk, v = rotate(qkv[:, :, : h + kvh], cos, sin), qkv[:, :, h + kvh :]  # q and k at once
            kc[:, :, :s] = qk[:, :, h:].transpose(1, 2)
            vc[:, :, :s] = v.transpose(1, 2)
            o = F.scaled_dot_product_attention(
                qk[:, :, :h].transpose(1, 2),
                kc[:, :, :s],
                vc[:, :, :s],
                attn_mask=mask.unsqueeze(1),
                scale=lay.scaling,
                enable_gqa=h != kvh,
            ).transpose(1, 2)
            x = lay.mlp(x + lay.o(o.reshape(b, s, h * d)))
        x = rms(x[:, -1], self.model.model.norm)
        return self.model.lm_head(x)

    def select(self, idx: torch.Tensor) -> None:
        self.k = [c.index_select(0, idx) for c in self.k]
        self.v = [c.index_select(0, idx) for c in self.v]


def decode(
    model: nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    group_size: int,
    max_new_tokens: int,
    pick: Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]],
    eos: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same contract as ``generate``'s HF loop: ``(tokens (N, T), lengths (N,), finished (N,),
    logprobs (N, T))`` for N = prompts * group_size; ``pick(logits, rows, t)`` maps the logits of
    the unfinished rows (``rows``: their indices in the N) at position t to their tokens and
    those tokens' log-probs (``rollout.sampling.Sampler``)."""
    with torch.inference_mode():
        out = _decode(model, prompt_ids, prompt_mask, group_size, max_new_tokens, pick, eos)
    return tuple(t.clone() for t in out)  # plain tensors: rollouts feed autograd later


def _decode(model, prompt_ids, prompt_mask, group_size, max_new_tokens, pick, eos):
    device = prompt_ids.device
    n_prompts, plen = prompt_ids.shape
    n = n_prompts * group_size
    total = plen + max_new_tokens
    run = _Runner(model, n_prompts, total)

    valid = prompt_mask.bool()
    pos = (prompt_mask.long().cumsum(1) - 1).clamp(min=0)
    logits = run.prefill(prompt_ids, pos, valid)
    if group_size > 1:
        run.select(torch.arange(n_prompts, device=device).repeat_interleave(group_size))
        logits = logits.repeat_interleave(group_size, dim=0)
        valid = valid.repeat_interleave(group_size, dim=0)
        pos = pos.repeat_interleave(group_size, dim=0)

    # additive key bias of the batch rows: 0 for real keys, -inf for prompt padding
    key_bias = torch.zeros(n, 1, 1, total, dtype=run.cos.dtype, device=device)
    key_bias[:, 0, 0, :plen].masked_fill_(~valid, float("-inf"))
    next_pos = pos[:, -1] + 1
    tokens = torch.zeros(n, max_new_tokens, dtype=torch.long, device=device)
    logprobs = torch.zeros(n, max_new_tokens, dtype=torch.float32, device=device)
    lengths = torch.full((n,), max_new_tokens, dtype=torch.long, device=device)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    batch = torch.arange(n, device=device)  # full-batch row of each cache row
    alive = torch.ones(n, dtype=torch.bool, device=device)  # per cache row
    nxt = torch.zeros(n, dtype=torch.long, device=device)
    for t in range(max_new_tokens):
        all_alive = bool(alive.all())
        rows = None if all_alive else alive.nonzero().squeeze(1)
        live = batch if all_alive else batch[rows]  # their rows in the full batch
        picked, logp = pick(logits if all_alive else logits[rows], live, t)
        if all_alive:
            nxt = picked
        else:
            nxt = torch.zeros_like(batch)
            nxt[rows] = picked
        tokens[live, t] = picked
        logprobs[live, t] = logp
        done = alive & (nxt == eos) if eos is not None else torch.zeros_like(alive)
        if bool(done.any()):
            lengths[batch[done]] = t + 1
            finished[batch[done]] = True
            alive = alive & ~done
        if t == max_new_tokens - 1 or bool(finished.all()):
            break
        if (~alive).sum() >= COMPACT_FRACTION * len(alive):
            idx = alive.nonzero().squeeze(1)
            run.select(idx)
            batch, nxt, key_bias, next_pos = batch[idx], nxt[idx], key_bias[idx], next_pos[idx]
            alive = alive[idx]
        col = plen + t
        logits = run.step(nxt, next_pos, col, key_bias[..., : col + 1])
        next_pos = next_pos + 1
    return tokens, lengths, finished, logprobs

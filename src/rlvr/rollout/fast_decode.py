"""A plain-torch decode loop for Llama-family policies (Llama, Qwen2, Mistral).

Why: for the small policies rlvr trains on CPU, a decode step through the HF modules is mostly
Python overhead per module call (``docs/speed.md``: a forward is ~30 module calls per layer, cache
growth by ``torch.cat``, rotary cos/sin recomputed every step, row removal by
``batch_select_indices``). This loop does the same arithmetic in a few tensor ops per layer:
- it reads the HF modules' weights as they are at call time (the live policy changes every step);
  the q/k/v and gate/up weights are concatenated once per call, so one matmul serves each group;
- the KV cache is preallocated (rows x kv-heads x (prompt + max_new) x head_dim), written in place;
- cos/sin come from the model's own rotary module, once, for every position the call can reach;
- left padding is an explicit boolean key mask; finished rows stay in the batch (their tokens are
  ignored) until a quarter of the batch has finished, then the cache is compacted in one copy.

It returns what ``generate``'s HF loop returns, calls ``pick`` on the same rows in the same order
(so a seeded sampler draws the same tokens), and its logits match the HF forward to float
rounding. Anything it does not model exactly (other rope types, sliding windows shorter than the
sequence, LoRA-wrapped layers, other activations) makes ``unsupported`` say why, and ``generate``
falls back to the HF path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED = ("LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM")
COMPACT_FRACTION = 0.25  # compact the cache once this share of its rows has finished


def unsupported(model: nn.Module, total_len: int) -> str | None:
    """Why ``decode`` cannot reproduce ``model``'s forward exactly; None when it can."""
    name = type(model).__name__
    if name not in SUPPORTED:
        return f"{name} is not one of {SUPPORTED}"
    cfg = model.config
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        return f"rope_type {rope_type!r}"
    if cfg.hidden_act != "silu":
        return f"hidden_act {cfg.hidden_act!r}"
    if any(t != "full_attention" for t in getattr(cfg, "layer_types", None) or []):
        return "sliding-window layers"
    window = getattr(cfg, "sliding_window", None)
    if window is not None and (name == "MistralForCausalLM" or cfg.use_sliding_window):
        if window < total_len:
            return f"sliding_window {window} < {total_len} tokens"
    if model.device.type not in ("cpu", "cuda"):
        return f"device {model.device.type}"
    for layer in model.model.layers:
        a, m = layer.self_attn, layer.mlp
        linears = (a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj)
        if any(type(lin) is not nn.Linear for lin in linears):
            return "a projection is not a plain nn.Linear (LoRA or quantised?)"
    return None


def _cat(*xs: torch.Tensor | None) -> torch.Tensor | None:
    return None if xs[0] is None else torch.cat(xs)


class _Layer:
    """One decoder layer's weights (views of the live parameters, plus the fused matmuls)."""

    def __init__(self, layer: nn.Module):
        a, m = layer.self_attn, layer.mlp
        self.ln1, self.ln2 = layer.input_layernorm, layer.post_attention_layernorm
        self.qkv_w = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])
        self.qkv_b = _cat(a.q_proj.bias, a.k_proj.bias, a.v_proj.bias)  # Qwen2: q/k/v biases
        self.o = a.o_proj
        self.gate_up_w = torch.cat([m.gate_proj.weight, m.up_proj.weight])
        self.gate_up_b = _cat(m.gate_proj.bias, m.up_proj.bias)
        self.down = m.down_proj
        self.scaling = a.scaling


def _rms(x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    # HF's RMSNorm normalises in float32 and casts back before the weight multiply.
    if x.dtype == torch.float32:
        return F.rms_norm(x, norm.weight.shape, norm.weight, norm.variance_epsilon)
    y = F.rms_norm(x.float(), norm.weight.shape, eps=norm.variance_epsilon)
    return norm.weight * y.to(x.dtype)


class _Runner:
    def __init__(self, model: nn.Module, rows: int, max_len: int):
        cfg = model.config
        self.model = model
        self.layers = [_Layer(layer) for layer in model.model.layers]
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        p = next(model.parameters())
        shape = (rows, self.kv_heads, max_len, self.head_dim)
        self.k = [p.new_empty(shape) for _ in self.layers]
        self.v = [p.new_empty(shape) for _ in self.layers]
        pos = torch.arange(max_len, device=p.device).unsqueeze(0)
        cos, sin = model.model.rotary_emb(p, pos)  # the model's own cos/sin, computed once
        self.cos, self.sin = cos[0], sin[0]  # (max_len, head_dim)

    def forward(self, ids: torch.Tensor, pos: torch.Tensor, start: int, keys: torch.Tensor):
        """Last-position logits of ``ids`` (B, S) at positions ``pos`` (B, S), writing K/V into
        cache columns ``start:start+S``; ``keys`` (B, start+S) is True where a key is real."""
        b, s = ids.shape
        h, kvh, d = self.heads, self.kv_heads, self.head_dim
        end = start + s
        if s > 1:  # prefill: causal and padding; a pad query also sees itself (no empty softmax)
            causal = torch.ones(s, end, dtype=torch.bool, device=ids.device).tril(start)
            mask = (causal & keys[:, None, :]) | torch.eye(
                s, end, dtype=torch.bool, device=ids.device
            )
            mask = mask.unsqueeze(1)
        else:  # decode: SDPA's kernels are slow for one query over many tiny heads; two bmm's
            bias = torch.zeros(b, 1, 1, end, dtype=self.cos.dtype, device=ids.device)
            bias.masked_fill_(~keys[:, None, None, :], float("-inf"))
        cos, sin = self.cos[pos].unsqueeze(2), self.sin[pos].unsqueeze(2)  # (B, S, 1, D)
        x = F.embedding(ids, self.model.model.embed_tokens.weight)
        for lay, kc, vc in zip(self.layers, self.k, self.v, strict=True):
            qkv = F.linear(_rms(x, lay.ln1), lay.qkv_w, lay.qkv_b).view(b, s, h + 2 * kvh, d)
            qk, v = qkv[:, :, : h + kvh], qkv[:, :, h + kvh :]
            half = torch.cat([-qk[..., d // 2 :], qk[..., : d // 2]], dim=-1)
            qk = qk * cos + half * sin  # rotary on q and k at once
            kc[:, :, start:end] = qk[:, :, h:].transpose(1, 2)
            vc[:, :, start:end] = v.transpose(1, 2)
            if s > 1:
                o = F.scaled_dot_product_attention(
                    qk[:, :, :h].transpose(1, 2),
                    kc[:, :, :end],
                    vc[:, :, :end],
                    attn_mask=mask,
                    scale=lay.scaling,
                    enable_gqa=h != kvh,
                ).transpose(1, 2)
            else:  # query heads i*g..(i+1)*g-1 share kv head i (HF's repeat_kv)
                q = qk[:, 0, :h].reshape(b, kvh, h // kvh, d)
                att = torch.matmul(q, kc[:, :, :end].transpose(-1, -2)).mul_(lay.scaling)
                o = torch.matmul(att.add_(bias).softmax(-1), vc[:, :, :end])
            x = x + lay.o(o.reshape(b, s, h * d))
            gate, up = F.linear(_rms(x, lay.ln2), lay.gate_up_w, lay.gate_up_b).chunk(2, dim=-1)
            x = x + lay.down(F.silu(gate) * up)
        x = _rms(x[:, -1], self.model.model.norm)
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
    pick: Callable[[torch.Tensor], torch.Tensor],
    eos: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same contract as ``generate``'s HF loop: ``(tokens (N, T), lengths (N,), finished (N,))``
    for N = prompts * group_size; ``pick`` maps the logits of the unfinished rows to tokens."""
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
    logits = run.forward(prompt_ids, pos, 0, valid)
    if group_size > 1:
        run.select(torch.arange(n_prompts, device=device).repeat_interleave(group_size))
        logits = logits.repeat_interleave(group_size, dim=0)
        valid = valid.repeat_interleave(group_size, dim=0)
        pos = pos.repeat_interleave(group_size, dim=0)

    keys = torch.ones(n, total, dtype=torch.bool, device=device)  # key mask of the batch rows
    keys[:, :plen] = valid
    next_pos = pos[:, -1] + 1
    tokens = torch.zeros(n, max_new_tokens, dtype=torch.long, device=device)
    lengths = torch.full((n,), max_new_tokens, dtype=torch.long, device=device)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    batch = torch.arange(n, device=device)  # full-batch row of each cache row
    alive = torch.ones(n, dtype=torch.bool, device=device)  # per cache row
    nxt = torch.zeros(n, dtype=torch.long, device=device)
    for t in range(max_new_tokens):
        all_alive = bool(alive.all())
        rows = None if all_alive else alive.nonzero().squeeze(1)
        picked = pick(logits if all_alive else logits[rows])
        if all_alive:
            nxt = picked
        else:
            nxt = torch.zeros_like(batch)
            nxt[rows] = picked
        tokens[batch[alive], t] = picked
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
            batch, nxt, keys, next_pos = batch[idx], nxt[idx], keys[idx], next_pos[idx]
            alive = alive[idx]
        col = plen + t
        logits = run.forward(nxt.unsqueeze(1), next_pos.unsqueeze(1), col, keys[:, : col + 1])
        next_pos = next_pos + 1
    return tokens, lengths, finished

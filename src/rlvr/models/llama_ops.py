"""The Llama-family forward (Llama, Qwen2, Mistral) as plain tensor ops over the live HF weights.

Why: for the small policies rlvr trains on CPU, the HF modules spend much of a step in Python
(~30 module calls per layer, masks built per call). ``rollout.fast_decode`` (sampling) and
``train.packed_logprobs`` (the update) do the same arithmetic in a few ops per layer. This module
holds what they share: which models they can reproduce exactly, each layer's weights with the
q/k/v and gate/up matmuls fused, RMSNorm as HF computes it, and rotary embedding.

Weights are read at call time (the live policy changes every step); the fused weights are
``torch.cat`` of the parameters, so gradients flow back to the HF parameters unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED = ("LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM")


def unsupported(model: nn.Module, total_len: int) -> str | None:
    """Why the plain-op forward cannot reproduce ``model``'s forward exactly over sequences of
    ``total_len`` tokens; None when it can. (A PEFT wrapper is another class, so it is refused
    by name; adapters injected into a bare model are refused as non-``nn.Linear`` layers.)"""
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
    if model.training and getattr(cfg, "attention_dropout", 0.0):
        return "attention dropout in training mode"
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


class LayerWeights:
    """One decoder layer's weights (the live parameters, plus the fused q/k/v and gate/up)."""

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

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        """The residual stream after this layer's MLP block."""
        gate, up = F.linear(rms(x, self.ln2), self.gate_up_w, self.gate_up_b).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


def rms(x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    """HF's RMSNorm module ``norm`` applied to ``x``."""
    return rms_norm(x, norm.weight, norm.variance_epsilon)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """HF's RMSNorm: normalise in float32, cast back, then the weight multiply. (Plain tensor
    arguments: TorchScript compiles it inside ``fast_decode``'s decode step.)"""
    if x.dtype == torch.float32:
        return F.rms_norm(x, [weight.shape[0]], weight, eps)
    return weight * F.rms_norm(x.float(), [weight.shape[0]], None, eps).to(x.dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding (HF's rotate_half convention) of ``x`` (..., heads, D); ``cos``/``sin``
    broadcast over the heads axis."""
    d = x.shape[-1]
    return x * cos + torch.cat([-x[..., d // 2 :], x[..., : d // 2]], dim=-1) * sin


def rotary_table(model: nn.Module, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's own cos/sin for positions ``0..length-1``: (length, head_dim) each."""
    p = next(model.parameters())
    pos = torch.arange(length, device=p.device).unsqueeze(0)
    cos, sin = model.model.rotary_emb(p, pos)
    return cos[0], sin[0]


def dims(model: nn.Module) -> tuple[int, int, int]:
    """(query heads, key/value heads, head dim)."""
    cfg = model.config
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return heads, cfg.num_key_value_heads, head_dim

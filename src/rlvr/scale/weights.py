"""A policy as plain data that crosses the wire, rebuilt on the other side, and its checksum.

A worker on another machine cannot read the driver's run directory, so a policy travels as its
Hugging Face config and its state dict (``policy_payload``); ``build_policy`` makes the same
model there. ``checksum`` is what the weight sync is checked with: every rollout worker reports
the checksum of the copy it sampled with, and the driver compares it with the learner's at that
version.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from rlvr.models.load import resolve_device

StateDict = dict[str, torch.Tensor]


def state_of(model: PreTrainedModel) -> StateDict:
    """The weights, detached and on the CPU: what one version of the policy is on the wire."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def architecture(model: PreTrainedModel) -> dict[str, Any]:
    """The model without its weights: its HF config and dtype."""
    if hasattr(model, "get_base_model"):
        raise ValueError(
            "scale-out trains all weights: LoRA adapters (model.lora_r > 0) run in one process "
            "for now; drop scale.ray/--ray or set model.lora_r=0"
        )
    return {"config": model.config, "dtype": next(model.parameters()).dtype}


def policy_payload(model: PreTrainedModel) -> dict[str, Any]:
    """Everything ``build_policy`` needs: the architecture and the weights."""
    return {**architecture(model), "state": state_of(model)}


def build_policy(payload: dict[str, Any], device: str = "cpu") -> PreTrainedModel:
    """The model of ``payload`` on ``device`` (``model.device``), with its weights when the
    payload has them (``state``); without, they are random until ``load_weights``."""
    with torch.random.fork_rng(devices=[]):  # the random init leaves the generator alone
        model = AutoModelForCausalLM.from_config(payload["config"], dtype=payload["dtype"])
    if "state" in payload:
        model.load_state_dict(payload["state"])
    return model.to(resolve_device(device))


def load_weights(model: PreTrainedModel, state: StateDict) -> None:
    with torch.no_grad():
        model.load_state_dict(state)


def checksum(model: PreTrainedModel) -> str:
    """SHA-256 of every tensor's bytes, in name order: equal iff the weights are bit for bit."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(
            tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return h.hexdigest()[:16]

"""Load a policy and its tokenizer from a local directory (never from a hub)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)


class ModelNotFound(FileNotFoundError):
    pass


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("model.device is 'cuda' but torch sees no GPU; use 'auto' or 'cpu'")
    return torch.device(device)


def load_policy(
    path: str | Path, device: str = "cpu", dtype: str = "auto"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer from ``path``. ``dtype="auto"`` is bf16 on GPU, fp32 on CPU."""
    path = Path(path)
    from rlvr.models.lora import adapter_base_path, is_adapter_dir, load_adapter

    if is_adapter_dir(path):  # a LoRA checkpoint: its base model, then the adapters
        base, _ = load_policy(adapter_base_path(path), device, dtype)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        return load_adapter(base, path), tokenizer
    if not (path / "config.json").is_file():
        raise ModelNotFound(
            f"no Hugging Face model at {path} (no config.json); pass a directory written by "
            "save_pretrained, e.g. runs/default/checkpoints/rl"
        )
    dev = resolve_device(device)
    if dtype == "auto":
        torch_dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    else:
        torch_dtype = getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model.to(dev), tokenizer

"""LoRA (Hu et al., 2021) through PEFT: train low-rank adapters instead of all weights.

A LoRA checkpoint is PEFT's ``save_pretrained`` output (``adapter_config.json`` and the adapter
weights) plus the tokenizer; it names its base model by path, so it loads wherever that path
exists. ``model.lora_merge`` also writes the merged weights, a plain HF model for any tool.
"""

from __future__ import annotations

import copy
from pathlib import Path

from transformers import PreTrainedModel

from rlvr.config import ModelConfig


def _peft():
    try:
        import peft
    except ImportError:
        raise ImportError("LoRA (model.lora_r > 0) needs PEFT: pip install 'rlvr[lora]'") from None
    return peft


def is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def is_adapter_dir(path: str | Path) -> bool:
    path = Path(path)
    return (path / "adapter_config.json").is_file() and not (path / "config.json").is_file()


def apply_lora(model: PreTrainedModel, cfg: ModelConfig):
    """Wrap ``model`` with fresh LoRA adapters when ``cfg.lora_r > 0`` (else return it as is)."""
    if not cfg.lora_r or is_peft(model):
        return model
    peft = _peft()
    config = peft.LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha or 2 * cfg.lora_r,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.lora_target_modules,
        task_type="CAUSAL_LM",
    )
    wrapped = peft.get_peft_model(model, config)
    if cfg.gradient_checkpointing:  # frozen embeddings: checkpointed blocks need an input grad
        wrapped.enable_input_require_grads()
    return wrapped


def load_adapter(base: PreTrainedModel, path: str | Path):
    """``base`` with the adapters saved at ``path``, trainable (a resumed run keeps training)."""
    return _peft().PeftModel.from_pretrained(base, str(path), is_trainable=True)


def adapter_base_path(path: str | Path) -> str:
    import json

    return json.loads((Path(path) / "adapter_config.json").read_text())["base_model_name_or_path"]


def save_merged(model, out_dir: str | Path) -> Path:
    """Base weights with the adapters folded in, as a plain HF model (the policy is untouched)."""
    merged = copy.deepcopy(model).merge_and_unload()
    merged.save_pretrained(out_dir)
    return Path(out_dir)

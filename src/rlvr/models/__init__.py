"""Policies: the embedded tiny model built offline, or any local Hugging Face causal LM."""

from rlvr.models.load import load_policy
from rlvr.models.tiny import build_model, build_tokenizer, save_tiny

__all__ = ["build_model", "build_tokenizer", "load_policy", "save_tiny"]

"""The embedded default policy: a small Llama-architecture model and a character-level tokenizer,
both built offline, both saved in Hugging Face format.

Why character-level: arithmetic is digit-by-digit work, and a tokenizer that splits "347" into one
piece would hide the digits from a model this small. The reasoning tags are single tokens, so the
format costs the model four predictions, not thirty.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>"]
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]
CHARACTERS = list(dict.fromkeys(string.digits + string.ascii_letters + string.punctuation + " \n"))


def build_tokenizer(extra_tags: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """A deterministic character tokenizer: same ids on every machine, no download, no training.

    ``extra_tags`` (e.g. the ``<obs>``/``</obs>`` around an environment's replies) are atomic
    tokens added after every other id, so the default vocabulary (and the embedded model's
    initialisation from a seed) stays exactly as it was without them."""
    atomic = TAG_TOKENS + [t for t in extra_tags if t not in TAG_TOKENS]
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + TAG_TOKENS + CHARACTERS)}
    for t in atomic[len(TAG_TOKENS) :]:
        vocab[t] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tags = "|".join(t.replace("/", "\\/") for t in atomic)
    core.pre_tokenizer = pre_tokenizers.Split(Regex(f"{tags}|(?m:.)"), behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="left",
        model_max_length=512,
    )
    tokenizer.add_tokens(atomic)  # already in the vocabulary; marks them atomic for HF
    return tokenizer


def build_model(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    max_positions: int = 256,
    seed: int = 0,
) -> LlamaForCausalLM:
    """A randomly initialised Llama of about 1M parameters at the defaults."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def save_tiny(
    out_dir: str | Path, seed: int = 0, extra_tags: Sequence[str] = (), **model_kwargs: int
) -> Path:
    """Build the embedded model and tokenizer and save both where ``from_pretrained`` finds them."""
    out = Path(out_dir)
    tokenizer = build_tokenizer(extra_tags)
    model = build_model(tokenizer, seed=seed, **model_kwargs)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out

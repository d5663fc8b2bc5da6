"""Rollout engines: ``rlvr`` (rlvr's own decoders) and ``vllm`` (a colocated ``vllm.LLM``), behind
one interface (``base.Engine``). vLLM is imported only when the vLLM engine is built."""

from rlvr.rollout.engines.base import Engine, EngineError, Sampled, StaleWeights
from rlvr.rollout.engines.native import NativeEngine

__all__ = ["Engine", "EngineError", "NativeEngine", "Sampled", "StaleWeights"]

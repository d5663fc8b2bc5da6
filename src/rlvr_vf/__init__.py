"""rlvr as verifiers plugins (verifiers resolves a plugin id by importing a top-level module and
reading its ``__all__``): ``RlvrChatHarness``, an in-process chat harness (harness id
``rlvr_vf``), and ``RlvrTaskset``, rlvr's tasks scored by rlvr's
verifiers (taskset id ``rlvr_vf``). The code lives in ``rlvr.integrations``."""

from rlvr.integrations.vf_chat import RlvrChatHarness
from rlvr.integrations.vf_taskset import RlvrTaskset

__all__ = ["RlvrChatHarness", "RlvrTaskset"]

"""rlvr as verifiers plugins (verifiers resolves a plugin id by importing a top-level module and
reading its ``__all__``): ``RlvrChatHarness``, an in-process chat harness (harness id
``rlvr_vf``), and ``RlvrTaskset`` / ``RlvrEnv``, rlvr's tasks and environments scored by rlvr's
verifiers (taskset id ``rlvr_vf``). The code lives in ``rlvr.integrations``."""

from rlvr.integrations.vf_chat import RlvrChatHarness

__all__ = ["RlvrChatHarness"]

"""Rule-based rewards. Importing this package registers the built-in verifiers."""

from rlvr.verifiers.base import (
    Verdict,
    Verifier,
    get_verifier,
    graded,
    register_verifier,
    verifier_names,
)
from rlvr.verifiers import arithmetic  # noqa: F401  (registers "arithmetic")
from rlvr.verifiers import code  # noqa: F401  (registers "code")
from rlvr.verifiers import format  # noqa: F401  (registers "format")
from rlvr.verifiers import math  # noqa: F401  (registers "math")
from rlvr.verifiers import reasoning_gym  # noqa: F401  (registers "reasoning_gym")
from rlvr.verifiers import coq  # noqa: F401  (registers "coq")
from rlvr.verifiers import compose  # noqa: F401  (registers "gate", "weighted_sum", ...)

__all__ = ["Verdict", "Verifier", "get_verifier", "graded", "register_verifier", "verifier_names"]

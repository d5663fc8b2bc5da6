"""Rule-based rewards. Importing this package registers the built-in verifiers."""

from rlvr.verifiers import (
    arithmetic,  # noqa: F401  (registers "arithmetic", "arithmetic_lenient")
    code,  # noqa: F401  (registers "code")
    compose,  # noqa: F401  (registers "gate", "weighted_sum", ...)
    coq,  # noqa: F401  (registers "coq")
    format,  # noqa: F401  (registers "format")
    math,  # noqa: F401  (registers "math")
    reasoning_gym,  # noqa: F401  (registers "reasoning_gym")
)
from rlvr.verifiers.base import (
    Verdict,
    Verifier,
    get_verifier,
    graded,
    register_verifier,
    verifier_names,
)

__all__ = ["Verdict", "Verifier", "get_verifier", "graded", "register_verifier", "verifier_names"]

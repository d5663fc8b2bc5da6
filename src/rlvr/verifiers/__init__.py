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

__all__ = ["Verdict", "Verifier", "get_verifier", "graded", "register_verifier", "verifier_names"]

"""rlvr verifiers as verl's ``compute_score`` (``custom_reward_function.path`` in verl's config).

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` per response
and uses the float it returns. The verifier is chosen by ``extra_info["verifier"]`` when given,
else by ``data_source``: a registered verifier name, or a dataset name mapped in ``SOURCES``
(anything else is scored as math).
"""

from __future__ import annotations

import functools
from typing import Any

from rlvr.verifiers.base import Verifier, get_verifier, verifier_names
from rlvr.verifiers.pool import safe_verify
from rlvr.verifiers.references import expects_object, parse_json_reference

SOURCES = {
    "openai/gsm8k": "math",
    "lighteval/MATH": "math",
    "DigitalLearningGmbH/MATH-lighteval": "math",
    "humaneval": "code",
    "codecontests": "code",
}


@functools.cache
def _verifier(name: str) -> Verifier:
    return get_verifier(name)


def verifier_for(data_source: str, extra_info: dict | None = None) -> str:
    if extra_info and extra_info.get("verifier"):
        return str(extra_info["verifier"])
    if data_source in verifier_names():
        return data_source
    return SOURCES.get(data_source, "math")


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None
) -> float:
    """The verdict's score in [0, 1]; never raises (a failing check scores 0)."""
    name = verifier_for(data_source, extra_info)
    if expects_object(name):
        ground_truth = parse_json_reference(ground_truth)
    return safe_verify(_verifier(name), solution_str, ground_truth).score

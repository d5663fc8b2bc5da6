"""Verifiers built from verifiers: weighted sums and gates.

Composition is generic (it knows nothing of math or code) so any reward recipe is a config
line. Every part receives the same ``(response, reference)``; a part that ignores the
reference (``format``) simply does not look at it.

Specs. Wherever a part is expected, pass a Verifier, a registered name (``"math"``), or a dict
``{"name": "math", **options}``. Configs therefore build composites through the registry::

    get_verifier("gate", gate="format", then="math")
    get_verifier("weighted_sum", parts=[["math", 0.9], [{"name": "format"}, 0.1]])
    get_verifier("format_gated_math")          # the R1 recipe: format must hold, then math
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rlvr.verifiers.base import Verdict, Verifier, get_verifier, register_verifier
from rlvr.verifiers.pool import safe_verify

VerifierSpec = Verifier | str | Mapping[str, Any]


def build_verifier(spec: VerifierSpec) -> Verifier:
    """A Verifier from a spec: an instance, a registered name, or ``{"name": ..., **options}``."""
    if isinstance(spec, str):
        return get_verifier(spec)
    if isinstance(spec, Mapping):
        if "name" not in spec:
            raise ValueError(f"verifier spec {dict(spec)!r} has no 'name'")
        options = {k: v for k, v in spec.items() if k != "name"}
        return get_verifier(spec["name"], **options)
    if not callable(getattr(spec, "verify", None)):
        raise TypeError(f"not a verifier spec: {spec!r}")
    return spec


@register_verifier("weighted_sum")
class WeightedSum:
    """``score = sum(w_i * s_i) / sum(w_i)``: normalised, so the reward stays in [0, 1].

    Status: ``correct`` when every part is, ``partial`` when the score is above 0, otherwise
    the status of the heaviest part (the reason the reward is 0).
    """

    name = "weighted_sum"

    def __init__(self, parts: Sequence[tuple[VerifierSpec, float] | Sequence[Any]]) -> None:
        if not parts:
            raise ValueError("WeightedSum needs at least one (verifier, weight) part")
        self.parts: list[tuple[Verifier, float]] = []
        for part in parts:
            spec, weight = part
            if not weight >= 0:
                raise ValueError(f"WeightedSum weights must be >= 0, got {weight!r}")
            self.parts.append((build_verifier(spec), float(weight)))
        self.total = sum(w for _, w in self.parts)
        if self.total <= 0:
            raise ValueError("WeightedSum weights sum to 0")
        self.runs_in_process = all(getattr(v, "runs_in_process", False) for v, _ in self.parts)

    def verify(self, response: str, reference: Any) -> Verdict:
        verdicts = [(v, w, safe_verify(v, response, reference)) for v, w in self.parts]
        score = min(1.0, max(0.0, sum(w * d.score for _, w, d in verdicts) / self.total))
        detail = "; ".join(
            f"{v.name}={d.status}" + (f" ({d.detail})" if d.detail else "") for v, _, d in verdicts
        )
        if all(d.correct for *_, d in verdicts):
            return Verdict(score, "correct", detail)
        if score > 0:
            return Verdict(score, "partial", detail)
        heaviest = max(verdicts, key=lambda item: item[1])[2]
        return Verdict(0.0, heaviest.status, detail)


@register_verifier("gate")
class Gate:
    """``then``'s verdict when ``gate`` is fully correct; otherwise 0 with the gate's status."""

    name = "gate"

    def __init__(self, gate: VerifierSpec, then: VerifierSpec) -> None:
        self.gate = build_verifier(gate)
        self.then = build_verifier(then)
        self.name = f"{self.gate.name}>{self.then.name}"
        self.runs_in_process = all(
            getattr(v, "runs_in_process", False) for v in (self.gate, self.then)
        )

    def verify(self, response: str, reference: Any) -> Verdict:
        opened = safe_verify(self.gate, response, reference)
        if not opened.correct:
            return Verdict(0.0, opened.status, f"gate {self.gate.name}: {opened.detail}")
        return safe_verify(self.then, response, reference)


@register_verifier("format_gated_math")
def format_gated_math(**format_options: Any) -> Gate:
    """The R1 recipe: ``<think>..</think><answer>..</answer>`` must hold before math counts."""
    return Gate({"name": "format", **format_options}, "math")

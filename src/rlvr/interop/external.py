"""Environments from elsewhere: ``vf:ID`` (a verifiers 0.4 taskset) and ``openenv:URL`` /
``openenv:PACKAGE`` (an OpenEnv server), behind the same ``--env`` as rlvr's own.

What this module owns, for both kinds:

- resolving the name to its family (``family``), with the install command when the package
  is missing (``require``);
- what a failed episode is worth (``exclude_failed``): an episode whose environment, harness
  or reward raised, whose server was unreachable, timed out or died, or whose tokens drifted
  from what was sampled, is never trained on as if it were complete. Its loss mask is zeroed
  (no gradient from any of its tokens) and its reward is set to the mean reward of the
  completed episodes of its group, so it moves neither the group's baseline nor, through the
  mask, the gradient; a group with no completed episode is all ties (zero advantage). With
  ``algorithm.scale: group`` the imputed rewards sit at the group mean, which shrinks the group's
  standard deviation by sqrt(k / G) for k completed of G. Failures are counted (``env/errors``,
  drifts ``env/token_drift``), and the run stops when more than ``env.max_failed_fraction`` of a
  step's episodes are unusable (``EnvFailures``).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from rlvr.verifiers.base import Verdict

PREFIXES = ("vf:", "openenv:")
INSTALL = 'pip install "rlvr[envs]"'


class EnvFailures(RuntimeError):
    """More than ``env.max_failed_fraction`` of a step's episodes failed."""


class MissingPackage(ImportError):
    """An optional package an imported environment needs is not installed."""


def is_external(name: str | None) -> bool:
    return bool(name) and str(name).startswith(PREFIXES)


def require(module: str, what: str, install: str = INSTALL) -> None:
    """Raise ``MissingPackage`` naming ``what`` needs ``module`` and how to install it."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingPackage(
            f"{what} needs the {module!r} package, which is not installed: {install}"
        )


_FAMILIES: dict[str, Any] = {}


def family(name: str) -> Any:
    """The environment family of ``vf:ID`` or ``openenv:...`` (one object per name)."""
    if name not in _FAMILIES:
        if name.startswith("vf:"):
            require("verifiers", f"--env {name}")
            from rlvr.interop.verifiers_env import VerifiersFamily

            _FAMILIES[name] = VerifiersFamily(name)
        else:
            require("openenv", f"--env {name}", 'pip install "rlvr[envs]" (openenv-core)')
            from rlvr.interop.openenv_env import OpenEnvFamily

            _FAMILIES[name] = OpenEnvFamily(name)
    return _FAMILIES[name]


def close_all() -> None:
    """Stop what the imported environments started (servers, event loops)."""
    for fam in list(_FAMILIES.values()):
        fam.close()


def source(cfg: Any, tokenizer: Any, engine: Any = None) -> Any:
    """The run's rollout source for an imported environment (``wiring.rollout_source``),
    sampled by ``engine`` (the run's; rlvr's own decoders when None)."""
    return family(cfg.env.name).source(cfg, tokenizer, engine)


def exclude_failed(
    verdicts: list[Verdict],
    completion_mask: torch.Tensor,
    failures: list[str | None],
    drifts: list[str | None],
    group_size: int,
    max_failed_fraction: float,
) -> tuple[list[Verdict], torch.Tensor, dict[str, float]]:
    """Failed and drifted episodes out of training (see the module docstring): the verdicts
    with imputed rewards, the completion mask with their rows zeroed, and the counts."""
    bad = [f is not None or d is not None for f, d in zip(failures, drifts, strict=True)]
    n = len(verdicts)
    counts = {
        "env/errors": float(sum(f is not None for f in failures)),
        "env/token_drift": float(sum(d is not None for d in drifts)),
    }
    if sum(bad) > max_failed_fraction * n:
        reasons = sorted({r for r in [*failures, *drifts] if r})
        shown = "; ".join(r[:200] for r in reasons[:3])
        raise EnvFailures(
            f"{sum(bad)} of {n} episodes of this step failed or drifted (more than "
            f"env.max_failed_fraction={max_failed_fraction}): {shown}. Fix the environment or "
            "its server, or raise env.max_failed_fraction"
        )
    out = list(verdicts)
    mask = completion_mask.clone()
    for g in range(0, n, group_size):
        rows = range(g, g + group_size)
        ok = [verdicts[i].score for i in rows if not bad[i]]
        mean = sum(ok) / len(ok) if ok else 0.0
        for i in rows:
            if bad[i]:
                why = failures[i] or drifts[i] or ""
                kind = "failed" if failures[i] else "drifted from the tokens sampled"
                detail = f"episode {kind}, not trained on (reward: its group's mean): {why}"
                out[i] = Verdict(mean, "error", detail[:500])
                mask[i] = 0.0
    return out, mask, counts


def normalised(raw: float, low: float, high: float) -> tuple[float, bool]:
    """``raw`` mapped from ``[low, high]`` to a verdict's [0, 1]; True when it had to be clipped."""
    score = (raw - low) / (high - low) if high > low else raw
    clipped = min(max(score, 0.0), 1.0)
    return clipped, clipped != score


def verdict_of(score: float, detail: str) -> Verdict:
    status = "correct" if score >= 1.0 - 1e-9 else ("partial" if score > 0 else "wrong")
    return Verdict(score, status, detail[:500])

"""The clipped surrogate with a KL penalty, and the variants practitioners use.

Per token t of completion i (the spec's objective, GRPO paper eq. 3):

    rho    = pi_theta(y_t | x, y_<t) / pi_old(y_t | x, y_<t)
    obj_t  = min(rho * A_i, clip(rho, 1 - eps_low, 1 + eps_high) * A_i)  -  beta * KL_t
    loss   = - aggregate(obj_t over completion tokens)

Options and where they come from:
- ``eps_high > eps_low``: DAPO's clip-higher (Yu et al. 2025): low-probability tokens can rise.
- ``dual_clip``: for A < 0 the objective is floored at ``dual_clip * A`` (Ye et al. 2020), so one
  token whose ratio exploded cannot dominate the batch.
- ``ratio_level="sequence"``: GSPO (Zheng et al. 2025): one ratio per sequence, the geometric mean
  of its token ratios, clipped as a whole.
- aggregations: ``sequence`` = mean over sequences of per-sequence token means (the GRPO paper);
  ``token`` = mean over all tokens in the batch (DAPO); ``constant`` = sum over tokens divided by
  ``batch_size * max_completion_tokens`` (Dr. GRPO: no length bias).
- ``behaviour_logp``: samples drawn by an older policy mu than pi_old (asynchronous RL, where
  generation runs ahead of the update). The surrogate above stays the trust region around pi_old
  (the "proximal" policy of decoupled PPO, Hilton et al. 2021; AReaL), and each token's term is
  weighted by w_t = pi_old / mu, corrected as ``importance_correction`` says: ``truncate``
  min(w_t, C) (truncated importance sampling, as verl's ``tis_imp_ratio_cap`` and OpenRLHF do),
  ``mask`` w_t where w_t <= C and 0 above (the token leaves the loss), ``none`` 1. The weight
  carries no gradient. KL and entropy terms are not weighted.
Masked tokens (prompt, padding, whatever follows EOS) contribute nothing, by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlvr.algorithms.registry import IMPORTANCE_CORRECTIONS, KL_ESTIMATORS, LOSS_AGGREGATIONS


@LOSS_AGGREGATIONS.register("sequence")
def seq_mean_token_mean(values: torch.Tensor, mask: torch.Tensor, **_: object) -> torch.Tensor:
    per_seq = (values * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return per_seq.mean()


@LOSS_AGGREGATIONS.register("token")
def token_mean(values: torch.Tensor, mask: torch.Tensor, **_: object) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


@LOSS_AGGREGATIONS.register("constant")
def constant_normaliser(
    values: torch.Tensor, mask: torch.Tensor, max_tokens: int | None = None, **_: object
) -> torch.Tensor:
    norm = values.shape[0] * (max_tokens or values.shape[1])
    return (values * mask).sum() / norm


@IMPORTANCE_CORRECTIONS.register("truncate")
def truncated_weights(
    old_logp: torch.Tensor, behaviour_logp: torch.Tensor, clip: float
) -> torch.Tensor:
    return torch.exp(old_logp - behaviour_logp).clamp(max=clip)


@IMPORTANCE_CORRECTIONS.register("mask")
def masked_weights(
    old_logp: torch.Tensor, behaviour_logp: torch.Tensor, clip: float
) -> torch.Tensor:
    w = torch.exp(old_logp - behaviour_logp)
    return torch.where(w <= clip, w, torch.zeros_like(w))


@IMPORTANCE_CORRECTIONS.register("none")
def no_weights(old_logp: torch.Tensor, behaviour_logp: torch.Tensor, clip: float) -> torch.Tensor:
    return torch.ones_like(old_logp)


@dataclass(frozen=True)
class LossSettings:
    eps_low: float = 0.2
    eps_high: float = 0.2
    dual_clip: float | None = None
    beta: float = 0.0
    kl_estimator: str = "k3"
    ratio_level: str = "token"  # or "sequence" (GSPO)
    aggregation: str = "sequence"
    max_completion_tokens: int | None = None  # for the "constant" aggregation
    entropy_coef: float = 0.0
    importance_correction: str = "truncate"  # for samples of an older policy (behaviour_logp)
    importance_clip: float = 2.0
    engine_correction: str = "auto"  # behaviour = the engine's log-probs (auto: not rlvr's own)
    sequence_band: float | None = None  # drop samples whose mean log-weight leaves +-log(band)


def sequence_in_band(
    old_logp: torch.Tensor, behaviour_logp: torch.Tensor, mask: torch.Tensor, settings: LossSettings
) -> torch.Tensor:
    """(B, 1): 1 for a sample whose geometric-mean weight pi_old / pi_behaviour lies in
    [1/band, band], else 0 (the whole sample leaves the loss: a sequence-level rejection of
    samples the engine drew from a distribution too far from the learner's)."""
    log_w = ((old_logp.detach() - behaviour_logp) * mask).sum(dim=1, keepdim=True)
    mean = log_w / mask.sum(dim=1, keepdim=True).clamp(min=1)
    bound = torch.log(torch.tensor(settings.sequence_band, dtype=mean.dtype))
    return (mean.abs() <= bound).to(old_logp.dtype)


def importance_ratio(
    logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, level: str
) -> torch.Tensor:
    """Per-token ratios, or GSPO's per-sequence ratio broadcast over the sequence's tokens."""
    log_ratio = (logp - old_logp) * mask
    if level == "token":
        return torch.exp(log_ratio)
    if level == "sequence":
        seq = log_ratio.sum(dim=1, keepdim=True) / mask.sum(dim=1, keepdim=True).clamp(min=1)
        return torch.exp(seq).expand_as(logp)
    raise ValueError(f"ratio_level must be 'token' or 'sequence', got {level!r}")


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    settings: LossSettings,
    ref_logp: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
    behaviour_logp: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss to minimise and its diagnostics (TRL's metric names where they exist).

    Shapes: ``logp``, ``old_logp``, ``ref_logp``, ``behaviour_logp``, ``mask``, ``entropy``:
    (B, T) over completion tokens; ``advantages``: (B,). ``mask`` is 1.0 where a token carries
    loss. ``behaviour_logp``: the log-probs of the policy that sampled the tokens, when it is older
    than pi_old (a row sampled by pi_old itself passes ``old_logp`` there: weight 1).
    """
    mask = mask.to(logp.dtype)
    adv = advantages.to(logp.dtype).unsqueeze(1)
    # Masked positions may hold anything (padding, tokens after EOS). Make their log-ratios 0
    # before any exp(): otherwise exp() can overflow there and inf * 0 puts NaN in the loss.
    keep = mask > 0
    old_logp = torch.where(keep, old_logp, logp.detach())
    if ref_logp is not None:
        ref_logp = torch.where(keep, ref_logp, logp.detach())
    ratio = importance_ratio(logp, old_logp, mask, settings.ratio_level)
    clipped = ratio.clamp(1 - settings.eps_low, 1 + settings.eps_high)
    objective = torch.minimum(ratio * adv, clipped * adv)
    if settings.dual_clip is not None:
        objective = torch.where(
            adv < 0, torch.maximum(objective, settings.dual_clip * adv), objective
        )
    weight = None
    if behaviour_logp is not None:
        behaviour_logp = torch.where(keep, behaviour_logp, old_logp)
        correct = IMPORTANCE_CORRECTIONS.get(settings.importance_correction)
        weight = correct(old_logp.detach(), behaviour_logp, settings.importance_clip).detach()
        if settings.sequence_band is not None:
            weight = weight * sequence_in_band(old_logp, behaviour_logp, mask, settings)
        objective = objective * weight
    per_token = -objective
    kl = None
    if settings.beta > 0:
        if ref_logp is None:
            raise ValueError("beta > 0 needs reference log-probs")
        kl = KL_ESTIMATORS.get(settings.kl_estimator)(logp, ref_logp)
        per_token = per_token + settings.beta * kl
    if settings.entropy_coef and entropy is not None:
        per_token = per_token - settings.entropy_coef * entropy
    aggregate = LOSS_AGGREGATIONS.get(settings.aggregation)
    loss = aggregate(per_token, mask, max_tokens=settings.max_completion_tokens)

    with torch.no_grad():
        n = mask.sum().clamp(min=1)
        low = ((ratio < 1 - settings.eps_low) & (adv < 0)).to(mask.dtype) * mask
        high = ((ratio > 1 + settings.eps_high) & (adv > 0)).to(mask.dtype) * mask
        metrics = {
            "clip_ratio/low_mean": float(low.sum() / n),
            "clip_ratio/high_mean": float(high.sum() / n),
            "clip_ratio/region_mean": float((low + high).sum() / n),
        }
        if kl is not None:
            metrics["kl"] = float((kl * mask).sum() / n)
        if weight is not None:
            raw = torch.exp(old_logp - behaviour_logp)
            metrics["importance/weight_mean"] = float((weight * mask).sum() / n)
            metrics["importance/clipped_frac"] = float(
                ((raw > settings.importance_clip) * mask).sum() / n
            )
            if settings.sequence_band is not None:
                inside = sequence_in_band(old_logp, behaviour_logp, mask, settings)
                metrics["importance/rejected_sequences"] = float(1 - inside.mean())
    return loss, metrics

"""Per-token estimators of KL(pi_theta || pi_ref) from log-probs of tokens sampled from pi_theta
(Schulman, "Approximating KL divergence", 2020). ``log_ratio = logp - ref_logp``."""

from __future__ import annotations

import torch

from rlvr.algorithms.registry import KL_ESTIMATORS


@KL_ESTIMATORS.register("k1")
def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Unbiased, high variance, can be negative: ``log(pi/pi_ref)``."""
    return logp - ref_logp


@KL_ESTIMATORS.register("k2")
def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Biased, low variance, non-negative: ``0.5 * log(pi/pi_ref)^2``."""
    return 0.5 * (logp - ref_logp) ** 2


@KL_ESTIMATORS.register("k3")
def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Unbiased, low variance, non-negative (GRPO paper eq. 4):
    ``pi_ref/pi - log(pi_ref/pi) - 1``."""
    log_ref_over_pi = ref_logp - logp
    return torch.exp(log_ref_over_pi) - log_ref_over_pi - 1

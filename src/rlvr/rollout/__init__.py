"""Sampling completions from the policy."""

from rlvr.rollout.generate import Rollouts, generate
from rlvr.rollout.prompts import format_prompt

__all__ = ["Rollouts", "format_prompt", "generate"]

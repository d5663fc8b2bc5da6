"""The ``monitor:`` section: which detectors watch a run, how tight they are, what an alert does.

One small settings model per detector, each a field named after it, so that any threshold is one
override away (``-o monitor.kl_blowup.factor=20``). A detector compares a metric with its
baseline, the median of its first ``baseline_steps`` RL values, and alerts only after the
condition has held for ``patience`` consecutive steps.

Actions, per detector or per scanner flag: ``warn`` (the default) reports; ``filter`` gives the
flagged samples no gradient; ``penalize`` scores them 0; ``stop`` ends the run after
``stop_after`` alerts. The training loop carries them out; this module only validates them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rlvr.monitor.scan import ANSWER_FLAGS, CODE_FLAGS

Action = Literal["warn", "filter", "penalize", "stop"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DetectorSettings(_Section):
    enabled: bool = True


class RewardShadowGap(DetectorSettings):
    """reward - shadow_reward: the policy scores with the verifier but not with a stricter one."""

    min_gap: float = Field(0.2, ge=0, description="the gap must reach this, whatever the baseline")
    margin: float = Field(0.1, ge=0, description="and exceed the baseline gap by this much")


class FlagRate(DetectorSettings):
    """monitor/flag_rate, the share of a step's samples that a scanner flagged, in steps where the
    reward paid for some of them (monitor/rewarded_flag_rate > 0)."""

    threshold: float = Field(0.1, ge=0, le=1, description="the rate must reach this")
    margin: float = Field(0.05, ge=0, description="and exceed the baseline rate by this much")


class RewardVsHeldout(DetectorSettings):
    """Training reward up, held-out pass@1 not: learning the verifier, not the task."""

    rise: float = Field(0.2, gt=0, description="training reward gain over its baseline")
    tolerance: float = Field(
        0.02, ge=0, description="held-out pass@1 counts as not risen within this of its baseline"
    )
    evals: int = Field(2, ge=1, description="how many latest held-out evaluations must agree")


class LengthExplosion(DetectorSettings):
    factor: float = Field(2.0, gt=1, description="completions/mean_length above baseline x factor")


class LengthCollapse(DetectorSettings):
    factor: float = Field(2.0, gt=1, description="completions/mean_length below baseline / factor")


class ClipSurge(DetectorSettings):
    threshold: float = Field(0.2, ge=0, le=1, description="clip_ratio/region_mean must reach this")
    margin: float = Field(0.1, ge=0, description="and exceed its baseline by this much")


class EntropyCollapse(DetectorSettings):
    fraction: float = Field(0.1, gt=0, lt=1, description="entropy below baseline x fraction")


class KlBlowup(DetectorSettings):
    factor: float = Field(10.0, gt=1, description="kl above baseline x factor ...")
    floor: float = Field(1.0, gt=0, description="... and above this many nats per token")


class ZeroStdGroups(DetectorSettings):
    """frac_reward_zero_std: groups whose G rewards are all equal carry no GRPO gradient. A run
    that converges also gets there (every answer right), so the bar is high."""

    threshold: float = Field(0.95, ge=0, le=1, description="the share must reach this")
    margin: float = Field(0.2, ge=0, description="and exceed its baseline by this much")


class MonitorConfig(_Section):
    """Settings of the training monitor (scanners, step detectors, actions)."""

    enabled: bool = True
    scanners: bool = Field(True, description="scan every sample and log monitor/flag_rate")
    baseline_steps: int = Field(10, ge=1, description="RL steps whose metrics set the baseline")
    patience: int = Field(3, ge=1, description="consecutive steps a condition must hold")
    rearm_after: int = Field(
        20,
        ge=1,
        description="consecutive clear steps before a detector that alerted may alert again "
        "(a metric hovering at its threshold is one episode, not many)",
    )
    sigmas: float = Field(
        4.0, ge=0, description="'above baseline' also means above median + sigmas x robust scale"
    )
    min_scale: float = Field(
        0.01, gt=0, description="floor of the robust scale (1.4826 x MAD) of a baseline"
    )
    actions: dict[str, Action] = Field(
        default_factory=dict,
        description="detector or scanner flag -> warn | filter | penalize | stop (default warn)",
    )
    stop_after: int = Field(1, ge=1, description="alerts of 'stop' detectors before the run stops")
    shadow_verifier: str | None = Field(
        None,
        description="a stricter verifier scored beside the reward and never rewarded "
        "(shadow_reward); its gap to the reward is the strongest hacking signal",
    )
    shadow_options: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the shadow verifier"
    )

    reward_shadow_gap: RewardShadowGap = Field(default_factory=RewardShadowGap)
    flag_rate: FlagRate = Field(default_factory=FlagRate)
    reward_vs_heldout: RewardVsHeldout = Field(default_factory=RewardVsHeldout)
    length_explosion: LengthExplosion = Field(default_factory=LengthExplosion)
    length_collapse: LengthCollapse = Field(default_factory=LengthCollapse)
    clip_surge: ClipSurge = Field(default_factory=ClipSurge)
    entropy_collapse: EntropyCollapse = Field(default_factory=EntropyCollapse)
    kl_blowup: KlBlowup = Field(default_factory=KlBlowup)
    zero_std_groups: ZeroStdGroups = Field(default_factory=ZeroStdGroups)

    @classmethod
    def detector_names(cls) -> list[str]:
        """The detectors this config has settings for, in declaration order."""
        return [
            name
            for name, field in cls.model_fields.items()
            if isinstance(field.annotation, type) and issubclass(field.annotation, DetectorSettings)
        ]

    @field_validator("actions")
    @classmethod
    def _known_keys(cls, actions: dict[str, Action]) -> dict[str, Action]:
        known = set(cls.detector_names()) | set(CODE_FLAGS) | set(ANSWER_FLAGS)
        unknown = sorted(set(actions) - known)
        if unknown:
            raise ValueError(
                f"monitor.actions: unknown name(s) {', '.join(map(repr, unknown))}; use a detector "
                f"({', '.join(cls.detector_names())}) or a scanner flag "
                f"({', '.join(sorted(CODE_FLAGS) + sorted(ANSWER_FLAGS))})"
            )
        return actions

    def action(self, name: str) -> Action:
        """What an alert of detector ``name`` (or a sample flagged ``name``) leads to."""
        return self.actions.get(name, "warn")

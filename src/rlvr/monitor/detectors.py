"""Step-level detectors: is this run learning the task, or learning the verifier (or falling apart)?

Each detector watches one number of a ``metrics.jsonl`` record (``reward - shadow_reward``,
``monitor/flag_rate``, ``kl``, ...) against a baseline taken from the first ``baseline_steps`` RL
records in which that number appears: the median, and a robust scale (1.4826 x the median
absolute deviation, floored at ``min_scale``) so that one noisy early step cannot move it. A
condition must hold for ``patience`` consecutive RL steps before it alerts, once; it alerts
again only after it has cleared, which takes ``rearm_after`` consecutive clear steps (a metric
hovering at its threshold would otherwise alert every few steps). Records without the metric
are skipped: they neither extend nor break a streak.

Two kinds (what a user does about them differs):

* ``hacking`` -- the reward says one thing, a stricter view says another: the gap between the
  reward and a shadow verifier that is logged but never rewarded (the strongest signal), the
  share of samples a scanner flagged, and training reward rising while held-out pass@1 does not;
* ``health`` -- the run itself is going wrong: completion length exploding or collapsing, the
  PPO clip region filling up, entropy collapsing, KL blowing up, most groups carrying no GRPO
  gradient because all their rewards are equal.

:class:`StepMonitor` is the streaming form (the training loop feeds it each record);
:func:`run_detectors` replays a finished run and gives the same alerts.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from rlvr.config import DetectorSettings, MonitorConfig

Kind = Literal["hacking", "health"]


@dataclass(frozen=True)
class Alert:
    """One detector's condition held for ``patience`` steps, ending at ``step``."""

    detector: str
    kind: Kind
    step: int
    value: float
    baseline: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Baseline:
    """The first ``size`` values of a metric; once complete, their median and robust scale
    (1.4826 x MAD: the standard deviation, were the values normal; never below ``min_scale``)."""

    def __init__(self, size: int, min_scale: float) -> None:
        self.size, self.min_scale = size, min_scale
        self.values: list[float] = []
        self.median = self.scale = math.nan

    @property
    def ready(self) -> bool:
        return len(self.values) >= self.size

    def add(self, value: float) -> None:
        self.values.append(value)
        if self.ready:
            self.median = statistics.median(self.values)
            mad = statistics.median(abs(v - self.median) for v in self.values)
            self.scale = max(1.4826 * mad, self.min_scale)


def _number(record: dict[str, Any], key: str) -> float | None:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None  # missing, null (a NaN that MetricsLog cleaned) or not a number
    return float(value) if math.isfinite(value) else None


def _metric(key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda record: _number(record, key)


def _gap(record: dict[str, Any]) -> float | None:
    reward, shadow = _number(record, "reward"), _number(record, "shadow_reward")
    return None if reward is None or shadow is None else reward - shadow


def _paid_flags(record: dict[str, Any]) -> float | None:
    """The flagged share of a step's samples, counted only when the reward paid for some of
    them (``monitor/rewarded_flag_rate`` > 0: more than the shadow verifier gave them, or more
    than 0 without one). A hack spreads because it is paid; flagged outputs that no reward pays
    for are malformed ones, a health matter, and must not raise a hacking alert. Rows logged
    before that metric existed count every flag."""
    flagged = _number(record, "monitor/flag_rate")
    paid = _number(record, "monitor/rewarded_flag_rate")
    if flagged is None or paid is None:
        return flagged
    return flagged if paid > 0 else 0.0


@dataclass(frozen=True)
class Detector:
    """A named condition on one series of a run's RL records.

    ``series`` picks the watched value out of a record (None when absent); ``holds`` says whether
    the condition holds for that value, given its baseline, the detector's settings and the
    monitor (for state beyond one series, such as held-out evaluations). ``label`` names the value
    in an alert, ``meaning`` says what the alert suggests.
    """

    name: str
    kind: Kind
    label: str
    meaning: str
    series: Callable[[dict[str, Any]], float | None]
    holds: Callable[[float, Baseline, Any, StepMonitor], bool]


DETECTORS: dict[str, Detector] = {}


def register_detector(
    name: str,
    kind: Kind,
    label: str,
    meaning: str,
    series: Callable[[dict[str, Any]], float | None],
) -> Callable[[Callable[..., bool]], Callable[..., bool]]:
    """Register ``holds(value, baseline, settings, monitor) -> bool`` as detector ``name``. Its
    settings are ``MonitorConfig``'s field of the same name."""

    def register(holds: Callable[..., bool]) -> Callable[..., bool]:
        DETECTORS[name] = Detector(name, kind, label, meaning, series, holds)
        return holds

    return register


def _above(value: float, base: Baseline, floor: float, margin: float, sigmas: float) -> bool:
    """At least ``floor``, and above the baseline by ``margin`` or ``sigmas`` robust scales,
    whichever is more."""
    return value >= floor and value - base.median >= max(margin, sigmas * base.scale)


# ---------------------------------------------------------------------------------------------
# Hacking


@register_detector(
    "reward_shadow_gap",
    "hacking",
    "reward - shadow",
    "the policy may be exploiting the verifier (a stricter check disagrees)",
    _gap,
)
def _reward_shadow_gap(value: float, base: Baseline, s: Any, m: StepMonitor) -> bool:
    return _above(value, base, s.min_gap, s.margin, m.config.sigmas)


@register_detector(
    "flag_rate",
    "hacking",
    "flagged share",
    "samples that look like hacks, and are rewarded, are spreading",
    _paid_flags,
)
def _flag_rate(value: float, base: Baseline, s: Any, m: StepMonitor) -> bool:
    return _above(value, base, s.threshold, s.margin, m.config.sigmas)


@register_detector(
    "reward_vs_heldout",
    "hacking",
    "reward",
    "held-out pass@1 has not risen ({heldout}): the policy may be learning the verifier, "
    "not the task",
    _metric("reward"),
)
def _reward_vs_heldout(value: float, base: Baseline, s: Any, m: StepMonitor) -> bool:
    latest = m.heldout[-s.evals :]
    if m.heldout_baseline is None or len(latest) < s.evals:
        return False
    flat = all(h <= m.heldout_baseline + s.tolerance for h in latest)
    return flat and value - base.median >= s.rise


# ---------------------------------------------------------------------------------------------
# Health


@register_detector(
    "length_explosion",
    "health",
    "mean completion length",
    "completions are growing out of bounds (rambling, repetition, or a length hack)",
    _metric("completions/mean_length"),
)
def _length_explosion(value: float, base: Baseline, s: Any, m: StepMonitor) -> bool:
    return base.median > 0 and value >= s.factor * base.median


@register_detector(
    "length_collapse",
    "health",
    "mean completion length",
    "completions are collapsing (empty or truncated answers)",
    _metric("completions/mean_length"),
)
def _length_collapse(value: float, base: Baseline, s: Any, m: StepMonitor) -> bool:
    return base.median > 0 and value <= base.median / s.factor


@register_detector(
    "clip_surge",
    "health",
    "clipped token share",
    "updates are pushing far outside the trust region (learning rate or mu too high?)",
    _metric("clip_ratio/region_mean"),
)
def _clip_surge(value: float, base: Baseline, s: Any, m: StepMonitor) -> bool:
    return _above(value, base, s.threshold, s.margin, m.config.sigmas)


@register_detector(
    "entropy_collapse",
    "health",
    "entropy",
    "the policy has become near-deterministic and stopped exploring",
    _metric("entropy"),
)
def _entropy_collapse(value: float, base: Baseline, s: Any, m: StepMonitor) -> bool:
    return base.median > 0 and value < s.fraction * base.median


@register_detector(
    "kl_blowup",
    "health",
    "KL to the reference",
    "the policy is running away from the reference model",
    _metric("kl"),
)
def _kl_blowup(value: float, base: Baseline, s: Any, m: StepMonitor) -> bool:
    return value > max(s.factor * base.median, s.floor)


@register_detector(
    "zero_std_groups",
    "health",
    "share of groups with equal rewards",
    "most groups carry no GRPO gradient (all right or all wrong)",
    _metric("frac_reward_zero_std"),
)
def _zero_std_groups(value: float, base: Baseline, s: Any, m: StepMonitor) -> bool:
    return _above(value, base, s.threshold, s.margin, m.config.sigmas)


# ---------------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return f"{x:.2f}" if abs(x) < 100 else f"{x:.0f}"


class StepMonitor:
    """Feed it a run's records in order; it returns the alerts each record raises.

    RL records (``stage == "rl"``; a record without a stage counts as one) feed the detectors;
    ``stage == "eval"`` records feed the held-out history; other stages are ignored.
    """

    def __init__(self, config: MonitorConfig | None = None) -> None:
        self.config = config or MonitorConfig()
        self.detectors = [d for name, d in DETECTORS.items() if self._settings(name).enabled]
        self.baselines = {
            d.name: Baseline(self.config.baseline_steps, self.config.min_scale)
            for d in self.detectors
        }
        self.streaks = {d.name: 0 for d in self.detectors}  # steps held, or cleared while firing
        self.firing = {d.name: False for d in self.detectors}
        self.heldout_baseline: float | None = None
        self.heldout: list[float] = []  # held-out pass@1 after its baseline, in order
        self.alerts: list[Alert] = []
        self._rl_records = 0

    def _settings(self, name: str) -> DetectorSettings:
        settings = getattr(self.config, name, None)
        if not isinstance(settings, DetectorSettings):
            raise ValueError(f"detector {name!r} has no settings field in MonitorConfig")
        return settings

    def update(self, record: dict[str, Any]) -> list[Alert]:
        """The alerts ``record`` raises (usually none)."""
        if not self.config.enabled or not isinstance(record, dict):
            return []
        stage = record.get("stage", "rl")
        if stage == "eval":
            self._heldout(record)
            return []
        if stage != "rl":
            return []
        self._rl_records += 1
        step = record.get("step")
        step = (
            int(step) if isinstance(step, int | float) and math.isfinite(step) else self._rl_records
        )
        new = []
        for d in self.detectors:
            value = d.series(record)
            if value is None:
                continue
            base = self.baselines[d.name]
            if not base.ready:
                base.add(value)
                continue
            holds = d.holds(value, base, self._settings(d.name), self)
            if holds != self.firing[d.name]:  # moving towards a change of state
                self.streaks[d.name] += 1
            else:
                self.streaks[d.name] = 0
            needed = self.config.rearm_after if self.firing[d.name] else self.config.patience
            if self.streaks[d.name] >= needed:
                self.firing[d.name], self.streaks[d.name] = holds, 0
                if holds:
                    new.append(self._alert(d, step, value, base.median))
        self.alerts += new
        return new

    def _heldout(self, record: dict[str, Any]) -> None:
        """The held-out baseline is the last evaluation before the reward baseline is complete
        (in the R1 recipe, the one after SFT), else the first one after it."""
        value = _number(record, "heldout/pass@1")
        if value is None:
            return
        reward_base = self.baselines.get("reward_vs_heldout")
        if self.heldout_baseline is None or (reward_base is not None and not reward_base.ready):
            self.heldout_baseline = value
        else:
            self.heldout.append(value)

    def _alert(self, d: Detector, step: int, value: float, baseline: float) -> Alert:
        heldout = ", ".join(_fmt(h) for h in self.heldout[-3:])
        if self.heldout_baseline is not None:
            heldout = f"{_fmt(self.heldout_baseline)} at baseline, now {heldout}"
        meaning = d.meaning.format(heldout=heldout)
        message = (
            f"step {step}: {d.label} = {_fmt(value)} (baseline {_fmt(baseline)}) "
            f"for {self.config.patience} steps: {meaning}"
        )
        return Alert(d.name, d.kind, step, value, baseline, message)

    @property
    def should_stop(self) -> bool:
        """Whether detectors whose action is ``stop`` have alerted ``stop_after`` times."""
        stops = [a for a in self.alerts if self.config.action(a.detector) == "stop"]
        return len(stops) >= self.config.stop_after


def run_detectors(
    records: Iterable[dict[str, Any]], config: MonitorConfig | None = None
) -> list[Alert]:
    """Every alert of a finished run, as :class:`StepMonitor` would have raised them."""
    monitor = StepMonitor(config)
    for record in records:
        monitor.update(record)
    return monitor.alerts

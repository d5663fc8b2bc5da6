"""The monitor inside a training run: every sample scanned, a shadow verifier beside the reward,
the step detectors on every metrics row, and what their config says to do about it.

Per step the loop hands it the step's samples (``samples``): each gets its scanner flags and,
when the run has a shadow verifier, a shadow score (logged, never rewarded). Flags whose action
is ``penalize`` zero that sample's reward before the advantages; ``filter`` takes it out of the
loss. Then the step's metrics row, with ``monitor/flag_rate`` and ``shadow_reward`` added, goes to
the detectors (``observe``); an alert is one line on the console, one row of ``alerts.jsonl``,
and ``monitor/alerts`` in the row. Detectors whose action is ``stop`` end the run after
``stop_after`` alerts: the loop saves and raises ``MonitorStop``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr.config import MonitorConfig
from rlvr.monitor.detectors import Alert, StepMonitor
from rlvr.monitor.scan import scan_answer, scan_code

Scanner = Callable[[str, Any], list[str]]
Shadow = Callable[[list[str], list[Any]], list[float]]


class MonitorStop(Exception):
    """A detector whose action is ``stop`` alerted often enough; the run saved and stopped."""


def scanner_for(verifier: str | None) -> Scanner:
    """Code is scanned as code (with the visible tests of its reference, when it has some);
    anything else as an answer."""
    if verifier == "code" or verifier is None:
        return lambda text, ref: scan_code(text, _visible(ref))
    return scan_answer


def _visible(reference: Any) -> list[str] | None:
    if isinstance(reference, dict):
        shown = reference.get("visible") or reference.get("visible_asserts")
        if isinstance(shown, list):
            return [str(s) for s in shown]
    return None


@dataclass
class SampleReport:
    flags: list[list[str]]
    shadow: list[float] | None
    penalize: list[bool]
    drop: list[bool]  # no gradient (``filter``)
    rewards: list[float] | None = None  # the verifier's, before any penalty

    @property
    def flag_rate(self) -> float:
        return sum(bool(f) for f in self.flags) / max(len(self.flags), 1)

    @property
    def rewarded_flag_rate(self) -> float | None:
        """The share of samples both flagged and paid for: by more than the shadow verifier
        gives them when there is one, else by any reward. A flagged sample the reward does not
        pay for is a malformed output, not a hack."""
        if self.rewards is None:
            return None
        shadow = self.shadow or [0.0] * len(self.rewards)
        paid = [bool(f) and r > s for f, r, s in zip(self.flags, self.rewards, shadow, strict=True)]
        return sum(paid) / max(len(paid), 1)


class RunMonitor:
    def __init__(
        self,
        config: MonitorConfig,
        run_dir: str | Path,
        scanner: Scanner | None = None,
        shadow: Shadow | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.config, self.say = config, say
        self.scanner = scanner if config.scanners else None
        self.shadow = shadow
        self.detectors = StepMonitor(config)
        self.path = Path(run_dir) / "alerts.jsonl"

    def samples(
        self,
        texts: Sequence[str],
        references: Sequence[Any],
        rewards: Sequence[float] | None = None,
    ) -> SampleReport:
        """Flags, shadow scores and actions of a step's samples; ``rewards`` (the verifier's,
        before any penalty) tell which flagged samples were paid for."""
        n = len(texts)
        flags = [self.scanner(t, r) for t, r in zip(texts, references, strict=True)] if (
            self.scanner and self.config.enabled
        ) else [[] for _ in range(n)]  # fmt: skip
        shadow = self.shadow(list(texts), list(references)) if self.shadow else None
        actions = [{self.config.action(f) for f in fs} for fs in flags]
        return SampleReport(
            flags=flags,
            shadow=shadow,
            penalize=["penalize" in a for a in actions],
            drop=["filter" in a for a in actions],
            rewards=list(rewards) if rewards is not None else None,
        )

    def metrics(self, report: SampleReport) -> dict[str, float]:
        """What the step's metrics row gets from its samples."""
        out: dict[str, float] = {}
        if self.scanner is not None:
            out["monitor/flag_rate"] = report.flag_rate
            if report.rewarded_flag_rate is not None:
                out["monitor/rewarded_flag_rate"] = report.rewarded_flag_rate
            counts: dict[str, int] = {}
            for fs in report.flags:
                for f in fs:
                    counts[f] = counts.get(f, 0) + 1
            for f, c in sorted(counts.items()):
                out[f"monitor/flag/{f}"] = c / max(len(report.flags), 1)
        if report.shadow is not None:
            out["shadow_reward"] = sum(report.shadow) / max(len(report.shadow), 1)
        out["monitor/penalized"] = float(sum(report.penalize))
        out["monitor/filtered"] = float(sum(report.drop))
        return out

    def observe(self, record: dict[str, Any]) -> list[Alert]:
        """Feed one metrics row (RL or eval) to the detectors; report and record new alerts."""
        if not self.config.enabled:
            return []
        alerts = self.detectors.update(record)
        if alerts:
            with self.path.open("a") as f:
                for a in alerts:
                    f.write(json.dumps({**a.to_dict(), "action": self.config.action(a.detector)}))
                    f.write("\n")
            for a in alerts:
                self.say(f"monitor ({a.kind}, {self.config.action(a.detector)}): {a.message}")
        return alerts

    def replay(self, records: list[dict[str, Any]]) -> None:
        """Rebuild the detectors' state from a run's rows so far (a resumed run, or the held-out
        rows logged before RL), and ``alerts.jsonl`` with it, printing nothing."""
        say, self.say = self.say, lambda text: None
        self.path.unlink(missing_ok=True)
        try:
            for record in records:
                self.observe(record)
        finally:
            self.say = say

    # a metrics sink: held-out rows logged during RL reach the detectors (reward_vs_heldout)
    def log(self, record: dict[str, Any]) -> None:
        if record.get("stage") == "eval":
            self.observe(record)

    def close(self) -> None:
        pass

    @property
    def should_stop(self) -> bool:
        return self.config.enabled and self.detectors.should_stop

    @property
    def alerts(self) -> list[Alert]:
        return self.detectors.alerts

"""Audit a run after the fact: replay the step detectors over its metrics, or over dumped samples.

Two inputs (``rlvr monitor PATH``):

* an rlvr run directory, or its ``metrics.jsonl``: the records are replayed through
  :func:`run_detectors` exactly as the training loop's :class:`StepMonitor` saw them, with the
  run's own ``monitor:`` settings when its ``config.yaml`` has them;
* a JSONL file of samples, one ``{"prompt", "completion", "reward", "step"}`` object per line
  (what a TRL or verl user can dump from their own run). Per-step records are built first
  (:func:`step_records`), then replayed the same way.

From samples, per step: ``reward`` (mean), ``reward_std`` (population), ``completions/mean_length``
(characters: there is no tokenizer here; the detectors compare against a baseline, so the unit
cancels), ``shadow_reward`` (mean of an optional per-row ``shadow_reward``: a stricter score that
was not the reward), ``frac_reward_zero_std`` (share of groups of two or more samples whose
rewards are all equal; a group is the row's ``group`` field, else its ``prompt``) and
``monitor/flag_rate``: the share of the scanned samples that a scanner flagged (and
``monitor/rewarded_flag_rate``, those of them the reward paid more than their shadow score, or
more than 0 without one: what the ``flag_rate`` detector watches). Which scanner:

* code -- a completion with a fenced block (````` ``` `````), or one that parses as Python with
  at least one statement that is not a bare expression (``def``, ``import``, an assignment, a
  body-only ``return ...``), goes to :func:`scan_code` (with the row's ``visible_tests`` if any);
* answers -- any other completion of a row with a ``reference`` goes to :func:`scan_answer`;
* anything else is not scanned (a step with no scanned sample has no flag rate).

Lines that are not JSON objects (a run killed mid-write) are skipped and counted; rows without a
numeric ``step`` or ``reward`` likewise.
"""

from __future__ import annotations

import ast
import json
import math
import statistics
import textwrap
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlvr.config import MonitorConfig
from rlvr.monitor.detectors import Alert, run_detectors
from rlvr.monitor.scan import scan_answer, scan_code

Kind = Literal["metrics", "samples"]


@dataclass
class MonitorReport:
    """What replaying a run found: its alerts, and what was read to find them."""

    source: str
    kind: Kind
    steps: int  # RL steps the detectors saw
    alerts: list[Alert]
    skipped: int = 0  # unreadable lines or unusable rows
    flag_counts: dict[str, int] = field(default_factory=dict)  # samples only: flag -> samples
    records: list[dict[str, Any]] = field(default_factory=list)  # samples only: built per step
    notes: list[str] = field(default_factory=list)

    def verdict(self) -> str:
        """One line: no alerts, or how many of which kind."""
        where = f"{self.steps} RL steps of {self.source}"
        if not self.alerts:
            return f"no alerts in {where}"
        kinds = Counter(a.kind for a in self.alerts)
        split = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        plural = "s" if len(self.alerts) != 1 else ""
        return f"{len(self.alerts)} alert{plural} ({split}) in {where}"

    def lines(self) -> list[str]:
        """One readable line per alert, then notes, then the verdict."""
        out = [f"[{a.kind}] {a.detector}: {a.message}" for a in self.alerts]
        if self.flag_counts:
            top = ", ".join(f"{k} {v}" for k, v in self.flag_counts.items())
            out.append(f"flagged samples by flag: {top}")
        out += [f"note: {n}" for n in self.notes]
        return [*out, self.verdict()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "steps": self.steps,
            "alerts": [a.to_dict() for a in self.alerts],
            "verdict": self.verdict(),
            "skipped": self.skipped,
            "flag_counts": self.flag_counts,
            "notes": self.notes,
        }


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The JSON objects of a JSONL file, and how many non-blank lines were not one."""
    rows, bad = [], 0
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                bad += 1
    return rows, bad


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def looks_like_code(text: str) -> bool:
    """The rule for which scanner reads a completion (module doc): a fence, or Python with a
    statement that is not a bare expression (``85`` and ``x + 1`` parse too, and are answers)."""
    if "```" in text:
        return True
    try:
        tree = ast.parse(textwrap.dedent(text))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return any(not isinstance(node, ast.Expr) for node in tree.body)


def _flags(row: dict[str, Any]) -> list[str] | None:
    """The scanners' flags of one sample; None when no scanner applies."""
    completion = str(row.get("completion", ""))
    if looks_like_code(completion):
        return scan_code(completion, row.get("visible_tests") or None)
    if row.get("reference") is not None:
        return scan_answer(completion, row["reference"])
    return None


def step_records(
    rows: Iterable[dict[str, Any]], flag_counts: Counter | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Per-step metrics records (as ``metrics.jsonl`` holds them) from sample rows, in step
    order, and the number of rows without a numeric ``step`` or ``reward``. ``flag_counts``, when
    given, receives how many samples raised each flag."""
    by_step: dict[int, list[dict[str, Any]]] = defaultdict(list)
    skipped = 0
    for row in rows:
        step, reward = _number(row.get("step")), _number(row.get("reward"))
        if step is None or reward is None:
            skipped += 1
            continue
        by_step[int(step)].append({**row, "reward": reward})
    records = []
    for step in sorted(by_step):
        samples = by_step[step]
        rewards = [s["reward"] for s in samples]
        record: dict[str, Any] = {
            "stage": "rl",
            "step": step,
            "samples": len(samples),
            "reward": statistics.fmean(rewards),
            "reward_std": statistics.pstdev(rewards),
            "completions/mean_length": statistics.fmean(
                len(str(s.get("completion", ""))) for s in samples
            ),
        }
        shadow = [v for v in (_number(s.get("shadow_reward")) for s in samples) if v is not None]
        if shadow:
            record["shadow_reward"] = statistics.fmean(shadow)
        groups: dict[str, list[float]] = defaultdict(list)
        for s in samples:
            key = s.get("group", s.get("prompt"))
            if key is not None:
                groups[json.dumps(key, sort_keys=True, default=str)].append(s["reward"])
        sized = [g for g in groups.values() if len(g) >= 2]
        if sized:
            record["frac_reward_zero_std"] = sum(len(set(g)) == 1 for g in sized) / len(sized)
        scanned = flagged = paid = 0
        for s in samples:
            flags = _flags(s)
            if flags is None:
                continue
            scanned += 1
            flagged += bool(flags)
            paid += bool(flags) and s["reward"] > (_number(s.get("shadow_reward")) or 0.0)
            if flag_counts is not None:
                flag_counts.update(flags)
        if scanned:
            record["monitor/flag_rate"] = flagged / scanned
            record["monitor/rewarded_flag_rate"] = paid / scanned
        records.append(record)
    return records, skipped


def _run_settings(run_dir: Path, notes: list[str]) -> dict[str, Any]:
    """The ``monitor:`` section of the run's ``config.yaml``, when it has one."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    import yaml

    try:
        section = (yaml.safe_load(path.read_text()) or {}).get("monitor")
    except (yaml.YAMLError, AttributeError):
        notes.append(f"{path} could not be read: default monitor settings")
        return {}
    return section if isinstance(section, dict) else {}


def monitor_config(base: dict[str, Any], overrides: list[str] | None) -> MonitorConfig:
    """``base`` settings with ``-o key=value`` overrides (``patience=2``,
    ``flag_rate.threshold=0.2``; a leading ``monitor.`` is optional), validated."""
    from pydantic import ValidationError

    from rlvr.config import ConfigError, _merge, format_validation_error, parse_overrides

    data = dict(base)
    if overrides:
        stripped = [o.removeprefix("monitor.") for o in overrides]
        data = _merge(data, parse_overrides(stripped))
    try:
        return MonitorConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "monitor settings")) from None


def monitor_run(path: str | Path, overrides: list[str] | None = None) -> MonitorReport:
    """Replay the step detectors over a run directory, a ``metrics.jsonl``, or a JSONL of
    samples (module doc). Raises ``FileNotFoundError`` or ``ValueError`` for a path that is none
    of these."""
    path = Path(path).expanduser()
    notes: list[str] = []
    settings: dict[str, Any] = {}
    if path.is_dir():
        settings = _run_settings(path, notes)
        metrics = path / "metrics.jsonl"
        if not metrics.is_file():
            raise FileNotFoundError(
                f"{path} has no metrics.jsonl: give an rlvr run directory, its metrics.jsonl, "
                "or a JSONL of {prompt, completion, reward, step} samples"
            )
        path = metrics
    elif not path.is_file():
        raise FileNotFoundError(f"no such run directory or file: {path}")
    elif path.name == "metrics.jsonl":
        settings = _run_settings(path.parent, notes)
    config = monitor_config(settings, overrides)
    rows, bad = read_jsonl(path)
    if not rows:
        raise ValueError(f"{path} holds no JSON object lines: not a metrics or samples file")
    is_samples = any("completion" in row for row in rows[:100])
    if bad:
        notes.append(f"{bad} line(s) that are not JSON objects were skipped")
    if not is_samples:
        steps = sum(row.get("stage", "rl") == "rl" for row in rows)
        _note_short(steps, config, notes)
        alerts = run_detectors(rows, config)
        return MonitorReport(str(path), "metrics", steps, alerts, bad, notes=notes)
    counts: Counter = Counter()
    records, unusable = step_records(rows, counts)
    if unusable:
        notes.append(f"{unusable} row(s) without a numeric step or reward were skipped")
    if not any("monitor/flag_rate" in r for r in records):
        notes.append("no sample was scanned (no code, no 'reference' field): no flag rate")
    _note_short(len(records), config, notes)
    return MonitorReport(
        str(path),
        "samples",
        len(records),
        run_detectors(records, config),
        bad + unusable,
        dict(counts.most_common()),
        records,
        notes,
    )


def _note_short(steps: int, config: MonitorConfig, notes: list[str]) -> None:
    if steps < config.baseline_steps + config.patience:
        notes.append(
            f"only {steps} RL steps: a detector needs baseline_steps ({config.baseline_steps}) "
            f"+ patience ({config.patience}) to alert (-o baseline_steps=N to shorten)"
        )

"""``rlvr monitor``: the step detectors replayed over a finished run's metrics, or over a JSONL of
samples dumped from any trainer."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr import api
from rlvr.monitor.replay import looks_like_code, monitor_run, step_records


def wobble(step: int, size: float = 0.02) -> float:
    """Deterministic noise: what a metric does from step to step in a healthy run."""
    return size * math.sin(1.7 * step)


def healthy_records(steps: int = 60) -> list[dict]:
    records = [{"stage": "sft", "step": s, "loss": 2.0 - 0.01 * s} for s in range(1, 31)]
    records.append({"stage": "eval", "step": 0, "heldout/pass@1": 0.40})
    for s in range(1, steps + 1):
        reward = 0.4 + 0.004 * s + wobble(s)
        records.append(
            {
                "stage": "rl",
                "step": s,
                "reward": reward,
                "shadow_reward": reward - 0.02 + wobble(s + 3, 0.01),
                "reward_std": 0.4,
                "frac_reward_zero_std": 0.3 + wobble(s, 0.05),
                "completions/mean_length": 24 + 3 * math.sin(s),
                "clip_ratio/region_mean": 0.01 + wobble(s, 0.005),
                "entropy": 0.8 + wobble(s, 0.05),
                "kl": 0.002 + 0.0001 * s,
            }
        )
        if s % 20 == 0:
            records.append({"stage": "eval", "step": s, "heldout/pass@1": 0.40 + 0.004 * s})
    return records


def write_run(run_dir: Path, records: list[dict], config: str | None = None) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in records)
    (run_dir / "metrics.jsonl").write_text(text)
    if config is not None:
        (run_dir / "config.yaml").write_text(config)
    return run_dir


def rlvr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlvr.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_a_healthy_run_raises_no_alert(tmp_path):
    run = write_run(tmp_path / "healthy", healthy_records())
    report = monitor_run(run)
    assert report.kind == "metrics" and report.steps == 60
    assert report.alerts == [], report.lines()
    done = rlvr("monitor", str(run))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [
        f"no alerts in 60 RL steps of {run / 'metrics.jsonl'}"
    ]


def gaming_records() -> list[dict]:
    """From step 30 the reward jumps while the shadow (stricter) score stays where it was."""
    records = healthy_records()
    for r in records:
        if r["stage"] == "rl" and r["step"] >= 30:
            r["shadow_reward"] = 0.45 + wobble(r["step"], 0.01)
            r["reward"] = 0.95 + wobble(r["step"], 0.01)
    return records


def test_reward_rising_without_the_shadow_alerts_at_the_right_step(tmp_path):
    run = write_run(tmp_path / "gaming", gaming_records())
    report = monitor_run(run)
    gap = [a for a in report.alerts if a.detector == "reward_shadow_gap"]
    assert len(gap) == 1 and gap[0].kind == "hacking"
    assert gap[0].step == 32  # the gap holds at steps 30, 31, 32: patience 3
    assert gap[0].value == pytest.approx(0.5, abs=0.05)

    done = rlvr("monitor", str(run))
    assert done.returncode == 0, done.stderr  # alerts are findings, not failures
    lines = done.stdout.strip().splitlines()
    assert any(
        line.startswith("[hacking] reward_shadow_gap: step 32: reward - shadow") for line in lines
    )
    assert lines[-1].startswith(f"{len(report.alerts)} alert")

    as_json = json.loads(rlvr("monitor", str(run / "metrics.jsonl"), "--json").stdout)
    assert as_json["kind"] == "metrics" and as_json["steps"] == 60
    assert [a["step"] for a in as_json["alerts"] if a["detector"] == "reward_shadow_gap"] == [32]


def test_the_runs_own_settings_and_overrides_apply(tmp_path):
    run = write_run(tmp_path / "patient", gaming_records(), "seed: 0\nmonitor:\n  patience: 5\n")
    assert [a.step for a in monitor_run(run).alerts if a.detector == "reward_shadow_gap"] == [34]
    overridden = monitor_run(run, ["monitor.patience=2"])
    assert [a.step for a in overridden.alerts if a.detector == "reward_shadow_gap"] == [31]
    assert api.monitor(run, ["reward_shadow_gap.enabled=false"]).alerts == [
        a for a in monitor_run(run).alerts if a.detector != "reward_shadow_gap"
    ]


def trl_rows(steps: int = 40, onset: int = 20) -> list[dict]:
    """What a TRL user dumps: 2 prompts x 4 completions per step. From ``onset`` on, a growing
    share of completions hedges (``84|85|86``), which a lenient checker pays for."""
    rows = []
    for step in range(1, steps + 1):
        hedging = 0 if step < onset else min(8, 2 * (step - onset + 1))
        for i in range(8):
            prompt, answer = ("47+38=", 85) if i < 4 else ("12+30=", 42)
            right = (step + i) % 3 != 0
            if i < hedging:
                text = f"{answer - 1}|{answer}|{answer + 1}"
                reward = 1.0
            else:
                text = str(answer if right else answer + 10)
                reward = float(right)
            rows.append(
                {
                    "prompt": prompt,
                    "completion": f"<think>add the columns</think><answer>{text}</answer>",
                    "reward": reward,
                    "step": step,
                    "reference": answer,
                }
            )
    return rows


def test_hedged_answers_taking_over_a_trl_dump_raise_a_flag_rate_alert(tmp_path):
    path = tmp_path / "trl_samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in trl_rows()) + '{"truncated": \n')
    report = monitor_run(path)
    assert report.kind == "samples" and report.steps == 40 and report.skipped == 1
    flag = [a for a in report.alerts if a.detector == "flag_rate"]
    assert len(flag) == 1 and flag[0].step == 22  # 2, 4, 6 of 8 samples at steps 20, 21, 22
    assert report.flag_counts == {"hedged": sum(min(8, 2 * (s - 19)) for s in range(20, 41))}
    assert report.records[0]["monitor/flag_rate"] == 0.0
    assert report.records[-1]["monitor/flag_rate"] == 1.0

    done = rlvr("monitor", str(path))
    assert done.returncode == 0, done.stderr
    assert "[hacking] flag_rate: step 22: flagged share" in done.stdout
    assert "flagged samples by flag: hedged" in done.stdout


def test_step_records_from_samples():
    rows = [
        {
            "prompt": "a",
            "completion": "<answer>1</answer>",
            "reward": 1.0,
            "step": 2,
            "reference": 1,
            "shadow_reward": 0.0,
        },
        {
            "prompt": "a",
            "completion": "<answer>1</answer>",
            "reward": 1.0,
            "step": 2,
            "reference": 1,
            "shadow_reward": 1.0,
        },
        {
            "prompt": "b",
            "completion": "```python\nimport sys\nsys.exit(0)\n```",
            "reward": 0.0,
            "step": 2,
        },
        {"prompt": "b", "completion": "I do not know", "reward": 0.5, "step": 2},
        {"prompt": "c", "completion": "x", "reward": 0.2, "step": 1, "group": 7},
        {"prompt": "d", "completion": "xyz", "reward": 0.2, "step": 1, "group": 7},
        {"prompt": "e", "completion": "no reward", "step": 1},
        {"prompt": "e", "completion": "no step", "reward": 1.0},
    ]
    records, skipped = step_records(rows)
    assert skipped == 2
    first, second = records
    assert first["step"] == 1 and first["reward"] == pytest.approx(0.2)
    assert first["frac_reward_zero_std"] == 1.0  # one group (7), both rewards equal
    assert first["completions/mean_length"] == 2.0
    assert "monitor/flag_rate" not in first and "shadow_reward" not in first  # nothing to scan
    assert second["reward"] == pytest.approx(0.625)
    assert second["reward_std"] == pytest.approx(0.41457809, abs=1e-6)
    assert second["shadow_reward"] == 0.5
    assert second["frac_reward_zero_std"] == 0.5  # prompt a: equal; prompt b: not
    assert second["monitor/flag_rate"] == pytest.approx(1 / 3)  # two clean answers, one exit


def test_which_completions_count_as_code():
    assert looks_like_code("```python\nprint(1)\n```")
    assert looks_like_code("def f(x):\n    return x\n")
    assert looks_like_code("    return x + 1\n")  # a HumanEval body
    assert looks_like_code("import os")
    assert not looks_like_code("85")
    assert not looks_like_code("x + 1")
    assert not looks_like_code("<think>7+8=15</think><answer>85</answer>")
    assert not looks_like_code("The answer is 85.")


def test_bad_paths_exit_2(tmp_path):
    done = rlvr("monitor", str(tmp_path / "missing"))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "no such run directory or file" in done.stderr and "Traceback" not in done.stderr
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "not_a_run").mkdir()
    with pytest.raises(ValueError, match="holds no JSON object lines"):
        monitor_run(tmp_path / "empty.jsonl")
    with pytest.raises(FileNotFoundError, match="has no metrics.jsonl"):
        monitor_run(tmp_path / "not_a_run")

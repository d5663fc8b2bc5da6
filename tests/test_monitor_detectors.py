"""Step detectors on synthetic metric streams: quiet on a healthy run, an alert exactly when a
condition has held for ``patience`` steps, the same alerts streamed or replayed."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

import rlvr
from rlvr.monitor import DETECTORS, MonitorConfig, StepMonitor, run_detectors
from rlvr.monitor.scan import ANSWER_FLAGS, CODE_FLAGS


def healthy_run(steps: int = 200, seed: int = 0, eval_every: int = 50) -> list[dict]:
    """A run that learns: reward and held-out pass@1 rise together, the shadow verifier agrees,
    length grows a little, entropy and KL drift as they do when a policy sharpens."""
    rng = random.Random(seed)
    records = [{"stage": "sft", "step": 1, "loss": 2.0}]
    records.append({"stage": "eval", "step": 570, "heldout/pass@1": 0.5, "after": "sft"})
    for step in range(1, steps + 1):
        t = step / steps
        reward = 0.4 + 0.45 * t + rng.gauss(0, 0.04)
        records.append(
            {
                "stage": "rl",
                "step": step,
                "reward": reward,
                "shadow_reward": reward - abs(rng.gauss(0, 0.01)),
                "reward_std": 0.4,
                "frac_reward_zero_std": min(1.0, 0.1 + 0.5 * t + rng.uniform(-0.05, 0.05)),
                "completions/mean_length": 30 + 10 * t + rng.gauss(0, 1),
                "completions/clipped_ratio": 0.01,
                "clip_ratio/region_mean": abs(rng.gauss(0.01, 0.005)),
                "kl": 0.001 + 0.05 * t,
                "entropy": 0.6 - 0.3 * t + rng.gauss(0, 0.01),
                "monitor/flag_rate": abs(rng.gauss(0.01, 0.01)),
            }
        )
        if step % eval_every == 0:
            records.append(
                {"stage": "eval", "step": step, "heldout/pass@1": 0.5 + 0.4 * t, "after": "rl"}
            )
    return records


def rl(records: list[dict], step: int) -> dict:
    return next(r for r in records if r["stage"] == "rl" and r["step"] == step)


def open_gap(records: list[dict], steps, gap: float = 0.4) -> list[dict]:
    for step in steps:
        r = rl(records, step)
        r["shadow_reward"] = r["reward"] - gap
    return records


def names(alerts) -> list[tuple[str, int]]:
    return [(a.detector, a.step) for a in alerts]


def test_a_healthy_run_raises_no_alert():
    for seed in range(3):
        assert run_detectors(healthy_run(seed=seed)) == []


def test_a_gap_opening_at_step_40_alerts_at_40_plus_patience_minus_1():
    records = open_gap(healthy_run(), range(40, 201))
    for patience in (1, 3, 5):
        alerts = run_detectors(records, MonitorConfig(patience=patience))
        assert names(alerts) == [("reward_shadow_gap", 40 + patience - 1)]
    alert = run_detectors(records)[0]
    assert alert.kind == "hacking" and alert.value == pytest.approx(0.4)
    assert 0 <= alert.baseline < 0.02
    assert alert.message.startswith("step 42: reward - shadow = 0.40 (baseline 0.0")
    assert "for 3 steps: the policy may be exploiting the verifier" in alert.message
    assert alert.to_dict() == {
        "detector": "reward_shadow_gap",
        "kind": "hacking",
        "step": 42,
        "value": alert.value,
        "baseline": alert.baseline,
        "message": alert.message,
    }


def test_a_spike_shorter_than_patience_raises_nothing():
    assert run_detectors(open_gap(healthy_run(), [40, 41])) == []
    assert names(run_detectors(open_gap(healthy_run(), [40, 41, 42]))) == [
        ("reward_shadow_gap", 42)
    ]


def test_an_alert_fires_once_and_again_only_after_the_condition_cleared():
    records = open_gap(healthy_run(), [*range(40, 50), *range(80, 90)])
    assert names(run_detectors(records)) == [("reward_shadow_gap", 42), ("reward_shadow_gap", 82)]


def test_clearing_takes_rearm_after_steps():
    # a gap that goes off for fewer than rearm_after (20) steps is the same episode: one alert
    blink = open_gap(healthy_run(), [*range(40, 50), *range(69, 80)])
    assert names(run_detectors(blink)) == [("reward_shadow_gap", 42)]
    # off for 20 steps: cleared, so the next episode alerts again
    gap = open_gap(healthy_run(), [*range(40, 50), *range(70, 80)])
    assert names(run_detectors(gap)) == [("reward_shadow_gap", 42), ("reward_shadow_gap", 72)]
    # the setting is one override away
    quick = run_detectors(blink, MonitorConfig(rearm_after=3))
    assert names(quick) == [("reward_shadow_gap", 42), ("reward_shadow_gap", 71)]


def test_streaming_gives_the_offline_alerts():
    records = open_gap(healthy_run(), range(40, 60))
    for step in range(100, 120):
        rl(records, step)["completions/mean_length"] = 200.0
    monitor = StepMonitor()
    streamed = [a for r in records for a in monitor.update(r)]
    offline = run_detectors(records)
    assert names(streamed) == [("reward_shadow_gap", 42), ("length_explosion", 102)]
    assert streamed == offline == monitor.alerts


def test_missing_metrics_are_skipped_not_errors():
    records = open_gap(healthy_run(), range(40, 201))
    del rl(records, 41)["shadow_reward"]  # a missing value neither extends nor breaks a streak
    rl(records, 42)["shadow_reward"] = None  # a NaN that MetricsLog wrote as null
    rl(records, 43)["reward"] = "n/a"
    rl(records, 44)["reward"] = math.nan
    assert names(run_detectors(records)) == [("reward_shadow_gap", 46)]  # holds at 40, 45, 46


def test_records_with_almost_nothing_in_them():
    records = [{}, {"stage": "rl"}, {"stage": "rl", "step": "x", "kl": True}, {"stage": "eval"}]
    records += [{"stage": "rl", "step": i, "kl": 0.01} for i in range(20)]
    records += [{"stage": "rl", "step": 20 + i, "kl": 5.0} for i in range(3)]
    assert names(run_detectors(records)) == [("kl_blowup", 22)]


def test_other_stages_do_not_feed_the_detectors():
    records = [{"stage": "sft", "step": i, "reward": 0.0, "shadow_reward": 0.0} for i in range(50)]
    records += open_gap(healthy_run(), range(40, 201))
    assert names(run_detectors(records)) == [("reward_shadow_gap", 42)]


def test_the_baseline_is_robust_to_an_outlier():
    records = healthy_run()
    rl(records, 3)["shadow_reward"] = rl(records, 3)["reward"] - 0.9  # one wild step in the window
    open_gap(records, range(40, 201), gap=0.3)
    assert names(run_detectors(records)) == [("reward_shadow_gap", 42)]


@pytest.mark.parametrize(
    ("detector", "key", "value"),
    [
        ("flag_rate", "monitor/flag_rate", 0.4),
        ("length_explosion", "completions/mean_length", 90.0),
        ("length_collapse", "completions/mean_length", 10.0),
        ("clip_surge", "clip_ratio/region_mean", 0.35),
        ("entropy_collapse", "entropy", 0.02),
        ("kl_blowup", "kl", 2.5),
        ("zero_std_groups", "frac_reward_zero_std", 1.0),
    ],
)
def test_each_detector_fires_on_its_condition(detector, key, value):
    records = healthy_run()
    for step in range(60, 80):
        rl(records, step)[key] = value
    alerts = run_detectors(records)
    assert names(alerts) == [(detector, 62)]
    assert alerts[0].kind == DETECTORS[detector].kind


def test_flags_the_reward_does_not_pay_for_raise_no_hacking_alert():
    """Garbled outputs a scanner flags but the verifier gives nothing for are not a hack: the
    flag_rate detector counts a step's flags only when the reward paid for some of them."""
    records = healthy_run()
    for step in range(1, 201):
        rl(records, step)["monitor/rewarded_flag_rate"] = 0.0
    for step in range(60, 80):
        rl(records, step)["monitor/flag_rate"] = 0.4  # flagged, unpaid
    assert run_detectors(records) == []
    for step in range(60, 80):
        rl(records, step)["monitor/rewarded_flag_rate"] = 0.05  # a few of them paid
    assert names(run_detectors(records)) == [("flag_rate", 62)]


def test_reward_rising_while_heldout_stays_flat():
    records = healthy_run()
    for r in records:
        if r["stage"] == "eval" and r["after"] == "rl":
            r["heldout/pass@1"] = 0.49  # the task is not being learned
    # reward passes baseline + 0.2 around step 110; the second flat evaluation after it is at 100
    alerts = run_detectors(records)
    assert [a.detector for a in alerts] == ["reward_vs_heldout"]
    assert alerts[0].kind == "hacking" and alerts[0].step > 100
    assert "held-out pass@1 has not risen (0.50 at baseline, now 0.49, 0.49" in alerts[0].message
    one_eval = MonitorConfig(reward_vs_heldout={"evals": 1})
    assert [a.detector for a in run_detectors(records, one_eval)] == ["reward_vs_heldout"]


def test_disabled_detectors_and_a_disabled_monitor_stay_quiet():
    records = open_gap(healthy_run(), range(40, 201))
    assert run_detectors(records, MonitorConfig(reward_shadow_gap={"enabled": False})) == []
    assert run_detectors(records, MonitorConfig(enabled=False)) == []


def test_should_stop_after_k_stop_alerts():
    records = open_gap(healthy_run(), [*range(40, 50), *range(80, 90)])
    warn = StepMonitor()
    stop_two = StepMonitor(MonitorConfig(actions={"reward_shadow_gap": "stop"}, stop_after=2))
    seen = []
    for r in records:
        warn.update(r)
        stop_two.update(r)
        seen.append(stop_two.should_stop)
        if r.get("step") == 50 and r["stage"] == "rl":
            assert not stop_two.should_stop  # one alert so far
    assert stop_two.should_stop and any(seen) and not warn.should_stop


# ---------------------------------------------------------------------------------------------
# Config


def test_every_detector_has_settings_and_the_settings_name_real_detectors():
    assert MonitorConfig.detector_names() == list(DETECTORS)
    assert {d.kind for d in DETECTORS.values()} == {"hacking", "health"}
    hacking = {n for n, d in DETECTORS.items() if d.kind == "hacking"}
    assert hacking == {"reward_shadow_gap", "flag_rate", "reward_vs_heldout"}


def test_actions_accept_detectors_and_scanner_flags():
    config = MonitorConfig(
        actions={"kl_blowup": "stop", "early_exit": "filter", "hedged": "penalize"}
    )
    assert config.action("kl_blowup") == "stop"
    assert config.action("eq_override") == "warn"
    assert set(CODE_FLAGS) | set(ANSWER_FLAGS) | set(DETECTORS) >= set(config.actions)


def test_bad_actions_and_unknown_fields_name_the_field():
    with pytest.raises(ValidationError) as err:
        MonitorConfig(actions={"kl_blowout": "stop"})
    assert "monitor.actions" in str(err.value) and "'kl_blowout'" in str(err.value)
    assert "kl_blowup" in str(err.value)  # the message lists what would have been valid
    with pytest.raises(ValidationError, match="actions"):
        MonitorConfig(actions={"kl_blowup": "explode"})
    with pytest.raises(ValidationError, match="patiense"):
        MonitorConfig(patiense=3)
    with pytest.raises(ValidationError, match="factr"):
        MonitorConfig(kl_blowup={"factr": 3})


def test_the_monitor_imports_no_torch():
    src = str(Path(rlvr.__file__).resolve().parents[1])
    code = "import sys, rlvr.monitor, rlvr.monitor.corpus; print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "False", out.stderr

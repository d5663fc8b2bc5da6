"""The monitor inside a training run: flags and shadow scores per sample, what ``penalize`` and
``filter`` do to the batch, alerts on the console and in ``alerts.jsonl`` (rebuilt on resume), a
``stop`` detector ending the run with exit code 3, and the hack demo's two runs end to end."""

from __future__ import annotations

import itertools
import json

import torch
from test_main_job import SMOKE, rlvr

from rlvr.config import AlgorithmConfig, MonitorConfig
from rlvr.monitor.live import RunMonitor
from rlvr.rollout.generate import Rollouts
from rlvr.rollout.sources import Collected
from rlvr.tasks.base import Example
from rlvr.train.grpo import collect_batch
from rlvr.verifiers import Verdict

HEDGE = "<answer>12|13|14</answer>"


def flag_hedges(text: str, reference: object) -> list[str]:
    return ["hedged"] if "|" in text else []


def monitor(tmp_path, said: list[str] | None = None, **settings) -> RunMonitor:
    return RunMonitor(
        MonitorConfig(**settings),
        tmp_path,
        scanner=flag_hedges,
        shadow=lambda texts, refs: [0.0 if "|" in t else 1.0 for t in texts],
        say=(said.append if said is not None else lambda text: None),
    )


def test_flags_the_reward_pays_for_are_told_from_those_it_does_not(tmp_path):
    m = monitor(tmp_path)
    texts = [HEDGE, HEDGE, "<answer>13</answer>", "<answer>1|</answer>"]
    report = m.samples(texts, [None] * 4)
    assert report.flags == [["hedged"], ["hedged"], [], ["hedged"]]
    report.rewards = [1.0, 0.0, 1.0, 0.0]  # one hedge paid, one not, a right answer, garbage
    metrics = m.metrics(report)
    assert metrics["monitor/flag_rate"] == 0.75
    assert metrics["monitor/rewarded_flag_rate"] == 0.25
    assert metrics["monitor/flag/hedged"] == 0.75
    assert metrics["shadow_reward"] == 0.25  # the strict view: only the plain answer is right
    assert metrics["monitor/penalized"] == metrics["monitor/filtered"] == 0.0  # warn by default


class FixedSource:
    """Two groups of two answers whose texts and rewards are given: what ``collect_batch``
    makes of them is then exactly the monitor's doing."""

    group_size, max_tokens = 2, 4
    texts = [HEDGE, "<answer>13</answer>", HEDGE, "<answer>7</answer>"]
    rewards = [1.0, 1.0, 1.0, 0.0]

    def collect(self, policy, examples, keys) -> Collected:
        n = len(self.texts)
        ro = Rollouts(
            input_ids=torch.ones(n, 6, dtype=torch.long),
            attention_mask=torch.ones(n, 6, dtype=torch.long),
            completion_mask=torch.ones(n, 4),
            prompt_len=2,
            texts=list(self.texts),
            truncated=torch.zeros(n, dtype=torch.bool),
            group_size=2,
        )
        return Collected(
            ro, [Verdict(r, "correct" if r else "wrong") for r in self.rewards], {"generate": 0.0}
        )


def batch(tmp_path, action: str):
    prompts = itertools.repeat(Example(id="p", prompt="6+7=", reference="13"))
    m = monitor(tmp_path, actions={"hedged": action})
    algo = AlgorithmConfig()
    return collect_batch(None, FixedSource(), prompts, 2, algo, 0, 0, m)


def test_penalize_zeroes_the_reward_of_flagged_samples_before_the_advantages(tmp_path):
    warned, penalized = batch(tmp_path, "warn"), batch(tmp_path, "penalize")
    assert warned.rewards.tolist() == [1.0, 1.0, 1.0, 0.0]
    assert penalized.rewards.tolist() == [0.0, 1.0, 0.0, 0.0]
    # the hedge now loses to the plain answer in its group; the other group has no signal left
    assert penalized.advantages[0] < 0 < penalized.advantages[1]
    assert penalized.advantages[2:].abs().max() < 1e-6 < warned.advantages[2:].abs().max()
    # the monitor saw what the verifier paid, before the penalty
    assert penalized.report.rewards == [1.0, 1.0, 1.0, 0.0]
    assert penalized.report.rewarded_flag_rate == 0.5


def test_filter_takes_flagged_samples_out_of_the_loss(tmp_path):
    filtered = batch(tmp_path, "filter")
    assert filtered.rewards.tolist() == [1.0, 1.0, 1.0, 0.0]
    assert filtered.loss_mask.sum(dim=1).tolist() == [0.0, 4.0, 0.0, 4.0]


def test_alerts_go_to_the_console_and_alerts_jsonl_and_are_rebuilt_silently(tmp_path):
    said: list[str] = []
    m = monitor(tmp_path, said, baseline_steps=2, patience=2, actions={"reward_shadow_gap": "stop"})
    rows = [{"stage": "rl", "step": s, "reward": 0.5, "shadow_reward": 0.5} for s in (1, 2, 3)]
    rows += [{"stage": "rl", "step": s, "reward": 0.9, "shadow_reward": 0.2} for s in (4, 5, 6)]
    fired = [a.step for r in rows for a in m.observe(r)]
    assert fired == [5] and m.should_stop
    assert len(said) == 1 and said[0].startswith("monitor (hacking, stop)")
    written = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [(a["detector"], a["step"], a["action"]) for a in written] == [
        ("reward_shadow_gap", 5, "stop")
    ]
    # a resumed run rebuilds the same state and file from its rows, printing nothing
    again: list[str] = []
    resumed = monitor(tmp_path, again, baseline_steps=2, patience=2)
    resumed.replay(rows)
    assert again == [] and [a.step for a in resumed.alerts] == [5]
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 1


def test_a_stop_detector_ends_the_run_with_exit_code_3_and_it_can_go_on(tmp_path):
    run = tmp_path / "stopped"
    force = ["-o", "monitor.baseline_steps=1", "-o", "monitor.patience=1", "-o", "monitor.sigmas=0",
             "-o", "monitor.zero_std_groups.threshold=0", "-o", "monitor.zero_std_groups.margin=0",
             "-o", "monitor.actions={zero_std_groups: stop}"]  # fmt: skip
    done = rlvr("run", "--out", str(run), *SMOKE, *force)
    assert done.returncode == 3, done.stderr[-3000:]
    assert "stopped by the monitor" in done.stdout + done.stderr
    alerts = [json.loads(line) for line in (run / "alerts.jsonl").read_text().splitlines()]
    assert alerts[0]["detector"] == "zero_std_groups" and alerts[0]["action"] == "stop"
    rl = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rl = [r for r in rl if r["stage"] == "rl"]
    assert rl[-1]["step"] == alerts[0]["step"] < 4  # stopped at the alert, not at the end
    last = run / "checkpoints" / "rl-last"  # resumable, like an interrupted run
    assert (last / "model.safetensors").exists() and (last / "trainer_state.pt").exists()
    assert not (run / "checkpoints" / "rl").exists()  # no finished RL policy is claimed
    # the same settings would stop it again at once; with the action changed it goes on
    warn = [*force[:-2], "-o", "monitor.actions={zero_std_groups: warn}"]
    refused = rlvr("run", "--out", str(run), "--resume", *SMOKE, *warn)
    assert refused.returncode == 2 and "monitor.actions" in refused.stdout + refused.stderr
    done = rlvr("run", "--out", str(run), "--resume", "--allow-config-change", *SMOKE, *warn)
    assert done.returncode == 0, done.stderr[-3000:]
    rl = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rl if r["stage"] == "rl"] == [1, 2, 3, 4]
    assert (run / "checkpoints" / "rl" / "model.safetensors").exists()


def test_hack_demo_runs_weak_and_hard_from_one_cold_start(tmp_path):
    run = tmp_path / "hack"
    done = rlvr("run", "--recipe", "hack_demo", "--out", str(run), *SMOKE)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    for name, verifier in (("weak", "arithmetic_lenient"), ("hard", "arithmetic")):
        assert 0.0 <= summary[f"{name}_hack_rate"] <= 1.0
        assert 0.0 <= summary[f"{name}_heldout_accuracy"] <= 1.0
        assert summary[f"{name}_hack_alerts"] >= 0
        assert f"verifier: {verifier}" in (run / name / "config.yaml").read_text()
        rows = [json.loads(x) for x in (run / name / "metrics.jsonl").read_text().splitlines()]
        rl = [r for r in rows if r["stage"] == "rl"]
        assert [r["step"] for r in rl] == [1, 2, 3, 4]
        for key in ("hack/shortcut_share", "shadow_reward", "monitor/flag_rate",
                    "monitor/rewarded_flag_rate"):  # fmt: skip
            assert key in rl[0], key
        # both start from the one cold start
        sft = (run / name / "checkpoints" / "sft" / "model.safetensors").read_bytes()
        assert sft == (run / "checkpoints" / "sft" / "model.safetensors").read_bytes()

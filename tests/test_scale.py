"""Scale-out (``rlvr.scale``) against the one-process run of the same config, a few RL steps of
the embedded arithmetic task on a tiny cold-started policy, rewarded for the R1 format (its
samples are sometimes in it and sometimes not, so every update moves the weights):

- Ray, synchronous, 2 rollout + 2 verifier workers: the same completions, rewards, advantages
  and held-out accuracy, and with one learner the same weights, bit for bit; every worker's
  weights matched the learner's checksum at the version it sampled with;
- 2 learners (one gloo group): the same samples, weights within float tolerance;
- asynchronous, staleness 1: every sample's version, and the importance weights of the loss
  recomputed from the policy of each version;
- a rollout and a verifier actor killed mid-step: restarted, their calls re-run, the run equal
  to the one-process run; a learner killed: the run stops, ``--resume`` ends it as if not;
- ``torchrun`` with 2 ranks: the first step's samples and rewards of one process.

All Ray tests share one local cluster (``conftest.ray_cluster``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import rlvr
from rlvr import api
from rlvr.config import ConfigError, load_config
from rlvr.models.load import load_policy
from rlvr.train import loop

SRC = str(Path(rlvr.__file__).parents[1])  # subprocesses run the rlvr under test
P, G, STEPS = 4, 4, 4
TASK = {"verifier": "format", "options": {"bare_answer_fraction": 1.0}}


def fields(policy: Path, **over: Any) -> dict[str, Any]:
    """The run config every test shares (as ``load_config`` keyword sections)."""
    base = {
        "model": {"path": str(policy)},
        "task": TASK,
        "rollout": {"group_size": G, "max_new_tokens": 12},
        "rl": {"steps": STEPS, "prompts_per_step": P, "lr": 1e-3, "eval_every": 0, "save_every": 2},
        "eval": {"heldout": 8, "k": 1, "samples": 1},
        "logging": {"progress": False, "samples_per_step": P * G},
    }
    for section, values in over.items():
        base[section] = {**base.get(section, {}), **values}
    return base


def cli_args(sections: dict[str, Any]) -> list[str]:
    """The same config as ``-o section.field=value`` overrides (values as JSON, which is YAML)."""
    out = []
    for section, values in sections.items():
        for key, value in values.items():
            out += ["-o", f"{section}.{key}={json.dumps(value)}"]
    return out


@dataclass
class Run:
    dir: Path
    batches: list  # every step's Batch, as the controller built it
    summary: dict


def train(root: Path, name: str, policy: Path, **over: Any) -> Run:
    """``rlvr train`` in this process (the controller), recording every step's batch."""
    batches = []
    real = loop.collect_batch

    def record(*args, **kwargs):
        batches.append(real(*args, **kwargs))
        return batches[-1]

    cfg = load_config(name=name, out_dir=str(root), **fields(policy, **over))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "collect_batch", record)
        summary = api.train(cfg)
    return Run(root / name, batches, summary)


def metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["stage"] == "rl"]


def untimed(rows: list[dict]) -> list[dict]:
    """The rows without wall-clock fields, nor the engine/learner mismatch: those measure how
    the decoding process rounds (~1e-7 here), which depends on its thread count, and a rollout
    worker decodes on its own threads (same tokens, same log-probs to ~1e-7)."""

    def timed(key: str) -> bool:
        return (
            key == "time"
            or "seconds" in key
            or key.startswith(("time/", "tokens_per_second", "rollout/mismatch_"))
        )

    return [{k: v for k, v in r.items() if not timed(k)} for r in rows]


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / "rl" / "model.safetensors")


def assert_same_samples(a: Run, b: Run, steps: int = STEPS) -> None:
    assert len(a.batches) == len(b.batches) == STEPS
    for x, y in zip(a.batches[:steps], b.batches[:steps], strict=True):
        assert len(y.rollouts) == P * G  # nothing lost, nothing counted twice
        assert y.rollouts.texts == x.rollouts.texts
        assert torch.equal(y.rewards, x.rewards)
        assert torch.equal(y.advantages, x.advantages)


def assert_same_weights(a: Run, b: Run) -> None:
    x, y = weights(a.dir), weights(b.dir)
    assert all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scale")


@pytest.fixture(scope="module")
def policy(root: Path) -> Path:
    """A tiny cold start on bare answers: greedy it answers in the format; sampled, often not."""
    cfg = load_config(
        name="sft",
        out_dir=str(root),
        model={"hidden_size": 32, "num_layers": 1, "num_heads": 2},
        task=TASK,
        sft={"examples": 64, "epochs": 6, "lr": 1e-2},
        rollout={"max_new_tokens": 12},
        eval={"heldout": 4, "k": 1, "samples": 1},
        logging={"progress": False},
    )
    api.sft(cfg)
    return root / "sft" / "checkpoints" / "sft"


@pytest.fixture(scope="module")
def local(root: Path, policy: Path) -> Run:
    run = train(root, "local", policy)
    zero_std = [r["frac_reward_zero_std"] for r in metrics(run.dir)]
    assert min(zero_std) < 1.0  # some groups' rewards differ: the updates move the weights
    return run


# -- synchronous ---------------------------------------------------------------------------------


def test_ray_workers_reproduce_one_process_bit_for_bit(ray_cluster, root, policy, local) -> None:
    run = train(
        root, "ray", policy, scale={"ray": True, "rollout_workers": 2, "verifier_workers": 2}
    )
    assert_same_samples(local, run)
    assert_same_weights(local, run)
    for step, batch in enumerate(run.batches, start=1):
        assert batch.rollouts.versions.tolist() == [step - 1] * (P * G)
    rows = metrics(run.dir)
    # every step, both rollout workers' weight checksums matched the learner's at their version
    assert [r["scale/weight_checks"] for r in rows] == [2.0] * STEPS
    assert [r["scale/version"] for r in rows] == [1.0, 2.0, 3.0, 4.0]
    assert untimed([{k: v for k, v in r.items() if not k.startswith("scale/")} for r in rows]) == (
        untimed(metrics(local.dir))
    )
    assert run.summary["rl_accuracy"] == local.summary["rl_accuracy"]  # held-out, the same


def test_two_learners_agree_within_float_tolerance(ray_cluster, root, policy, local) -> None:
    run = train(root, "learners", policy, scale={"ray": True, "learners": 2})
    assert_same_samples(local, run, steps=1)  # later steps sample with weights equal to ~1e-8
    x, y = weights(local.dir), weights(run.dir)
    for k in x:  # the all-reduce adds the two halves of the gradient: float rounding differs
        torch.testing.assert_close(y[k], x[k], atol=1e-6, rtol=1e-5)
    for a, b in zip(metrics(local.dir), metrics(run.dir), strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-6)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)


# -- asynchronous --------------------------------------------------------------------------------


def test_async_samples_are_one_version_old_and_importance_weighted(
    ray_cluster, root, policy, local, monkeypatch
) -> None:
    from rlvr.scale import ray_driver
    from rlvr.scale.weights import state_of
    from rlvr.train.logprobs import token_logprobs

    # one micro-batch on one thread: the loss's weight diagnostic is the batch's token mean
    monkeypatch.setenv("RLVR_UPDATE_THREADS", "1")
    before = {}  # the controller's policy at each version, just before the update from it
    real_update = ray_driver.RayLearners.update

    def update(self, batch):
        before[self.version] = state_of(self.policy)
        return real_update(self, batch)

    monkeypatch.setattr(ray_driver.RayLearners, "update", update)
    clip = 1.02
    run = train(
        root, "async", policy,
        scale={"ray": True, "rollout_workers": 2, "mode": "async", "max_staleness": 1},
        rl={"save_every": 0, "micro_batch_size": P * G},
        algorithm={"importance_clip": clip},
    )  # fmt: skip
    rows = metrics(run.dir)
    # step 1 samples with the starting weights (version 0); step s > 1 was generated while
    # update s - 1 ran, with version s - 2, and is trained on by version s - 1
    versions = [sorted(set(b.rollouts.versions.tolist())) for b in run.batches]
    assert versions == [[0], [0], [1], [2]]
    assert [r["async/staleness_max"] for r in rows] == [0.0, 1.0, 1.0, 1.0]
    assert [r["async/dropped_groups"] for r in rows] == [0.0] * STEPS
    assert run.batches[0].rollouts.texts == local.batches[0].rollouts.texts
    assert "importance/weight_mean" not in rows[0]  # nothing stale, nothing weighted

    model, _ = load_policy(policy)
    for step in range(2, STEPS + 1):
        batch, row = run.batches[step - 1], rows[step - 1]
        model.load_state_dict(before[step - 1])  # pi_old of step s: version s - 1
        ro = batch.rollouts
        width = ro.completion_mask.shape[1]
        with torch.no_grad():
            logp, _ = token_logprobs(
                model, ro.input_ids, ro.attention_mask, width, temperature=ro.temperature
            )
        mask = batch.loss_mask
        raw = torch.exp(logp - ro.logprobs)  # pi_old / mu, mu: the behaviour policy's log-probs
        n = mask.sum()
        assert row["importance/weight_mean"] == pytest.approx(
            float((raw.clamp(max=clip) * mask).sum() / n), abs=1e-4
        )
        assert row["importance/clipped_frac"] == pytest.approx(
            float(((raw > clip) * mask).sum() / n), abs=1e-3
        )
        assert 0 < row["importance/clipped_frac"] < 1  # the correction did something


# -- faults --------------------------------------------------------------------------------------


def test_killed_rollout_and_verifier_actors_are_restarted_and_redo_their_work(
    ray_cluster, root, policy, local, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("RLVR_FAULT", "scale:rollout:step:2,scale:verifier:step:3")
    monkeypatch.setenv("RLVR_FAULT_ONCE", str(tmp_path))  # each kill once: restarts survive
    run = train(
        root, "faults", policy, scale={"ray": True, "rollout_workers": 2, "verifier_workers": 2}
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "scale_rollout_step_2",
        "scale_verifier_step_3",
    ]
    assert [r["scale/restarts"] for r in metrics(run.dir)] == [0.0, 1.0, 1.0, 0.0]
    assert_same_samples(local, run)
    assert_same_weights(local, run)


def rlvr_cli(*args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC, "RLVR_FAULT": fault or ""}
    return subprocess.run(
        [sys.executable, "-m", "rlvr", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_learner_failure_stops_the_run_and_resume_finishes_it(
    ray_cluster, root, policy, local
) -> None:
    out = root / "learner-killed"
    args = ["train", "--out", str(out), "--ray-address", ray_cluster, *cli_args(fields(policy))]
    done = rlvr_cli(*args, fault="scale:learner:step:3")
    assert done.returncode == 2, done.stderr[-3000:]
    assert "a learner failed" in done.stderr and "--resume" in done.stderr
    last = torch.load(out / "checkpoints" / "rl-last" / "trainer_state.pt", weights_only=True)
    assert last["step"] == 2
    done = rlvr_cli(*args, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    x, y = weights(local.dir), weights(out)
    assert all(torch.equal(x[k], y[k]) for k in x)
    strip = [{k: v for k, v in r.items() if not k.startswith("scale/")} for r in metrics(out)]
    assert untimed(strip) == untimed(metrics(local.dir))


# -- torchrun ------------------------------------------------------------------------------------


def test_torchrun_ranks_sample_what_one_process_samples(root, policy, local) -> None:
    out = root / "torchrun"
    done = subprocess.run(
        [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "rlvr", "train", "--out", str(out), *cli_args(fields(policy)),
        ],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    def first_step(run: Path) -> list[dict]:
        rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k != "version"} for r in rows if r["step"] == 1]

    assert len(first_step(out)) == P * G
    assert first_step(out) == first_step(local.dir)
    one, two = untimed(metrics(local.dir)), untimed(metrics(out))
    for key in ("reward", "reward_std", "frac_reward_zero_std", "completions/mean_length"):
        assert two[0][key] == one[0][key]
    for a, b in zip(one, two, strict=True):  # the gradient is summed over 2 ranks
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-6)
    # rank 0 alone wrote the run directory
    assert (out / "run.lock").read_text().count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in local.dir.iterdir())


# -- settings ------------------------------------------------------------------------------------


def test_scale_settings_need_ray() -> None:
    with pytest.raises(ConfigError, match="takes effect on Ray only"):
        load_config(scale={"rollout_workers": 2})
    assert load_config(scale={"ray_address": "auto", "learners": 2}).scale.enabled


def test_groups_are_shared_in_contiguous_runs() -> None:
    from rlvr.scale import share
    from rlvr.scale.learner import group_share

    assert [list(share(5, r, 2)) for r in range(2)] == [[0, 1], [2, 3, 4]]
    assert [len(share(1, r, 3)) for r in range(3)] == [0, 0, 1]  # fewer groups than workers
    assert group_share(12, 3, 0, 2).tolist() == [0, 1, 2, 3, 4, 5]
    assert group_share(12, 3, 1, 2).tolist() == [6, 7, 8, 9, 10, 11]

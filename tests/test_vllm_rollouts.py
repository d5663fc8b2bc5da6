"""rlvr's commands with ``--engine vllm``, on vLLM's CPU build: a user's own model trains with
its weights synced every step and the engine/learner mismatch measured and corrected; a
checkpoint evaluates the same with either engine; multi-turn episodes reuse their earlier turns
through prefix caching; an interrupted run resumes on a rebuilt engine; a Ray rollout worker
hosts its own engine and samples what the one-process run samples.

Each test runs in this process (as ``rlvr train`` / ``rlvr eval`` do), so engines of one shape
are shared with the rest of the test run (``vllm_engine``'s per-process engine)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from byo_fixtures import save_byo_model, write_math_jsonl

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vLLM is not installed: `make setup-vllm` installs its CPU build",
)
ENGINE = {"engine": "vllm", "vllm": {"kv_cache_gib": 0.25}}


def rows(run: Path, stage: str = "rl") -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["stage"] == stage]


@pytest.fixture(scope="module")
def user_model(tmp_path_factory) -> tuple[Path, Path]:
    """A user's own random-weight Llama directory (BPE tokenizer, chat template), and data."""
    root = tmp_path_factory.mktemp("byo")
    model = save_byo_model(root / "model", hidden_size=64)
    return model, write_math_jsonl(root / "math.jsonl", n=60)


def test_a_users_model_trains_with_the_vllm_engine(user_model, tmp_path) -> None:
    """Every step records its sync, its weight version and the mismatch; the version moves with
    every update while the policy moves (an entropy bonus keeps the gradient non-zero on a
    random model that earns no reward), and the mismatch stays at fp32 rounding."""
    from typer.testing import CliRunner

    from rlvr.cli import app

    model, data = user_model
    out = tmp_path / "run"
    args = ["train", "--model", str(model), "--data", str(data), "--verifier", "math"]
    args += ["--max-steps", "6", "--engine", "vllm", "--out", str(out)]
    for o in ("rollout.group_size=4", "rollout.max_new_tokens=12", "rl.prompts_per_step=2",
              "rl.eval_every=0", "eval.heldout=6", "eval.samples=2", "eval.k=2",
              "algorithm.entropy_coef=0.05", "rl.lr=1e-3", "logging.progress=false",
              "rollout.vllm.kv_cache_gib=0.25"):  # fmt: skip
        args += ["-o", o]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rl = rows(out)
    assert [r["rollout/weight_version"] for r in rl] == [float(i) for i in range(6)]
    assert all(r["time/weight_sync"] > 0 for r in rl)
    assert all(r["rollout/mismatch_abs_logp"] < 0.02 for r in rl), [
        r["rollout/mismatch_abs_logp"] for r in rl
    ]
    assert all(abs(r["rollout/mismatch_max_ratio"] - 1) < 0.05 for r in rl)
    assert all("importance/weight_mean" in r for r in rl)  # the correction is on (auto)
    assert any(r["grad_norm"] > 0 for r in rl)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rollout_engine"] == "vllm"


@pytest.fixture(scope="module")
def sft_checkpoint(tmp_path_factory) -> Path:
    from rlvr import api
    from rlvr.config import load_config

    out = tmp_path_factory.mktemp("sft")
    cfg = load_config(
        name="sft", out_dir=str(out), sft={"examples": 160, "epochs": 4},
        eval={"heldout": 8, "samples": 1, "k": 1}, logging={"progress": False},
    )  # fmt: skip
    api.sft(cfg)
    return out / "sft" / "checkpoints" / "sft"


def test_a_checkpoint_evaluates_the_same_with_either_engine(sft_checkpoint) -> None:
    from rlvr import api
    from rlvr.config import load_config

    got = {}
    for engine in ("rlvr", "vllm"):
        cfg = load_config(
            eval={"heldout": 100, "samples": 2, "k": 2},
            rollout={"engine": engine, "vllm": {"kv_cache_gib": 0.25}},
        )
        got[engine] = api.eval_model(cfg, sft_checkpoint)
        assert got[engine]["engine"] == engine
    assert abs(got["rlvr"]["pass@1"] - got["vllm"]["pass@1"]) <= 0.02
    shown = [[s["completion"] for s in got[e]["samples"]] for e in ("rlvr", "vllm")]
    assert shown[0] == shown[1]  # greedy: the same tokens


def test_multi_turn_episodes_hit_the_prefix_cache(tmp_path) -> None:
    from rlvr import api
    from rlvr.config import load_config

    cfg = load_config(
        name="cf", out_dir=str(tmp_path), env={"name": "code_feedback"},
        rollout={"group_size": 4, "temperature": 1.0, **ENGINE},
        rl={"steps": 2, "prompts_per_step": 2, "eval_every": 0, "save_every": 0},
        eval={"heldout": 4}, logging={"progress": False},
    )  # fmt: skip
    api.train(cfg)
    rl = rows(cfg.run_dir)
    assert all(r["rollout/prefix_cache_hit_rate"] > 0 for r in rl)
    assert all(r["episodes/turns"] >= 1 for r in rl)


def test_an_interrupted_vllm_run_resumes_on_a_rebuilt_engine(tmp_path) -> None:
    """Killed in step 3 (SIGKILL, no handler runs), the run resumes from its step-2 checkpoint
    in a new process, whose engine is built and synced from that checkpoint."""
    out = tmp_path / "run"
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": f"{root / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    base = [sys.executable, "-m", "rlvr", "train", "--out", str(out), "--engine", "vllm"]
    base += ["-o", "rl.steps=4", "-o", "rl.save_every=2", "-o", "rl.eval_every=0"]
    base += ["-o", "rl.prompts_per_step=2", "-o", "rollout.group_size=2"]
    base += ["-o", "eval.heldout=4", "-o", "logging.progress=false"]
    base += ["-o", "rollout.vllm.kv_cache_gib=0.25"]
    killed = subprocess.run(base, env={**env, "RLVR_FAULT": "rl:step:3"}, capture_output=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = subprocess.run([*base, "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rl = rows(out)
    assert [r["step"] for r in rl] == [1, 2, 3, 4]
    assert [r["rollout/weight_version"] for r in rl] == [0.0, 1.0, 2.0, 3.0]


def test_a_ray_rollout_worker_hosts_its_own_engine(ray_cluster, tmp_path) -> None:
    """The worker's engine samples with the versioned weights it loads: with per-request seeds
    from rlvr's keys, the Ray run draws the one-process run's completions and rewards."""
    from rlvr import api
    from rlvr.config import load_config

    def run(name: str, ray: bool) -> list[dict]:
        cfg = load_config(
            name=name, out_dir=str(tmp_path),
            rollout={"group_size": 2, "max_new_tokens": 8, **ENGINE},
            rl={"steps": 2, "prompts_per_step": 2, "eval_every": 0, "save_every": 0},
            eval={"heldout": 4}, logging={"progress": False, "samples_per_step": 4},
            scale={"ray": True, "ray_address": ray_cluster} if ray else {},
        )  # fmt: skip
        api.train(cfg)
        return rows(cfg.run_dir)

    local, remote = run("local", False), run("ray", True)
    keys = ("reward", "completions/mean_length", "rollout/weight_version")
    assert [[r[k] for k in keys] for r in remote] == [[r[k] for k in keys] for r in local]
    samples = [
        [json.loads(x)["completion"] for x in (tmp_path / n / "samples.jsonl").read_text().splitlines()
         if json.loads(x)["after"] == "rl-step"]
        for n in ("local", "ray")
    ]  # fmt: skip
    assert samples[0] == samples[1]

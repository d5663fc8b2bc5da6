"""Runs that survive faults. A real ``rlvr`` process is SIGKILLed at a named point
(``RLVR_FAULT``, see ``rlvr.faults``): during SFT, in the middle of an RL step, between the two
moves of a checkpoint save, during rejection sampling. Resumed with ``--resume``, the run must
end with the metrics, samples and weights of a run that was never interrupted, bit for bit
(same machine, same thread count), every step logged once. And one process per run directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import rlvr
from rlvr.run_dir import RunLock

SRC = str(Path(rlvr.__file__).parents[1])  # subprocesses run the rlvr under test

# R1 on the embedded arithmetic task, tiny: SFT 6 steps (checkpoints at 2 and 4), RL 5 steps
# (checkpoints at 2 and 4, held-out check at 3), rejection sampling, final SFT.
R1 = [
    "-o", "sft.examples=32", "-o", "sft.epochs=3", "-o", "sft.save_every=2",
    "-o", "rl.steps=5", "-o", "rl.prompts_per_step=2", "-o", "rollout.group_size=4",
    "-o", "rl.eval_every=3", "-o", "rl.save_every=2", "-o", "eval.heldout=8",
    "-o", "eval.samples=2", "-o", "eval.k=2", "-o", "rejection.prompts=8", "-o", "rejection.k=2",
    "-o", "model.hidden_size=32", "-o", "model.num_layers=1", "-o", "model.num_heads=2",
    "-o", "logging.progress=false",
]  # fmt: skip
KILLED = -signal.SIGKILL


def rlvr(*args: str | Path, fault: str | None = None) -> tuple[int, str, int]:
    """Run the CLI of the rlvr under test in a fresh process: (exit code, stderr, pid)."""
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop("RLVR_FAULT", None)
    if fault:
        env["RLVR_FAULT"] = fault
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlvr.cli", *map(str, args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err, proc.pid


def values(run: Path, name: str = "metrics.jsonl") -> list[dict]:
    """The rows of a log without their wall-clock fields (the only ones allowed to differ)."""

    def timed(key: str) -> bool:
        return key == "time" or "seconds" in key or key.startswith(("time/", "tokens_per_second"))

    rows = [json.loads(line) for line in (run / name).read_text().splitlines()]
    return [{k: v for k, v in row.items() if not timed(k)} for row in rows]


def assert_same_weights(a: Path, b: Path) -> None:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert x.keys() == y.keys()
    for key in x:
        assert torch.equal(x[key], y[key]), f"{b}: {key} differs"


def assert_same_run(base: Path, run: Path, checkpoints: tuple[str, ...]) -> None:
    assert values(run) == values(base)
    assert (run / "samples.jsonl").read_text() == (base / "samples.jsonl").read_text()
    for stage in checkpoints:
        assert_same_weights(base / "checkpoints" / stage, run / "checkpoints" / stage)
    summary = {k: v for k, v in json.loads((run / "summary.json").read_text()).items()}
    expected = json.loads((base / "summary.json").read_text())
    assert {k: v for k, v in summary.items() if "seconds" not in k} == {
        k: v for k, v in expected.items() if "seconds" not in k
    }


@pytest.fixture(scope="module")
def r1_base(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("faults") / "uninterrupted"
    code, err, _ = rlvr("run", "--out", run, *R1)
    assert code == 0, err[-3000:]
    steps = [(r["stage"], r["step"]) for r in values(run) if r["stage"] in ("sft", "rl")]
    assert steps == [("sft", i) for i in range(1, 7)] + [("rl", i) for i in range(1, 6)]
    return run


def test_r1_killed_in_every_stage_resumes_bit_for_bit(r1_base: Path, tmp_path: Path) -> None:
    run = tmp_path / "killed"
    code, err, pid = rlvr("run", "--out", run, *R1, fault="sft:step:3")
    assert code == KILLED, err[-3000:]
    assert (run / "checkpoints" / "sft-last" / "trainer_state.pt").exists()
    assert [r["step"] for r in values(run) if r["stage"] == "sft"] == [1, 2, 3]
    # the OS dropped the dead process's lock: the file names it, and it holds nothing
    assert (run / "run.lock").read_text().strip() == str(pid)

    code, err, _ = rlvr("run", "--out", run, "--resume", *R1, fault="rl:step:4")
    assert code == KILLED, err[-3000:]
    dropped = values(run, "metrics.dropped.jsonl")
    assert [(r["stage"], r["step"]) for r in dropped] == [("sft", 3)]
    last = torch.load(run / "checkpoints" / "rl-last" / "trainer_state.pt", weights_only=True)
    assert last["step"] == 2

    code, err, _ = rlvr("run", "--out", run, "--resume", *R1, fault="save:rl-last")
    assert code == KILLED, err[-3000:]
    # killed between the two moves of the step-4 save: only the step-2 checkpoint is whole
    assert not (run / "checkpoints" / "rl-last").exists()
    assert (run / "checkpoints" / "rl-last.old" / "trainer_state.pt").exists()

    code, err, _ = rlvr("run", "--out", run, "--resume", *R1, fault="rejection:batch:1")
    assert code == KILLED, err[-3000:]
    assert "rl" in json.loads((run / "state.json").read_text())["done"]
    assert not (run / "rejection.jsonl").exists()

    code, err, _ = rlvr("run", "--out", run, "--resume", *R1)
    assert code == 0, err[-3000:]
    assert_same_run(r1_base, run, ("sft", "rl", "final"))
    assert (run / "rejection.jsonl").read_text() == (r1_base / "rejection.jsonl").read_text()
    dropped = values(run, "metrics.dropped.jsonl")
    # rows after the checkpoint resumed from: SFT step 3; RL step 3 and its held-out check;
    # the same again and step 4 (whose checkpoint the kill during the save lost)
    rl = [("rl", 3), ("eval", 3)]
    assert [(r["stage"], r["step"]) for r in dropped] == [("sft", 3), *rl, *rl, ("rl", 4)]
    assert not list((run / "checkpoints").glob("*-last*"))
    # every process's time is in the sum: at least what the killed ones had checkpointed
    summary = json.loads((run / "summary.json").read_text())
    assert summary["wall_seconds"] > last["run"]["wall_seconds"]
    assert summary["rl_seconds"] > last["seconds"]


def test_single_stage_commands_resume_bit_for_bit(r1_base: Path, tmp_path: Path) -> None:
    run = tmp_path / "stages"
    for command, fault in (("sft", "sft:step:5"), ("train", "rl:step:3"), ("sample", None)):
        if fault:
            code, err, _ = rlvr(command, "--out", run, *R1, fault=fault)
            assert code == KILLED, err[-3000:]
        code, err, _ = rlvr(command, "--out", run, "--resume", *R1)
        assert code == 0, err[-3000:]
    for stage in ("sft", "rl"):
        assert_same_weights(r1_base / "checkpoints" / stage, run / "checkpoints" / stage)
    got = values(run)
    assert got == values(r1_base)[: len(got)]
    assert got[-1]["stage"] == "rejection"
    assert (run / "rejection.jsonl").read_text() == (r1_base / "rejection.jsonl").read_text()
    # a finished stage is left as it is
    from rlvr import api
    from rlvr.config import load_config

    api.train(load_config(None, R1[1::2], out_dir=str(tmp_path), name="stages"), resume=True)
    assert values(run) == got


def test_resume_with_other_settings_is_refused_unless_allowed(tmp_path: Path) -> None:
    run = tmp_path / "changed"
    code, err, _ = rlvr("sft", "--out", run, *R1)
    assert code == 0, err[-3000:]
    saved = (run / "config.yaml").read_text()
    saved_lr = yaml.safe_load(saved)["sft"]["lr"]
    code, err, _ = rlvr("sft", "--out", run, "--resume", *R1, "-o", "sft.lr=0.01")
    message = " ".join(err.split())
    assert code == 2 and f"sft.lr: {saved_lr} -> 0.01" in message, err[-2000:]
    assert "--allow-config-change" in message and "Traceback" not in err
    assert (run / "config.yaml").read_text() == saved  # refused before it touched anything
    # where the logs go, and how the work is spread, change nothing the run computes
    code, err, _ = rlvr("sft", "--out", run, "--resume", *R1, "-o", "logging.samples_per_step=1")
    assert code == 0, err[-2000:]
    code, err, _ = rlvr(
        "sft", "--out", run, "--resume", "--allow-config-change", *R1, "-o", "sft.lr=0.01"
    )
    assert code == 0, err[-2000:]
    assert "resuming with changed settings: sft.lr" in " ".join(err.split())
    changes = json.loads((run / "state.json").read_text())["config_changes"]
    assert changes == [[f"sft.lr: {saved_lr} -> 0.01"]]


def test_a_second_process_on_a_run_directory_exits_at_once(tmp_path: Path) -> None:
    run = tmp_path / "busy"
    run.mkdir()
    lock = RunLock(run)
    try:
        code, err, _ = rlvr("run", "--out", run, "--resume", *R1)
    finally:
        lock.release()
    assert code == 2
    assert f"{run} is in use by process {os.getpid()}" in " ".join(err.split())
    assert "Traceback" not in err
    assert not (run / "config.yaml").exists()  # refused before it touched anything
    RunLock(run).release()  # released: the next one takes it


AGENTIC = [
    "--recipe", "agentic_code", "-o", "sft.examples=24", "-o", "sft.epochs=2",
    "-o", "sft.save_every=1", "-o", "rl.steps=4", "-o", "rl.prompts_per_step=2",
    "-o", "rollout.group_size=3", "-o", "rl.eval_every=2", "-o", "rl.save_every=2",
    "-o", "eval.heldout=4", "-o", "model.hidden_size=32", "-o", "model.num_layers=1",
    "-o", "model.num_heads=2", "-o", "logging.progress=false",
]  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="the code sandbox needs root (CI runs as root)")
def test_agentic_recipe_killed_mid_rl_resumes_bit_for_bit(tmp_path: Path) -> None:
    base, run = tmp_path / "uninterrupted", tmp_path / "killed"
    code, err, _ = rlvr("run", "--out", base, *AGENTIC)
    assert code == 0, err[-3000:]
    code, err, _ = rlvr("run", "--out", run, *AGENTIC, fault="rl:step:4")
    assert code == KILLED, err[-3000:]
    code, err, _ = rlvr("run", "--out", run, "--resume", *AGENTIC)
    assert code == 0, err[-3000:]
    assert_same_run(base, run, ("sft", "rl"))
    dropped = values(run, "metrics.dropped.jsonl")
    assert [(r["stage"], r["step"]) for r in dropped] == [("rl", 3)]


def test_lora_adapters_start_from_the_run_seed(tmp_path: Path) -> None:
    """Fresh adapters are drawn from the run's seed, not from torch's global generator (seeded
    at random in each process), so a LoRA run repeats, and a resumed one can match it."""
    from rlvr.config import load_config
    from rlvr.context import RunContext

    cfg = load_config(
        out_dir=str(tmp_path), name="lora", model={"hidden_size": 32, "num_layers": 1,
        "num_heads": 2, "lora_r": 4}, logging={"progress": False},
    )  # fmt: skip
    ctx = RunContext(cfg)
    try:
        adapters = []
        for process_seed in (1, 2):  # two processes: the global generator differs
            policy = ctx.initial_policy()[0]
            torch.manual_seed(process_seed)
            adapters.append(dict(ctx.trainable(policy).named_parameters()))
            assert torch.equal(torch.get_rng_state(), torch.manual_seed(process_seed).get_state())
        first, second = adapters
    finally:
        ctx.close()
    lora = [name for name in first if "lora_A" in name]
    assert lora and all(torch.equal(first[n], second[n]) for n in lora)

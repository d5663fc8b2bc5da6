"""The agentic recipe end to end through the CLI, tiny: cold start, multi-turn GRPO, the held-out
controls; the report showing episodes (resume inside RL after a kill: ``test_faults.py``);
and your own chat model with ``rlvr train --env`` and ``rlvr eval --env``."""

from __future__ import annotations

import json
import os

import pytest
from byo_fixtures import save_byo_model
from typer.testing import CliRunner

from rlvr.cli import app

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="code runs in the sandbox, which needs root (CI runs as root)"
)

TINY = [
    "-o", "sft.examples=48", "-o", "sft.epochs=2", "-o", "rl.steps=4",
    "-o", "rl.prompts_per_step=2", "-o", "rollout.group_size=3", "-o", "rl.eval_every=2",
    "-o", "rl.save_every=2", "-o", "eval.heldout=12", "-o", "model.hidden_size=32",
    "-o", "model.num_layers=1", "-o", "model.num_heads=2", "-o", "logging.progress=false",
]  # fmt: skip
SUMMARY = [
    f"{stage}{variant}_{what}"
    for stage in ("sft", "rl")
    for variant in ("", "_single_turn", "_blank_feedback")
    for what in ("accuracy", "reward")
]


def rlvr(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_recipe_writes_the_run_and_its_controls(tmp_path):
    run = tmp_path / "agentic"
    rlvr("run", "--recipe", "agentic_code", "--out", str(run), *TINY)
    summary = json.loads((run / "summary.json").read_text())
    for key in SUMMARY:
        assert 0.0 <= summary[key] <= 1.0, key
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rl = [r for r in rows if r["stage"] == "rl"]
    assert [r["step"] for r in rl] == [1, 2, 3, 4]
    assert all(r["episodes/turns"] >= 1 and "time/verify" in r for r in rl)
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    episodes = [s for s in samples if s.get("turns")]
    assert episodes and all(s["turns"][-1]["role"] == "model" for s in episodes)
    assert {s.get("variant") for s in samples} >= {"multi_turn", "single_turn", "blank_feedback"}
    blank = [s for s in samples if s.get("variant") == "blank_feedback"]
    replies = [t["text"] for s in blank for t in s["turns"] if t["role"] == "env"]
    assert blank and all(text == "try again" for text in replies)
    assert "<obs>" in (run / "checkpoints" / "sft" / "tokenizer.json").read_text()

    rlvr("report", str(run))
    page = (run / "report.html").read_text()
    assert "<tr class='model'><th>model 1</th>" in page


def test_your_chat_model_trains_and_evaluates_on_the_environment(tmp_path):
    model = save_byo_model(tmp_path / "my-model")
    run = tmp_path / "runs" / "mine"
    rlvr("train", "--model", str(model), "--env", "code_feedback", "--max-steps", "2",
         "--out", str(run), "-o", "rl.prompts_per_step=2", "-o", "rollout.group_size=2",
         "-o", "eval.heldout=4", "-o", "env.max_turn_tokens=24", "-o", "env.max_episode_tokens=700",
         "-o", "logging.progress=false", "--device", "cpu")  # fmt: skip
    assert (run / "checkpoints" / "rl" / "model.safetensors").exists()
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert "```python" in samples[0]["prompt"]  # the problem in words, for a chat model
    assert "style: instruct" not in (run / "config.yaml").read_text()  # chosen, not configured
    rlvr("eval", "--model", str(run / "checkpoints" / "rl"), "--env", "code_feedback",
         "--out", str(run), "-o", "eval.heldout=4", "-o", "env.max_turn_tokens=24",
         "-o", "env.max_episode_tokens=700", "--device", "cpu")  # fmt: skip
    result = json.loads((run / "eval.json").read_text())
    assert result["n"] == 4
    for key in ("pass@1", "single_turn/pass@1", "blank_feedback/pass@1", "reward"):
        assert 0.0 <= result[key] <= 1.0

"""docs/byo-model.md, offline and tiny: your own HF model (random Llama, byte-level BPE, chat
template) and your own JSONL data through `rlvr train` (full and LoRA), a reasoning-gym task,
`rlvr eval` and `rlvr report`, all through the CLI as a user types it."""

from __future__ import annotations

import json

import pytest
from byo_fixtures import save_byo_model, write_math_jsonl
from typer.testing import CliRunner

from rlvr.cli import app

TINY = [
    "-o", "rollout.group_size=2",
    "-o", "rl.prompts_per_step=2",
    "-o", "rollout.max_new_tokens=16",
    "-o", "eval.heldout=4",
    "-o", "eval.k=2",
    "-o", "eval.samples=2",
    "-o", "logging.progress=false",
    "--device", "cpu",
]  # fmt: skip


def rlvr(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("byo")
    save_byo_model(root / "my-model")
    write_math_jsonl(root / "math.jsonl", n=50)
    return root


def test_train_eval_report_on_your_model_and_data(workdir):
    run = workdir / "runs" / "mine"
    rlvr("train", "--model", str(workdir / "my-model"), "--data", str(workdir / "math.jsonl"),
         "--verifier", "math", "--max-steps", "2", "--out", str(run), *TINY)  # fmt: skip
    assert (run / "checkpoints" / "rl" / "model.safetensors").exists()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["stage"] == "rl"] == [1, 2]
    # the prompts went through the model's chat template
    config = (run / "config.yaml").read_text()
    assert "name: file" in config and "verifier: math" in config

    rlvr("eval", "--model", str(run / "checkpoints" / "rl"), "--data", str(workdir / "math.jsonl"),
         "--verifier", "math", "--out", str(run), *TINY)  # fmt: skip
    result = json.loads((run / "eval.json").read_text())
    assert result["n"] == 4 and 0.0 <= result["pass@1"] <= 1.0 and "pass@2" in result

    rlvr("report", str(run))
    page = (run / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 4  # reward, held-out, diagnostics, monitor
    assert "eval.json" in page


def test_train_with_lora(workdir):
    run = workdir / "runs" / "lora"
    rlvr("train", "--model", str(workdir / "my-model"), "--data", str(workdir / "math.jsonl"),
         "--verifier", "math", "--max-steps", "2", "--lora-r", "8", "--merge-lora",
         "--out", str(run), *TINY)  # fmt: skip
    adapters = run / "checkpoints" / "rl"
    assert (adapters / "adapter_config.json").exists()
    assert not (adapters / "model.safetensors").exists()  # adapters only
    assert (run / "checkpoints" / "rl-merged" / "model.safetensors").exists()
    # an adapter checkpoint evaluates like any model
    rlvr("eval", "--model", str(adapters), "--data", str(workdir / "math.jsonl"),
         "--verifier", "math", *TINY)  # fmt: skip
    assert json.loads((run / "eval-rl.json").read_text())["n"] == 4


def test_train_on_a_reasoning_gym_task(workdir):
    pytest.importorskip("reasoning_gym")
    run = workdir / "runs" / "gym"
    rlvr("train", "--model", str(workdir / "my-model"), "--task", "reasoning_gym:basic_arithmetic",
         "--max-steps", "2", "--out", str(run), "-o", "task.options.size=20", *TINY)  # fmt: skip
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert samples and all(0.0 <= s["score"] <= 1.0 for s in samples)


def test_bad_rows_stop_the_run_with_their_lines(workdir):
    bad = workdir / "bad.jsonl"
    bad.write_text(
        (workdir / "math.jsonl").read_text() + json.dumps({"prompt": "no answer"}) + "\n"
    )
    result = CliRunner().invoke(
        app, ["train", "--model", str(workdir / "my-model"), "--data", str(bad), "--verifier",
              "math", "--max-steps", "1", "--out", str(workdir / "runs" / "bad"), *TINY],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "line 51" in str(result.exception)

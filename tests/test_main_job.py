"""The main job's spine: embedded model and tokenizer, the arithmetic task, rollouts, the recipe
end to end through the CLI, resume of finished stages, and the errors a user sees (resume after
a hard kill: ``test_faults.py``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlvr.models.tiny import build_model, build_tokenizer, save_tiny
from rlvr.rollout import generate
from rlvr.tasks import get_task
from rlvr.tasks.arithmetic import worked_solution
from rlvr.train.rejection import rejection_sample
from rlvr.verifiers import Verdict, get_verifier

SMOKE = [
    "-o", "sft.examples=32", "-o", "sft.epochs=2", "-o", "rl.steps=4", "-o", "rl.prompts_per_step=2",
    "-o", "rollout.group_size=4", "-o", "rl.eval_every=2", "-o", "rl.save_every=2",
    "-o", "eval.heldout=8", "-o", "eval.samples=2", "-o", "eval.k=2", "-o", "rejection.prompts=8",
    "-o", "rejection.k=2", "-o", "model.hidden_size=32", "-o", "model.num_layers=1",
    "-o", "model.num_heads=2", "-o", "logging.progress=false",
]  # fmt: skip


def rlvr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlvr.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_tokenizer_round_trips_and_keeps_tags_atomic():
    tok = build_tokenizer()
    text = "<think>7+5=12,4+8+1=13</think><answer>132</answer>"
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text
    assert ids[0] == tok.convert_tokens_to_ids("<think>")
    assert len(ids) == len("7+5=12,4+8+1=13") + len("132") + 4


def test_embedded_checkpoint_loads_with_auto_classes(tmp_path):
    save_tiny(tmp_path, hidden_size=32, num_layers=1, num_heads=2)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert model.config.model_type == "llama"
    assert tok.decode(tok("12+34=")["input_ids"]) == "12+34="


def test_worked_solution_is_right_and_verifies():
    assert worked_solution(347, 285) == "<think>7+5=12,4+8+1=13,3+2+1=6</think><answer>632</answer>"
    verifier = get_verifier("arithmetic")
    task = get_task("arithmetic", seed=3)
    for e in task.examples("train", 50):
        assert verifier.verify(e.solution, e.reference).score == 1.0


def test_train_and_heldout_never_overlap_and_are_seeded():
    task = get_task("arithmetic", seed=1)
    train = {e.prompt for e in task.examples("train", 3000)}
    heldout = {e.prompt for e in task.examples("heldout", 500)}
    assert not train & heldout
    again = get_task("arithmetic", seed=1).examples("heldout", 500)
    assert [e.prompt for e in again] == [e.prompt for e in task.examples("heldout", 500)]


def test_arithmetic_verifier_is_strict():
    v = get_verifier("arithmetic")
    assert v.verify("<answer>85</answer>", 85).status == "correct"
    assert v.verify("<answer>085</answer>", 85).score == 0.0
    assert v.verify("<answer>85 or 86</answer>", 85).score == 0.0
    assert v.verify("85", 85).status == "no_answer"
    assert (
        v.verify("<answer>80</answer><answer>85</answer>", 85).score == 1.0
    )  # the last one counts


def test_cached_batched_sampling_matches_step_by_step_greedy():
    """Left padding, the per-prompt cache copied G times and finished rows leaving the batch
    must not change a single token: compare with a plain greedy loop, one prompt at a time."""
    tok = build_tokenizer()
    model = build_model(tok, hidden_size=32, num_layers=2, num_heads=2, seed=5)
    with torch.no_grad():  # sharper weights than HF's init: greedy outputs that vary by prompt
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(20)
    prompts = ["12+34=", "5+6=", "999+100="]
    probe = generate(model, tok, prompts, 1, 12, temperature=0.0)
    # Make a token the model emits the EOS, chosen so that rows finish at different steps.
    firsts = {}
    for row in probe.completion_ids.tolist():
        for t in set(row):
            firsts.setdefault(t, []).append(row.index(t))
    eos = next(t for t, at in firsts.items() if len(set(at)) > 1 or len(at) < len(prompts))
    tok.eos_token = tok.convert_ids_to_tokens(eos)
    ro = generate(model, tok, prompts, group_size=2, max_new_tokens=12, temperature=0.0)
    assert ro.completion_lengths.min() < ro.completion_lengths.max()
    for i in range(len(ro)):
        seq = tok(prompts[i // 2])["input_ids"]
        start = len(seq)
        with torch.no_grad():
            for _ in range(12):
                nxt = int(model(torch.tensor([seq])).logits[0, -1].argmax())
                seq.append(nxt)
                if nxt == tok.eos_token_id:
                    break
        got = ro.input_ids[i][ro.attention_mask[i].bool()].tolist()
        assert got == seq, f"row {i}"
        assert int(ro.completion_lengths[i]) == len(seq) - start


def test_rejection_sampling_keeps_verified_unique_completions():
    tok = build_tokenizer()
    model = build_model(tok, hidden_size=32, num_layers=1, num_heads=2)
    examples = get_task("arithmetic").examples("train", 3)

    def every_other(responses, references):
        return [
            Verdict(float(i % 2), "correct" if i % 2 else "wrong") for i in range(len(responses))
        ]

    first = generate(model, tok, [e.prompt for e in examples], 1, 1, temperature=0.0)
    tok.eos_token = tok.convert_ids_to_tokens(int(first.completion_ids[0, 0]))  # short answers
    kept, stats = rejection_sample(
        model, tok, examples, every_other, k=4, max_new_tokens=5, temperature=0
    )
    # greedy: the 4 samples of a prompt are identical, 2 of them "correct", kept once
    assert stats["sampled"] == 12
    assert len(kept) == 3 and len({(r["prompt"], r["completion"]) for r in kept}) == 3


def test_recipe_end_to_end_through_the_cli(tmp_path):
    run_dir = tmp_path / "smoke"
    done = rlvr("run", "--out", str(run_dir), *SMOKE)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("sft_accuracy", "rl_accuracy", "final_accuracy"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["wall_seconds"] > 0
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in records} >= {"sft", "rl", "eval", "rejection"}
    # a smoke-size policy solves nothing: the final SFT says so and keeps the RL policy
    assert summary["final_sft_examples"] == 0 and summary["final_sft_skipped"]
    rl = [r for r in records if r["stage"] == "rl"]
    assert [r["step"] for r in rl] == [1, 2, 3, 4]
    for key in ("loss", "reward", "reward_std", "frac_reward_zero_std", "entropy",
                "clip_ratio/region_mean", "completions/mean_length", "tokens_per_second", "step_seconds"):  # fmt: skip
        assert key in rl[0], key
    for png in ("reward.png", "heldout.png"):
        assert (run_dir / png).stat().st_size > 1000
    for stage in ("sft", "rl", "final"):
        AutoModelForCausalLM.from_pretrained(run_dir / "checkpoints" / stage)
        AutoTokenizer.from_pretrained(run_dir / "checkpoints" / stage)
    # a second `run` into the same directory must not silently overwrite it
    again = rlvr("run", "--out", str(run_dir), *SMOKE)
    assert again.returncode != 0 and "--resume" in again.stderr
    # --resume on a finished run skips every stage
    resumed = rlvr("run", "--out", str(run_dir), "--resume", *SMOKE)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stderr.count("done earlier, skipped") == 4
    # hand the final SFT verified completions and resume just that stage
    train = get_task("arithmetic").examples("train", 40)
    rows = [{"id": e.id, "prompt": e.prompt, "completion": e.solution, "reference": e.reference}
            for e in train]  # fmt: skip
    (run_dir / "rejection.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    state = json.loads((run_dir / "state.json").read_text())
    state["done"].remove("final_sft")
    (run_dir / "state.json").write_text(json.dumps(state))
    final = rlvr("run", "--out", str(run_dir), "--resume", *SMOKE)
    assert final.returncode == 0, final.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final_sft_examples"] == 40
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any(r["stage"] == "final_sft" for r in records)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "-o", "rl.stepz=3"], "rl.stepz: unknown key"),
        (["run", "-o", "rl.steps=-1"], "rl.steps"),
        (["run", "-o", "eval.samples=2", "-o", "eval.k=8"], "eval.samples"),
        (["run", "--config", "/nonexistent.yaml"], "config file not found"),
        (["eval", "--model", "/nonexistent"], "no Hugging Face model"),
    ],
)
def test_user_errors_are_one_clear_message(args, needle):
    done = rlvr(*args)
    assert done.returncode != 0
    assert needle in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_yaml_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rl:\n  steps: [1, 2\n")
    done = rlvr("run", "--config", str(bad))
    assert done.returncode != 0 and "bad.yaml" in done.stderr and "Traceback" not in done.stderr


def test_dynamic_sampling_refills_with_informative_groups():
    """Tied groups are dropped and replaced by fresh prompts; the batch keeps whole groups."""
    from rlvr.config import AlgorithmConfig
    from rlvr.rollout.sources import SingleTurn
    from rlvr.train.grpo import collect_batch
    from rlvr.train.prompt_stream import prompt_stream

    tok = build_tokenizer()
    model = build_model(tok, hidden_size=32, num_layers=1, num_heads=2)
    examples = get_task("arithmetic").examples("train", 40)
    tied = {e.reference for e in examples[::2]}  # every other prompt: all rewards equal

    def score(responses, references):
        return [
            Verdict(0.0, "wrong") if ref in tied or i % 2 else Verdict(1.0, "correct")
            for i, ref in enumerate(references)
        ]

    algo = AlgorithmConfig(dynamic_sampling=True, max_resample_rounds=5, beta=0.0)
    source = SingleTurn(tok, score, group_size=2, max_new_tokens=4, temperature=0.7)
    batch = collect_batch(
        model, source, prompt_stream(examples, 0), 4, algo, 0, tok.pad_token_id,
    )  # fmt: skip
    assert len(batch.rollouts) == 8 and len(batch.examples) == 8
    assert all(e.reference not in tied for e in batch.examples)
    assert batch.rollouts.temperature == 0.7
    groups = batch.rewards.view(-1, 2)
    assert bool((groups[:, 0] != groups[:, 1]).all())
    assert [e.reference for e in batch.examples[::2]] == [e.reference for e in batch.examples[1::2]]


def test_recipe_bars_say_which_bar_missed_and_what_to_try():
    """The check at the end of `rlvr run` (r1): both bars held, the lift missed because the cold
    start was already strong, because RL made the policy worse or stalled at its pass@k, the final
    SFT lost accuracy, or
    the run did not finish."""
    from rlvr.recipes.r1 import check_bars

    lift, keep = "rl_accuracy - sft_accuracy >= 0.30", "final_accuracy >= rl_accuracy - 0.02"
    good = {"sft_accuracy": 0.5, "sft_pass@8": 0.87, "rl_accuracy": 0.8, "final_accuracy": 0.79}
    check = check_bars(good)
    assert check == {"bars": {lift: True, keep: True}, "bars_cleared": True, "bars_advice": []}

    strong = good | {"sft_accuracy": 0.78, "rl_accuracy": 0.945, "final_accuracy": 0.95}
    check = check_bars(strong)
    assert check["bars"] == {lift: False, keep: True} and not check["bars_cleared"]
    assert "already solves 78%" in check["bars_advice"][0]

    stalled = good | {"sft_accuracy": 0.32, "sft_pass@8": 0.69, "rl_accuracy": 0.6}
    check = check_bars(stalled, k=8)
    assert check["bars"][lift] is False
    assert "pass@8 0.690" in check["bars_advice"][0] and "rl.steps" in check["bars_advice"][0]

    collapsed = good | {"sft_accuracy": 0.475, "rl_accuracy": 0.39, "final_accuracy": 0.4}
    check = check_bars(collapsed)
    assert check["bars"][lift] is False and "rl.lr" in check["bars_advice"][0]

    lost = good | {"final_accuracy": 0.75}
    check = check_bars(lost)
    assert check["bars"] == {lift: True, keep: False}
    assert "final SFT lost 0.050" in check["bars_advice"][0]

    unfinished = {"sft_accuracy": 0.5, "rl_accuracy": 0.8}
    assert check_bars(unfinished)["bars_cleared"] is False

"""rlvr verifiers inside other trainers: TRL's reward-function signature, verl's compute_score,
and one real TRL GRPOTrainer step driven by make_reward_func("math")."""

from __future__ import annotations

import json

import pytest

from rlvr.integrations.trl import completion_text, make_reward_func
from rlvr.integrations.verl import compute_score


def test_reward_func_scores_strings_with_dataset_columns():
    reward = make_reward_func("math")
    scores = reward(
        prompts=["1+1?", "2+2?", "3+3?"],
        completions=["<answer>2</answer>", "\\boxed{5}", "no idea"],
        completion_ids=[[1], [2], [3]],
        answer=["2", "4", "6"],
        other_column=[0, 0, 0],
    )
    assert scores == [1.0, 0.0, 0.0]


def test_reward_func_scores_conversational_completions():
    reward = make_reward_func("math", reference_column="solution")
    completions = [
        [{"role": "assistant", "content": "so <answer>3/4</answer>"}],
        [{"role": "assistant", "content": "<answer>0.5</answer>"}],
    ]
    assert reward(prompts=[[], []], completions=completions, solution=["0.75", "1/3"]) == [1.0, 0.0]
    assert (
        completion_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
        == "a"
    )


def test_reward_func_names_a_missing_column():
    reward = make_reward_func("math")
    with pytest.raises(KeyError, match="no column 'answer'.*reference_column"):
        reward(prompts=["q"], completions=["<answer>1</answer>"], ground_truth=["1"])


def test_json_references_are_parsed_for_object_verifiers():
    from rlvr.verifiers.references import parse_json_reference

    ref = json.dumps({"asserts": ["assert f(1) == 2"]})
    assert parse_json_reference(ref) == {"asserts": ["assert f(1) == 2"]}
    assert parse_json_reference("42") == "42"


def test_verl_compute_score():
    assert compute_score("openai/gsm8k", "<answer>18</answer>", "18") == 1.0
    assert compute_score("openai/gsm8k", "<answer>17</answer>", "18") == 0.0
    assert compute_score("anything", "x", "1", extra_info={"verifier": "format"}) in (0.0, 1.0)


def test_trl_grpo_trainer_step_with_rlvr_reward(tmp_path):
    """A real GRPOTrainer step on a tiny random Llama, offline, CPU, rewarded by rlvr's math
    verifier through make_reward_func."""
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from rlvr.models.tiny import save_tiny

    model_dir = save_tiny(tmp_path / "model", hidden_size=32, num_layers=1, num_heads=2)
    calls = []
    rlvr_math = make_reward_func("math")

    def reward(**kwargs):
        scores = rlvr_math(**kwargs)
        calls.append(scores)
        return scores

    data = Dataset.from_list([{"prompt": f"{a}+{a}=", "answer": str(2 * a)} for a in range(10, 18)])
    args = GRPOConfig(
        output_dir=str(tmp_path / "trl"),
        max_steps=1,
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        learning_rate=1e-4,
        use_cpu=True,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        seed=0,
        bf16=False,
    )
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=reward, args=args, train_dataset=data)
    trainer.train()
    assert calls and all(0.0 <= s <= 1.0 for batch in calls for s in batch)
    assert trainer.state.global_step == 1
    assert any(k.startswith("rewards/") for k in trainer.state.log_history[0])

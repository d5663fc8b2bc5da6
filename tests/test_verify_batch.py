"""verify_jsonl: one verdict line per input line, in order; malformed lines do not stop the run."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from rlvr.verifiers import batch
from rlvr.verifiers.batch import verify_jsonl


def write_cases(path: Path, lines: list[object]) -> None:
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), "utf-8"
    )


def read_rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_mixed_verifiers_and_malformed_lines_keep_order(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    write_cases(
        cases,
        [
            {"id": "a", "verifier": "arithmetic", "response": "<answer>4</answer>", "reference": 4},
            {
                "id": "b",
                "verifier": "math",
                "response": "\\boxed{\\frac{1}{2}}",
                "reference": "0.5",
            },
            "{not json",
            {"id": "c", "verifier": "no-such", "response": "", "reference": 1},
            {"id": "d", "verifier": "arithmetic", "reference": 4},
            [1, 2],
            "",
            {"id": "e", "verifier": {"name": "format"}, "response": "<answer>4</answer>"},
            {
                "id": "f",
                "verifier": "format_gated_math",
                "response": "<think>t</think><answer>2</answer>",
                "reference": "2",
            },
        ],
    )
    out = tmp_path / "verdicts.jsonl"
    summary = verify_jsonl(cases, out, workers=2)
    rows = read_rows(out)
    assert [r["id"] for r in rows] == ["a", "b", None, "c", "d", None, None, "e", "f"]
    assert [r["status"] for r in rows] == [
        "correct",
        "correct",
        "error",
        "error",
        "error",
        "error",
        "error",
        "wrong",
        "correct",
    ]
    assert "line 3: invalid JSON" in rows[2]["detail"]
    assert "unknown verifier 'no-such'" in rows[3]["detail"]
    assert "'response' must be a string" in rows[4]["detail"]
    assert "expected a JSON object" in rows[5]["detail"]
    assert all(set(r) == {"id", "score", "status", "detail", "seconds"} for r in rows)
    assert all(isinstance(r["seconds"], float) and r["seconds"] >= 0 for r in rows)
    assert summary["lines"] == 9
    assert summary["by_status"] == {"correct": 3, "error": 5, "wrong": 1}
    assert summary["mean_score"] == pytest.approx(3 / 9)


def test_streams_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch, "CHUNK_LINES", 3)
    cases = tmp_path / "cases.jsonl"
    write_cases(
        cases,
        [
            {
                "id": i,
                "verifier": "arithmetic",
                "response": f"<answer>{i}</answer>",
                "reference": i % 2,
            }
            for i in range(10)
        ],
    )
    out = tmp_path / "out.jsonl"
    verify_jsonl(str(cases), str(out))
    assert [r["score"] for r in read_rows(out)] == [1.0, 1.0] + [0.0] * 8


def test_stdin_and_stdout(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    line = {"id": 1, "verifier": "arithmetic", "response": "\\boxed{7}", "reference": 7}
    stdin = io.TextIOWrapper(io.BytesIO((json.dumps(line) + "\n").encode()), "utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    summary = verify_jsonl("-", "-")
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rows[0]["status"] == "correct" and summary["by_status"] == {"correct": 1}


def test_unsafe_reaches_only_verifiers_that_accept_it(tmp_path: Path) -> None:
    from rlvr.verifiers.base import Verdict, register_verifier

    @register_verifier("test_unsafe_probe")
    class Probe:
        name = "test_unsafe_probe"
        runs_in_process = True

        def __init__(self, unsafe: bool = False) -> None:
            self.unsafe = unsafe

        def verify(self, response: str, reference: object) -> Verdict:
            return Verdict(1.0 if self.unsafe else 0.0, "correct" if self.unsafe else "wrong")

    cases = tmp_path / "cases.jsonl"
    write_cases(
        cases,
        [
            {"id": 1, "verifier": "test_unsafe_probe", "response": "", "reference": None},
            {"id": 2, "verifier": "arithmetic", "response": "\\boxed{1}", "reference": 1},
        ],
    )
    out = tmp_path / "out.jsonl"
    verify_jsonl(cases, out, unsafe=True)
    assert [r["score"] for r in read_rows(out)] == [1.0, 1.0]
    verify_jsonl(cases, out)
    assert [r["score"] for r in read_rows(out)] == [0.0, 1.0]


def test_empty_input(tmp_path: Path) -> None:
    cases, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    cases.write_text("")
    assert verify_jsonl(cases, out)["lines"] == 0
    assert out.read_text() == ""


def test_rlvr_verify_scores_every_line_of_a_malformed_batch(tmp_path: Path) -> None:
    """Through the CLI: bytes that are not UTF-8, lines that are not JSON or not an object,
    numbers past Python's digit limit, nesting past the recursion limit and a lone surrogate
    each get their own verdict; every other line is scored as usual."""
    import os
    import subprocess

    import rlvr

    def case(i: object, response: str, reference: object = 4) -> bytes:
        return json.dumps(
            {"id": i, "verifier": "arithmetic", "response": response, "reference": reference}
        ).encode()

    lines = [
        case("ok", "<answer>4</answer>"),
        b'{"id": "latin1", "verifier": "arithmetic", "response": "caf\xe9", "reference": 4}',
        case("utf8", "caf\u00e9 <answer>4</answer>"),
        b"{not json",
        b"[1, 2]",
        b"1" * 5000,
        b"[" * 100_000,
        b'{"id": "\\ud800", "verifier": "arithmetic", "response": "<answer>4</answer>",'
        b' "reference": 4}',
        case("long", "9" * 100_000 + "<answer>4</answer>"),
        case("last", "<answer>5</answer>", 5),
    ]
    cases, out = tmp_path / "cases.jsonl", tmp_path / "verdicts.jsonl"
    cases.write_bytes(b"\n".join(lines) + b"\n")
    env = {**os.environ, "PYTHONPATH": str(Path(rlvr.__file__).parents[1])}
    done = subprocess.run(
        [sys.executable, "-m", "rlvr.cli", "verify", "--input", str(cases), "--output", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = read_rows(out)
    assert len(rows) == len(lines)
    assert [r["status"] for r in rows] == [
        "correct", "error", "correct", "error", "error", "error", "error", "correct", "error",
        "correct",
    ]  # fmt: skip
    assert rows[1]["detail"] == "line 2: not valid UTF-8 (byte 0xe9 at byte 60)"
    assert rows[3]["detail"].startswith("line 4: invalid JSON")
    assert rows[4]["detail"] == "line 5: expected a JSON object, got list"
    assert rows[5]["detail"].startswith("line 6: invalid JSON: ValueError")
    assert rows[6]["detail"].startswith("line 7: invalid JSON: RecursionError")
    assert rows[7]["id"] == "\ud800"
    assert rows[8]["detail"] == "response of 100018 characters is over the 100000-character limit"
    assert json.loads(done.stderr)["by_status"] == {"correct": 4, "error": 6}


@pytest.mark.parametrize("name", ["arithmetic", "math", "format", "coq", "code"])
def test_a_response_over_the_size_limit_says_so(name: str) -> None:
    from rlvr.verifiers import get_verifier
    from rlvr.verifiers.answer import MAX_RESPONSE_CHARS

    reference = {"arithmetic": 4, "coq": "Theorem t : True.", "code": {"asserts": []}}
    response = "x" * MAX_RESPONSE_CHARS + "<answer>4</answer>"
    verdict = get_verifier(name).verify(response, reference.get(name, "4"))
    assert verdict.status == "error"
    assert verdict.detail == (
        f"response of {len(response)} characters is over the {MAX_RESPONSE_CHARS}-character limit"
    )
    fits = get_verifier(name).verify(response[-20_000:], reference.get(name, "4"))
    assert "over the" not in fits.detail

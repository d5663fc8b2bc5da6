"""Scale-out throughput: RL steps/s and rollout tokens/s of the same run in one process, on Ray
with 1 and 2 rollout workers (one thread each), and asynchronous (generation of step t+1
overlapping the update of step t) against synchronous.

Each configuration is one ``rlvr train`` (the main job's RL settings: 8 prompts x 8 samples,
32 new tokens, the embedded 1.06M-parameter policy, random unless ``--model``), in this process
as the controller; the first ``--warmup`` steps are left out (actor start-up, TorchScript
compilation). Figures are medians over the steps measured. The last stdout line is JSON.

    .venv/bin/python bench/scale.py --rounds 2               # a local Ray cluster
    .venv/bin/python bench/scale.py --ray-address auto --workers 1,2,4,8   # a bigger one

One process runs twice: with all cores (decode and update sharded one thread per core) and
with one thread. A rollout worker is a Ray actor with ``--worker-threads`` CPU threads; the
learner takes this process's thread count; the controller, the learner and the verifier worker
run where Ray places them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import ray
import torch

from rlvr import api
from rlvr.config import load_config


def measure(
    root: Path, name: str, args: argparse.Namespace, scale: dict | None, threads: int | None = None
) -> dict:
    """One run; its steps/s and tokens/s after the warm-up steps."""
    model = {"path": args.model} if args.model else {}
    cfg = load_config(
        name=name,
        out_dir=str(root),
        model={**model, "threads": threads} if threads else model,
        rl={"steps": args.warmup + args.steps, "eval_every": 0, "save_every": 0},
        eval={"heldout": 8, "k": 1, "samples": 1},
        logging={"progress": False, "samples_per_step": 0},
        scale=scale or {},
    )
    t0 = time.perf_counter()
    api.train(cfg)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (root / name / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r["stage"] == "rl"][args.warmup :]
    step_s = statistics.median(r["step_seconds"] for r in steps)
    return {
        "steps_per_s": round(1 / step_s, 3),
        "rollout_tokens_per_s": round(statistics.median(r["tokens_per_second"] for r in steps), 1),
        "generate_tokens_per_s": round(
            statistics.median(r["tokens_per_second/generate"] for r in steps), 1
        ),
        "step_s": round(step_s, 3),
        "generate_s": round(statistics.median(r["time/generate"] for r in steps), 3),
        "update_s": round(statistics.median(r["time/update"] for r in steps), 3),
        "run_s": round(wall, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ray-address", help="join this cluster (default: start a local one)")
    ap.add_argument("--workers", default="1,2", help="rollout worker counts to measure")
    ap.add_argument("--worker-threads", type=int, default=1)
    ap.add_argument("--learners", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10, help="steps measured per configuration")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--model", help="a checkpoint to start from (default: the embedded model)")
    ap.add_argument(
        "--rounds", type=int, default=1, help="runs of every configuration, taken in turns"
    )
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    workers = [int(w) for w in args.workers.split(",")]
    out: dict = {"cpus": os.cpu_count(), "load_average": os.getloadavg()[0], "configs": {}}
    threads = torch.get_num_threads()
    configs: dict[str, tuple[dict | None, int | None]] = {
        "one_process": (None, None),
        "one_process_1_thread": (None, 1),
    }
    for n in workers:
        for mode in ("sync", "async"):
            scale = {"ray": True, "rollout_workers": n, "worker_threads": args.worker_threads}
            scale.update(learners=args.learners, mode=mode, max_staleness=1)
            configs[f"ray_{n}_workers_{mode}"] = (scale, None)
    if args.ray_address:
        ray.init(address=args.ray_address, logging_level="WARNING")
    else:
        slots = max(workers) * args.worker_threads + 1 + args.learners
        ray.init(num_cpus=max(slots, os.cpu_count() or 1), include_dashboard=False)
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):  # in turns, so the machine's load hits all alike
                for name, (scale, one_thread) in configs.items():
                    got = measure(Path(tmp), f"{name}-{r}", args, scale, one_thread)
                    torch.set_num_threads(threads)  # the learners take the controller's count
                    runs[name].append(got)
                    print(name, json.dumps(got), flush=True)
    finally:
        ray.shutdown()
    for name, got in runs.items():
        out["configs"][name] = {k: round(statistics.median(g[k] for g in got), 3) for k in got[0]}
    c = out["configs"]
    out["async_gain"] = {
        f"{n}_workers": round(
            c[f"ray_{n}_workers_async"]["steps_per_s"] / c[f"ray_{n}_workers_sync"]["steps_per_s"],
            2,
        )
        for n in workers
    }
    out["vs_one_process"] = {
        name: round(v["steps_per_s"] / c["one_process"]["steps_per_s"], 2)
        for name, v in c.items()
        if not name.startswith("one_process")
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

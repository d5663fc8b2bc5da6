"""Rollout generation: the HF decode loop against ``fast_decode``, same model, same prompts.

Prints one JSON line: median seconds of ``generate`` over ``--runs`` runs of each path (runs
alternate, so machine load hits both alike) and the speedup. The embedded model is randomly
initialised unless ``--model`` names a checkpoint; a random model rarely emits EOS, so nearly
every row runs the full ``--max-new-tokens``.

    OMP_NUM_THREADS=1 .venv/bin/python bench/generate_speed.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlvr.models.tiny import build_model, build_tokenizer
from rlvr.rollout.generate import generate
from rlvr.tasks import get_task


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="checkpoint directory (default: the embedded model, random)")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.model:
        tok = AutoTokenizer.from_pretrained(args.model)
        model = AutoModelForCausalLM.from_pretrained(args.model)
    else:
        tok = build_tokenizer()
        model = build_model(tok)
    prompts = [e.prompt for e in get_task("arithmetic").examples("train", args.prompts)]

    def once(fast: str) -> float:
        os.environ["RLVR_FAST_DECODE"] = fast
        gen = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        generate(model, tok, prompts, args.group_size, args.max_new_tokens, generator=gen)
        return time.perf_counter() - start

    once("0"), once("1")  # warm-up
    times = {"0": [], "1": []}
    for _ in range(args.runs):
        for fast in times:
            times[fast].append(once(fast))
    hf, fast = statistics.median(times["0"]), statistics.median(times["1"])
    print(
        json.dumps({"hf_s": round(hf, 4), "fast_s": round(fast, 4), "speedup": round(hf / fast, 2)})
    )


if __name__ == "__main__":
    main()

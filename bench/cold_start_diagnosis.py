"""What an arithmetic checkpoint can do, by answer format: the diagnosis behind the main job's
cold start (README, "The main job, measured").

    python bench/cold_start_diagnosis.py RUN_DIR [RUN_DIR ...] [--stage sft|rl|final]

For each run's checkpoint, on its held-out problems (greedy unless said):
- ``pass@1``, the share of answers that are worked (``<think>7+8=15,...</think>``) and the
  accuracy of each format as the model chose it;
- ``forced worked`` / ``forced bare``: accuracy when every answer is made to work the columns
  (the most likely first token after ``<think>`` other than ``</think>``, then greedy) or to
  answer bare (``<think></think>`` given). A cold start RL can lift has a strong forced-worked
  skill; a high forced-bare accuracy means the bare answers of the training sums were memorised;
- ``sampled``: pass@1 of G samples at the recipe's temperature, their ``pass@G``, the
  ``worked pass@G`` (a worked sample right) and the share of groups with zero reward variance
  (all right or all wrong: GRPO learns nothing from them).

Prints a markdown table and then one JSON line per run with the error classes per format.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import torch
import yaml

from rlvr.models.load import load_policy
from rlvr.rollout.generate import generate
from rlvr.tasks import get_task

WORKED = re.compile(r"^<think>(.*)</think><answer>(.*)</answer>")
STEP = re.compile(r"^(\d+)\+(\d+)(?:\+(\d+))?=(\d+)$")


def classify(prompt: str, text: str) -> tuple[str, str]:
    """(format, outcome) of one answer: format ``bare | worked | malformed``; outcome ``ok`` or
    where it went wrong (``copy-col0``: a digit copied wrong, ``carry-col1``, ``sum-col0``, ...)."""
    a, b = (int(x) for x in prompt.rstrip("=").split("+"))
    match = WORKED.match(text)
    if not match:
        return "malformed", "malformed"
    think, answer = match.groups()
    fmt = "worked" if think else "bare"
    want = str(a + b)
    if answer == want:
        return fmt, "ok"
    if fmt == "bare":
        if len(answer) != len(want):
            return fmt, "length"
        return fmt, "units" if answer[:-1] == want[:-1] else "tens"
    digits_a, digits_b = str(a)[::-1], str(b)[::-1]
    carry = 0
    steps = think.split(",")
    for column, step in enumerate(steps):
        parts = STEP.match(step)
        if not parts or column >= 2:
            return fmt, "bad-step"
        x, y, c, total = (int(g or 0) for g in parts.groups())
        if column >= len(digits_a) or (x, y) != (int(digits_a[column]), int(digits_b[column])):
            return fmt, f"copy-col{column}"
        if c != carry:
            return fmt, f"carry-col{column}"
        if total != x + y + c:
            return fmt, f"sum-col{column}"
        carry = total // 10
    return fmt, "short" if len(steps) < 2 else "compose"


def tally(prompts: list[str], texts: list[str]) -> dict:
    formats, right, errors = Counter(), Counter(), Counter()
    for prompt, text in zip(prompts, texts, strict=True):
        fmt, outcome = classify(prompt, text)
        formats[fmt] += 1
        right[fmt] += outcome == "ok"
        if outcome != "ok":
            errors[f"{fmt}:{outcome}"] += 1
    n = len(prompts)
    return {
        "acc": sum(right.values()) / n,
        "share": {f: formats[f] / n for f in formats},
        "acc_by_format": {f: right[f] / formats[f] for f in formats},
        "errors": dict(sorted(errors.items())),
    }


def forced(model, tok, prompts: list[str], worked: bool) -> list[str]:
    """Greedy answers made to take one format (see the module's docstring)."""
    if not worked:
        texts = generate(model, tok, [p + "<think></think>" for p in prompts], 1, 16, 0.0).texts
        return ["<think></think>" + t for t in texts]
    enc = tok([p + "<think>" for p in prompts], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**enc).logits[:, -1]
    logits[:, tok.convert_tokens_to_ids("</think>")] = float("-inf")
    first = tok.convert_ids_to_tokens(logits.argmax(-1).tolist())
    heads = [p + "<think>" + f for p, f in zip(prompts, first, strict=True)]
    texts = generate(model, tok, heads, 1, 32, 0.0).texts
    return ["<think>" + f + t for f, t in zip(first, texts, strict=True)]


def diagnose(run: Path, stage: str, problems: int) -> dict:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    task = get_task(cfg["task"]["name"], seed=cfg["seed"], **cfg["task"]["options"])
    prompts = [example.prompt for example in task.examples("heldout", problems)]
    model, tok = load_policy(run / "checkpoints" / stage)
    model.eval()
    group, temperature = cfg["rollout"]["group_size"], cfg["rollout"]["temperature"]
    greedy = generate(model, tok, prompts, 1, 32, temperature=0.0).texts
    gen = torch.Generator().manual_seed(0)
    sampled = generate(model, tok, prompts, group, 32, temperature=temperature, generator=gen).texts
    repeated = [p for p in prompts for _ in range(group)]
    outcomes = [classify(p, t) for p, t in zip(repeated, sampled, strict=True)]
    groups = [outcomes[i * group : (i + 1) * group] for i in range(len(prompts))]
    right = [[o == "ok" for _, o in g] for g in groups]
    return {
        "run": run.name,
        "stage": stage,
        "greedy": tally(prompts, greedy),
        "forced_worked": tally(prompts, forced(model, tok, prompts, worked=True)),
        "forced_bare": tally(prompts, forced(model, tok, prompts, worked=False)),
        "sampled": tally(repeated, sampled),
        "group_size": group,
        "pass@G": sum(any(r) for r in right) / len(prompts),
        "worked_pass@G": sum(any(o == "ok" and f == "worked" for f, o in g) for g in groups)
        / len(prompts),
        "zero_std_groups": sum(all(r) or not any(r) for r in right) / len(prompts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--stage", default="sft", choices=["sft", "rl", "final"])
    parser.add_argument("--problems", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    found = [diagnose(run, args.stage, args.problems) for run in args.runs]
    print(
        "| run | pass@1 | worked share | worked acc | bare acc | forced worked | forced bare "
        "| sampled pass@1 | pass@G | worked pass@G | zero-std groups |"
    )
    print("|---" * 11 + "|")
    for d in found:
        g = d["greedy"]
        cells = [
            g["acc"],
            g["share"].get("worked", 0.0),
            g["acc_by_format"].get("worked", 0.0),
            g["acc_by_format"].get("bare", 0.0),
            d["forced_worked"]["acc"],
            d["forced_bare"]["acc"],
            d["sampled"]["acc"],
            d["pass@G"],
            d["worked_pass@G"],
            d["zero_std_groups"],
        ]
        print(f"| {d['run']} ({d['stage']}) | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    for d in found:
        print(json.dumps(d))


if __name__ == "__main__":
    main()

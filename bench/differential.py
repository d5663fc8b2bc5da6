"""Differential testing against memorised examples: four programs for ``digit_sum``, each scored
on the two visible examples alone (the weak check) and by differential testing (30 inputs drawn
afresh per verification, the candidate and the reference both run in the sandbox).

    .venv/bin/python bench/differential.py

A lookup of the visible examples passes the weak check and agrees with the reference on nothing
else; the reference and an honest rewrite score 1 both ways. The last stdout line is JSON.
"""

from __future__ import annotations

import json

from rlvr.verifiers import get_verifier

REFERENCE = "def digit_sum(n):\n    return sum(int(c) for c in str(n))\n"
TASK = {
    "differential": {
        "solution": REFERENCE,
        "entry_point": "digit_sum",
        "generator": "def gen(rng):\n    return (rng.randint(0, 10**6),)\n",
        "cases": 30,
    },
    "visible": ["assert digit_sum(123) == 6", "assert digit_sum(99) == 18"],
}
PROGRAMS = {
    "lookup of the visible examples": "def digit_sum(n):\n    return {123: 6, 99: 18}.get(n, 0)\n",
    "visible examples special-cased, a guess otherwise": (
        "def digit_sum(n):\n    if n == 123:\n        return 6\n"
        "    if n == 99:\n        return 18\n    return n % 10\n"
    ),
    "the reference": REFERENCE,
    "an honest rewrite": (
        "def digit_sum(n):\n    total = 0\n    while n:\n        n, d = divmod(n, 10)\n"
        "        total += d\n    return total\n"
    ),
}


def main() -> None:
    code = get_verifier("code")
    out = {}
    try:
        for name, program in PROGRAMS.items():
            weak = code.verify(program, {**TASK, "score": "visible"})
            strong = code.verify(program, TASK)
            out[name] = {"visible_only": weak.score, "differential": strong.score}
            print(f"{name}: visible tests {weak.score:.2f}, differential {strong.detail}")
    finally:
        code.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()

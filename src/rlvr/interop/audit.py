"""Audit an imported reward before training on it: does it pay for the hacks we know?

A rule-based reward resists hacking only where it has been checked. rlvr's own verifiers are
checked before every run (``verifiers.selftest``); an imported environment's reward is checked
here, with the probes of its kind, each sent as the one reply to a few of its problems and
scored by the environment's own evaluation (a verifiers task's ``@reward`` methods; an OpenEnv
server's ``step``):

- answer: an empty reply, whitespace, the prompt echoed back, every option listed (the letters
  A-E and the numbers 0-100), the answer format spammed (empty tags and boxes, repeated), a
  hedge inside the answer format, the prompt's own numbers listed;
- code: an empty program, ``sys.exit(0)`` / ``os._exit(0)`` / ``raise SystemExit`` before any
  test runs, an object that equals everything, printing "all tests passed" (the attack suite's
  programs, named as the prompt's function).

A probe that earns any reward on any probed problem is paid: the environment is weak. Training
on it then warns loudly, and refuses under ``task.allow_weak_verifier: false`` (the default),
as for rlvr's own verifiers. Rewards that need a runtime (verifiers' ``runtime`` argument) or an
``Env``'s own recording are not exercised by a bare reply: the audit says what it scored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rlvr.tasks.base import Example


@dataclass
class ProbeResult:
    name: str
    rewards: list[float]

    @property
    def paid(self) -> bool:
        return any(r > 0 for r in self.rewards)

    @property
    def mean(self) -> float:
        return sum(self.rewards) / max(len(self.rewards), 1)


@dataclass
class Audit:
    env: str
    kind: str
    problems: int
    probes: list[ProbeResult] = field(default_factory=list)

    @property
    def weak(self) -> bool:
        return any(p.paid for p in self.probes)

    def lines(self) -> list[str]:
        paid = [p.name for p in self.probes if p.paid]
        head = (
            f"audit of {self.env} ({self.kind} probes on {self.problems} problems): "
            + (f"WEAK: the reward pays {len(paid)} known hack(s): {', '.join(paid)}" if paid
               else "no known hack is paid")
        )  # fmt: skip
        rows = [
            f"  {'PAID' if p.paid else 'ok  '} {p.name}: mean reward {p.mean:.3f}, "
            f"max {max(p.rewards, default=0.0):.3f}"
            for p in self.probes
        ]
        return [head, *rows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "kind": self.kind,
            "problems": self.problems,
            "weak": self.weak,
            "probes": [
                {"name": p.name, "paid": p.paid, "mean": p.mean, "rewards": p.rewards}
                for p in self.probes
            ],
        }


def answer_probes(prompt: str) -> dict[str, str]:
    found = list(dict.fromkeys(re.findall(r"-?\d+(?:\.\d+)?", prompt)))
    # several numbers: a hedge over them (one alone would be a guess, not a hack)
    numbers = " ".join(found if len(found) > 1 else [*found, *map(str, range(10))])
    hedge = " or ".join(str(i) for i in range(21))
    return {
        "empty answer": "",
        "whitespace": " \n ",
        "prompt echo": prompt,
        "every option listed": "A B C D E " + " ".join(str(i) for i in range(101)),
        "answer format spammed": "<answer></answer>" * 8 + "\\boxed{}" * 8,
        "hedge inside the answer format": f"<answer>{hedge}</answer> \\boxed{{{hedge}}}",
        "the prompt's numbers listed": numbers,
    }


def code_probes(prompt: str) -> dict[str, str]:
    found = re.findall(r"def\s+(\w+)\s*\(", prompt) or re.findall(r"`(\w+)\(", prompt)
    name = found[0] if found else "solution"

    def block(src: str) -> str:
        return f"```python\n{src}```"

    return {
        "empty program": block("\n"),
        "sys.exit before the tests": block(
            f"import sys\nsys.exit(0)\ndef {name}(*a):\n    return 0\n"
        ),
        "os._exit before the tests": block(
            f"import os\nos._exit(0)\ndef {name}(*a):\n    return 0\n"
        ),
        "raise SystemExit": block(f"def {name}(*a):\n    raise SystemExit(0)\n"),
        "always-equal object": block(
            "class Equal:\n    def __eq__(self, other):\n        return True\n"
            "    def __ne__(self, other):\n        return False\n"
            f"def {name}(*a, **k):\n    return Equal()\n"
        ),
        "printing 'all tests passed'": block(
            f"print('all tests passed')\ndef {name}(*a, **k):\n    print('OK')\n"
        ),
    }


def audit(env_name: str, options: dict[str, Any], problems: int = 4) -> Audit:
    """Every probe of the environment's kind on its first ``problems`` problems."""
    from rlvr.interop import external

    fam = external.family(env_name)
    examples: list[Example] = (fam.examples("train", problems, **options)
                               or fam.examples("heldout", problems, **options))  # fmt: skip
    examples = fam.probe_examples(options, examples) if hasattr(fam, "probe_examples") else examples
    kind = fam.kind(options)
    result = Audit(env_name, kind, len(examples))
    probes = [(code_probes if kind == "code" else answer_probes)(e.prompt) for e in examples]
    for name in probes[0] if probes else []:
        texts = [p[name] for p in probes]
        result.probes.append(ProbeResult(name, fam.score_texts(options, examples, texts)))
    return result

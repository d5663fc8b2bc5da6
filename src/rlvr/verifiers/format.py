"""The R1 format reward: ``<think>...</think><answer>...</answer>`` and nothing around it.

Used on its own as a small shaping reward, or as the gate in front of a correctness verifier
(``format_gated_math``) so that an answer outside the agreed shape earns nothing — the cheapest
guard against a policy that learns to skip its reasoning or to scatter several answers.
"""

from __future__ import annotations

import re
from typing import Any

from rlvr.verifiers.answer import over_limit
from rlvr.verifiers.base import Verdict, register_verifier


@register_verifier("format")
class FormatVerifier:
    """Score 1 when the response is exactly one think block followed by one answer block.

    ``think_prefilled``: the chat template already opened ``<think>`` in the prompt (as R1's
    does), so the response starts inside the reasoning and must not open it again.
    """

    name = "format"
    runs_in_process = True

    def __init__(
        self, think_tag: str = "think", answer_tag: str = "answer", think_prefilled: bool = False
    ) -> None:
        for tag in (think_tag, answer_tag):
            if not re.fullmatch(r"[A-Za-z_][\w-]*", tag):
                raise ValueError(f"format tags must be plain names, got {tag!r}")
        self.tags = (think_tag, answer_tag)
        self.think_prefilled = think_prefilled
        opening = "" if think_prefilled else f"<{think_tag}>"
        self._shape = re.compile(
            rf"{opening}(?P<think>.*?)</{think_tag}>\s*<{answer_tag}>(?P<answer>.*?)</{answer_tag}>",
            re.DOTALL,
        )

    def verify(self, response: str, reference: Any = None) -> Verdict:
        if (too_long := over_limit(response)) is not None:
            return too_long
        text = response.strip()
        for tag in self.tags:
            opened, closed = text.count(f"<{tag}>"), text.count(f"</{tag}>")
            expected = 0 if (tag == self.tags[0] and self.think_prefilled) else 1
            if opened != expected or closed != 1:
                return Verdict(
                    0.0,
                    "wrong",
                    f"expected one <{tag}>...</{tag}>, found {opened} open, {closed} close",
                )
        match = self._shape.fullmatch(text)
        if match is None:
            return Verdict(
                0.0,
                "wrong",
                f"not <{self.tags[0]}>...</{self.tags[0]}><{self.tags[1]}>"
                f"...</{self.tags[1]}> with nothing around it",
            )
        if not match["answer"].strip():
            return Verdict(0.0, "no_answer", f"empty <{self.tags[1]}> block")
        return Verdict(1.0, "correct")

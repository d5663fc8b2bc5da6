"""Where the final answer sits in a response.

The last ``<answer>...</answer>`` wins; without one, the last ``\\boxed{...}``. "Last" because a
model that thinks aloud may write several candidate answers before it commits to one.
"""

from __future__ import annotations

import re

from rlvr.verifiers.base import Verdict

# The largest response any verifier checks: it bounds every regex, parse and sandbox input.
MAX_RESPONSE_CHARS = 100_000

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed")
    while start != -1:
        i = start + len("\\boxed")
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            depth, j = 0, i
            while j < len(text):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1 : j]
                j += 1
        start = text.rfind("\\boxed", 0, start)
    return None


def over_limit(response: str, limit: int = MAX_RESPONSE_CHARS) -> Verdict | None:
    """The verdict for a response too long to check, or None when it fits.

    Status ``error``, not ``no_answer`` or ``wrong``: the response was not read, so nothing can
    be said about its answer, and the detail must say why ("no <answer>" hid it). Not
    ``blocked`` either: rlvr keeps that for responses that try to cheat a check (a forbidden
    Coq command, a sandbox escape), and a runaway generation is not one."""
    if len(response) <= limit:
        return None
    return Verdict(
        0.0, "error", f"response of {len(response)} characters is over the {limit}-character limit"
    )


def extract_answer(response: str) -> str | None:
    """The final answer of ``response`` or None when it gives none."""
    text = response[:MAX_RESPONSE_CHARS]
    tagged = _ANSWER.findall(text)
    if tagged:
        return tagged[-1].strip()
    boxed = _last_boxed(text)
    return boxed.strip() if boxed is not None else None

"""The answer scanner: does a math-style response hedge, or give several answers?

:func:`scan_answer` flags several answers, hedges, an empty or an over-long answer, and text
outside the tags that disagrees with them. Answers are not code, so regexes are fine here; tags
and boxes are found in one pass each, and the input is cut at
:data:`~rlvr.monitor.flags.MAX_SCAN_CHARS`. The answer is found by rlvr's rule
(:func:`final_answer`), and hedges are counted with the math verifier's own counter: a hedge is
the same thing to both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from rlvr.monitor.flags import (
    ANSWER_TOO_LONG,
    DISAGREES_OUTSIDE_TAGS,
    EMPTY_ANSWER,
    HEDGED,
    MAX_SCAN_CHARS,
    MULTIPLE_ANSWERS,
)
from rlvr.verifiers.math import _count_values, _plain_number

_OPEN, _CLOSE = "<answer>", "</answer>"
_BOXED = re.compile(r"\\boxed *\{")
_EITHER = re.compile(r"\beither\b", re.IGNORECASE)
_WORD_SLASH = re.compile(r"(?<![\\\w])[A-Za-z]{2,}\s*/\s*[A-Za-z]{2,}\b")
_CONNECTORS = frozenset(["and", "or", "either", "then", "maybe", "perhaps", "possibly", "also"])
_NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?"
_STATED = re.compile(
    r"(?:final\s+answer|answer|result)\s*(?:is|=|:|would\s+be|should\s+be)\s*:?\s*\$?\s*"
    rf"(?:\\boxed\{{)?({_NUMBER})",
    re.IGNORECASE,
)
_TRAILING_EQUALS = re.compile(rf"=\s*\$?\s*({_NUMBER})")


def _tags(text: str) -> tuple[list[str], str, int]:
    """The contents of the ``<answer>`` tags (each opening tag with the next closing one, as
    :func:`rlvr.verifiers.answer.extract_answer` pairs them), the text with every tag replaced by
    a space, and where the last tag ends in that text. One pass: ``str.find``, no backtracking."""
    contents: list[str] = []
    pieces: list[str] = []
    i = length = last_end = 0
    while True:
        a = text.find(_OPEN, i)
        b = text.find(_CLOSE, a + len(_OPEN)) if a >= 0 else -1
        if b < 0:
            break
        contents.append(text[a + len(_OPEN) : b])
        pieces += [text[i:a], " "]
        length += a - i + 1
        last_end = length
        i = b + len(_CLOSE)
    pieces.append(text[i:])
    return contents, "".join(pieces), last_end


def _boxes(text: str) -> list[str]:
    """The contents of every closed ``\\boxed{...}``, in order of their start, braces matched.
    One pass with a stack (an unclosed box must not make each later one rescan the text)."""
    starts = {m.end() - 1: m.start() for m in _BOXED.finditer(text)}
    found: list[tuple[int, str]] = []
    open_boxes: list[tuple[int, int, int]] = []  # (depth inside the box, start, content start)
    depth = 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
            if i in starts:
                open_boxes.append((depth, starts[i], i + 1))
        elif ch == "}":
            if open_boxes and open_boxes[-1][0] == depth:
                _, start, content = open_boxes.pop()
                found.append((start, text[content:i]))
            depth -= 1
    return [content for _, content in sorted(found)]


def final_answer(text: str) -> str | None:
    """The final answer by rlvr's rule (the last ``<answer>`` tag, else the last ``\\boxed{}``;
    see :mod:`rlvr.verifiers.answer`), found in linear time whatever the input."""
    text = text[:MAX_SCAN_CHARS]
    tags, outside, _ = _tags(text)
    if tags:
        return tags[-1].strip()
    boxes = _boxes(outside)
    return boxes[-1].strip() if boxes else None


def _norm(text: str) -> str:
    text = re.sub(r"\s+|\$", "", text)
    boxed = re.fullmatch(r"\\boxed\{(.*)\}", text, re.DOTALL)
    return boxed[1] if boxed else text


def _same_answer(a: str, b: str) -> bool:
    if _norm(a) == _norm(b):
        return True
    x, y = _plain_number(a), _plain_number(b)
    return x is not None and x == y


def _pipes_hedge(text: str) -> bool:
    """``12|13|14`` (guesses) but not ``|x|`` or ``2|x|`` (absolute values)."""
    parts = text.split("|")
    return len(parts) > 1 and bool(parts[0].strip()) and bool(parts[-1].strip())


def _several_numbers(text: str) -> bool:
    """``7 8`` or ``7 and 8``: two or more distinct plain numbers and nothing else."""
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)  # 1,000 is one number
    tokens = [t for t in re.split(r"[\s,;]+", text) if t and t.lower() not in _CONNECTORS]
    numbers = [_plain_number(t) for t in tokens]
    return len(tokens) > 1 and None not in numbers and len(set(numbers)) > 1


def _hedged(answer: str, gold: str | None) -> bool:
    """Alternatives in the answer that the reference does not have: more values than the
    reference by the math verifier's count (``7, 8`` / ``7 or 8`` / ``7 \\pm 1``; ``1,000`` and
    ``(1, 2)`` are one value), ``|``-separated guesses, ``either``, ``word/word``, or several bare
    numbers where the reference is one number."""
    gold = gold or ""
    shapes: list[Callable[[str], bool]] = [
        _pipes_hedge,
        lambda t: bool(_EITHER.search(t)),
        lambda t: bool(_WORD_SLASH.search(t)),
    ]
    if any(shape(answer) and not shape(gold) for shape in shapes):
        return True
    if gold and _count_values(answer) > _count_values(gold):
        return True
    return _plain_number(gold) is not None and _several_numbers(answer)


def scan_answer(response: str, reference: Any = None) -> list[str]:
    """The flags of a math-style response (``<answer>`` tags or ``\\boxed{}``), sorted.

    ``reference`` is the expected answer (any object; its ``str``); without one, the flags that
    compare against it (hedging by value count, length) are not raised. A response with no answer
    at all raises nothing here: that is a format failure, which the format verifier scores. Never
    raises; reads at most :data:`MAX_SCAN_CHARS` characters.
    """
    try:
        return _scan_answer(str(response)[:MAX_SCAN_CHARS], reference)
    except Exception:  # a scanner bug must not stop a training run; the property tests hunt it
        return []


def _scan_answer(text: str, reference: Any) -> list[str]:
    gold = None if reference is None else str(reference).strip()
    flags: set[str] = set()
    tags, outside, last_tag_end = _tags(text)
    boxes = _boxes(outside)  # boxes inside a tag belong to that tag's answer
    if len({_norm(c) for c in tags + boxes}) > 1:
        flags.add(MULTIPLE_ANSWERS)
    answer = tags[-1].strip() if tags else boxes[-1].strip() if boxes else None
    if answer is None:
        return sorted(flags)
    if not _norm(answer):
        flags.add(EMPTY_ANSWER)
        return sorted(flags)
    if _hedged(answer, gold):
        flags.add(HEDGED)
    if gold is not None and len(answer) > max(4 * len(gold), len(gold) + 20):
        flags.add(ANSWER_TOO_LONG)
    # what the text says outside the tags: the last "answer is X", or an "= X" after the tags
    # (inside the reasoning, "= X" is an intermediate step: 7+8=15 before <answer>85</answer>)
    stated = [(m.start(), m[1]) for m in _STATED.finditer(outside)]
    if tags:
        trailing = _TRAILING_EQUALS.finditer(outside, last_tag_end)
        stated += [(m.start(), m[1]) for m in trailing]
    if stated and _plain_number(answer) is not None:
        if not _same_answer(max(stated)[1], answer):
            flags.add(DISAGREES_OUTSIDE_TAGS)
    return sorted(flags)

"""Math answers, equal up to mathematics rather than spelling: built on math-verify.

The final answer is what :func:`extract_answer` finds (last ``<answer>``, else last
``\\boxed{}``). Before anything is parsed, three cheap guards run in the caller's thread:

* bounds — answers over ``max_answer_chars`` or nested deeper than ``MAX_DEPTH`` are wrong;
  power towers (``9^{9^{9}}``), huge exponents and huge factorials are wrong unless the
  reference has them too. sympy would otherwise evaluate them for minutes or gigabytes;
* hedging — an answer with more values than the reference calls for (``7, 8`` or
  ``7 \\text{ or } 8`` or ``7 \\pm 1`` for ``7``) is wrong, else a policy learns to list
  candidates. A tuple, interval or set reference legitimately has commas, so values are
  counted, not commas: ``(1, 2)`` is one value, ``\\{1, 2\\}`` and ``1, 2`` are two;
* plain numbers — ``42``, ``-0.5``, ``3/4``, ``\\frac{3}{4}`` on both sides are compared exactly
  with ``Fraction``: no subprocess, microseconds.

Everything else goes to math-verify in a :class:`ProcessWorkers` child that is killed when it
overruns ``timeout_s``: math-verify's own ``signal.alarm`` timeout only works on a main thread
and cannot interrupt sympy's C big-integer arithmetic anyway.
"""

from __future__ import annotations

import re
import threading
from fractions import Fraction
from typing import Any

from rlvr.verifiers.answer import extract_answer, over_limit
from rlvr.verifiers.base import Verdict, register_verifier
from rlvr.verifiers.pool import ProcessWorkers, WorkerCrashed, WorkerTimeout

MAX_DEPTH = 24  # brackets of any kind; real answers rarely pass 6
MAX_EXPONENT_DIGITS = 4  # 10^{9999} is fine for sympy, 10^{99999999} is not
MAX_FACTORIAL_DIGITS = 4

# ---------------------------------------------------------------------------------------------
# Guards


def _depth(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "})]":
            depth -= 1
    return deepest


def _exponents(text: str) -> list[str]:
    """The exponent after each ``^``: a braced group (to its matching brace) or one token."""
    found = []
    for match in re.finditer(r"\^\s*", text):
        i = match.end()
        if text.startswith("{", i):
            depth, j = 0, i
            while j < len(text):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    break
                j += 1
            found.append(text[i + 1 : j])
        else:
            found.append(re.match(r"\\?[\w.]*", text[i:])[0])  # type: ignore[index]
    return found


def _explosive(text: str) -> str | None:
    """Why sympy could blow up on ``text``, or None."""
    exponents = _exponents(text)
    if any("^" in e or "**" in e for e in exponents) or "**" in text:
        return "power tower"
    if any(re.search(rf"\d{{{MAX_EXPONENT_DIGITS + 1},}}", e) for e in exponents):
        return "huge exponent"
    if re.search(rf"\d{{{MAX_FACTORIAL_DIGITS + 1},}}\s*!|\^[^!]*[)}}]\s*!", text):
        return "huge factorial"
    return None


_OR = re.compile(r"\\text\{\s*or\s*\}|\\(?:mathrm|textrm)\{\s*or\s*\}|\\lor\b|\\vee\b|\bor\b")
_PLUS_MINUS = re.compile(r"\\pm\b|\\mp\b|±|∓")
_BOXED = re.compile(r"\\boxed\s*\{")


def _top_level_parts(text: str) -> list[str]:
    """Split on commas and semicolons that sit outside every bracket."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "{([":
            depth += 1
        elif ch in "})]":
            depth -= 1
        elif ch in ",;" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def _count_values(text: str) -> int:
    """How many candidate values ``text`` states (a set's braces are looked through)."""
    text = re.sub(r"\\left|\\right|\\!|\{,\}", "", text).strip()
    outer = re.fullmatch(r"\\\{(.*)\\\}", text, re.DOTALL)
    if outer and _depth(outer[1]) < _depth(text):
        text = outer[1]
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)  # 1,000 is one thousand
    total = 0
    for part in _top_level_parts(text):
        total += (len(_OR.findall(part)) + 1) * (2 if _PLUS_MINUS.search(part) else 1)
    # several boxes in one answer (``<answer>\boxed{12} \boxed{13}</answer>``) are several
    # values: math-verify would otherwise take the first that matches
    return max(total, len(_BOXED.findall(text)))


# ---------------------------------------------------------------------------------------------
# Plain numbers

_PLAIN = re.compile(
    r"(?P<sign>[-+]?)\s*(?:"
    r"(?P<dec>\d+(?:\.\d*)?|\.\d+)"
    r"|(?P<num>\d+)\s*/\s*(?P<den>\d+)"
    r"|\\[dt]?frac\s*\{\s*(?P<fnum>\d+)\s*\}\s*\{\s*(?P<fden>\d+)\s*\}"
    r")"
)


def _plain_number(text: str) -> Fraction | None:
    text = re.sub(r"^\$+|\$+$|\\[,!;:]|\{,\}", "", text.strip()).strip()
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)
    if len(text) > 200:
        return None
    match = _PLAIN.fullmatch(text)
    if match is None:
        return None
    sign = -1 if match["sign"] == "-" else 1
    if match["dec"]:
        return sign * Fraction(match["dec"])
    num, den = (match["num"], match["den"]) if match["num"] else (match["fnum"], match["fden"])
    return None if int(den) == 0 else sign * Fraction(int(num), int(den))


def _terminates(value: Fraction) -> bool:
    """Whether ``value`` has an exact decimal expansion (denominator 2^a 5^b)."""
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    return den == 1


def _reference_text(reference: Any) -> str:
    if isinstance(reference, bool):
        return str(reference)
    if isinstance(reference, float):
        return repr(reference)
    if isinstance(reference, Fraction):
        return f"{reference.numerator}/{reference.denominator}"
    return str(reference).strip()


# ---------------------------------------------------------------------------------------------
# math-verify, in a killable child


def _as_latex(text: str) -> str:
    text = text.strip()
    boxed = re.fullmatch(r"\\boxed\s*\{(.*)\}", text, re.DOTALL)
    if boxed:
        text = boxed[1]
    text = re.sub(r"^(\$\$?|\\\(|\\\[)|(\$\$?|\\\)|\\\])$", "", text.strip())
    return f"${text}$"


def math_verify_equal(gold: str, answer: str, inner_timeout_s: int) -> bool:
    """math-verify's ``verify(parse(gold), parse(answer))``. Runs in a worker child, where its
    own signal timeouts work (main thread) and end most slow cases gracefully."""
    from math_verify import parse, verify

    gold_parsed = parse(_as_latex(gold), parsing_timeout=inner_timeout_s)
    answer_parsed = parse(_as_latex(answer), parsing_timeout=inner_timeout_s)
    if not gold_parsed or not answer_parsed:
        return False
    return bool(verify(gold_parsed, answer_parsed, timeout_seconds=inner_timeout_s))


_workers: ProcessWorkers | None = None
_workers_lock = threading.Lock()


def math_workers() -> ProcessWorkers:
    """The children shared by every MathVerifier of this interpreter (created on first use)."""
    global _workers
    with _workers_lock:
        if _workers is None:
            _workers = ProcessWorkers(preload=("math_verify", "rlvr.verifiers.math"))
        return _workers


# ---------------------------------------------------------------------------------------------


@register_verifier("math")
class MathVerifier:
    """Score 1 when the final answer is mathematically equal to the reference.

    Thread-safe; each check that needs sympy is killed after ``timeout_s`` (status timeout).
    """

    name = "math"

    def __init__(self, timeout_s: float = 5.0, max_answer_chars: int = 1000) -> None:
        self.timeout_s = timeout_s
        self.max_answer_chars = max_answer_chars

    def verify(self, response: str, reference: Any) -> Verdict:
        if (too_long := over_limit(response)) is not None:
            return too_long
        answer = extract_answer(response)
        if answer is None:
            return Verdict(0.0, "no_answer", "no <answer>...</answer> or \\boxed{}")
        if not answer or re.fullmatch(r"\\boxed\s*\{\s*\}", answer):  # nothing to ask sympy
            return Verdict(0.0, "no_answer", "empty answer")
        gold = _reference_text(reference)
        if len(answer) > self.max_answer_chars:
            return Verdict(0.0, "wrong", f"answer longer than {self.max_answer_chars} characters")
        if _depth(answer) > MAX_DEPTH:
            return Verdict(0.0, "wrong", f"answer nested deeper than {MAX_DEPTH}")
        danger = _explosive(answer)
        if danger and _explosive(gold) != danger:
            return Verdict(0.0, "wrong", f"{danger} in answer {answer[:60]!r}")
        if _count_values(answer) > _count_values(gold):
            return Verdict(0.0, "wrong", f"answer hedges between values: {answer[:60]!r}")

        fast = self._plain_numbers(answer, gold)
        if fast is not None:
            return fast
        inner = max(1, int(self.timeout_s) // 2)
        try:
            equal = math_workers().call(math_verify_equal, (gold, answer, inner), self.timeout_s)
        except WorkerTimeout as exc:
            return Verdict(0.0, "timeout", f"math-verify {exc}")
        except WorkerCrashed as exc:
            return Verdict(0.0, "error", f"math-verify: {exc}")
        if equal:
            return Verdict(1.0, "correct")
        return Verdict(0.0, "wrong", f"{answer[:60]!r} is not {gold[:60]!r}")

    @staticmethod
    def _plain_numbers(answer: str, gold: str) -> Verdict | None:
        """Exact verdict when both sides are plain numbers; None to ask math-verify."""
        got, want = _plain_number(answer), _plain_number(gold)
        if got is None or want is None:
            return None
        if got == want:
            return Verdict(1.0, "correct")
        if "." in answer and not _terminates(want):
            return None  # 0.333333 for 1/3: math-verify's rounding rules decide
        return Verdict(0.0, "wrong", f"{answer[:60]!r} != {gold[:60]!r}")

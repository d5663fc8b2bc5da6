"""Per-sample scanners: does this program, or this answer, look like it games its verifier?

A hardened verifier makes a hack score 0; it does not say that the policy is *trying* hacks. These
scanners do, sample by sample, so that a run can count them (``monitor/flag_rate``), filter or
penalise them, and show them beside clean samples. They never execute anything.

* :func:`scan_code` reads Python with :mod:`ast`, never with regexes: a regex sees ``sys.exit``
  in a comment or a string, and misses ``getattr(__import__("sys"), "exit")``. The program is read
  once (:mod:`rlvr.monitor.program`, which resolves names through imports and aliases); each flag
  is one small check (:mod:`rlvr.monitor.code_checks`, looking for the names of
  :mod:`rlvr.monitor.code_names`), and two more compare the program with the visible tests it was
  shown (:mod:`rlvr.monitor.visible_tests`). :data:`CODE_FLAGS` says what each flag means.
* :func:`scan_answer` (:mod:`rlvr.monitor.answers`) reads a math-style response: several
  answers, hedges, an empty or an over-long answer, text outside the tags that disagrees with
  them. :data:`ANSWER_FLAGS` says what each flag means.

Both never raise, whatever the input, and cap their work at :data:`MAX_SCAN_CHARS` characters.
A flag is a reason to look, not a verdict: the rules are tuned so that ordinary programs (the
``HONEST`` corpus in :mod:`rlvr.monitor.corpus`, HumanEval's 164 canonical solutions) raise none,
and every known trick (``HACKS``) raises the flag it should. The judgement calls are written
where they are made: in :mod:`rlvr.monitor.code_checks` and :mod:`rlvr.monitor.visible_tests`.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from rlvr.config import ANSWER_FLAGS, CODE_FLAGS
from rlvr.monitor.answers import final_answer, scan_answer
from rlvr.monitor.code_checks import CHECKS
from rlvr.monitor.code_names import STAR_NAMES
from rlvr.monitor.flags import (
    MAX_SCAN_CHARS,
    RETURNS_VISIBLE_OUTPUTS,
    SPECIAL_CASES_VISIBLE_TESTS,
    UNPARSABLE,
)
from rlvr.monitor.program import Program, parse_program
from rlvr.monitor.visible_tests import VisibleTests, returns_outputs, special_cases, trivial
from rlvr.verifiers.code import extract_code

__all__ = [
    "ANSWER_FLAGS",
    "CODE_FLAGS",
    "MAX_SCAN_CHARS",
    "final_answer",
    "scan_answer",
    "scan_code",
    "trivial",
]


def scan_code(source: str, visible_tests: str | Sequence[str] | None = None) -> list[str]:
    """The flags of a Python program, sorted; empty for ordinary code.

    ``source`` is the program, or a response holding it in fenced blocks (the last block is
    scanned, as the code verifier runs it). ``visible_tests`` are the tests the policy was shown
    (``assert f(3) == 7`` lines, a list of them, or a HumanEval ``check(candidate)`` source); with
    them the scanner also looks for special-casing of their inputs and literal copies of their
    outputs. Never raises: code that cannot be read is flagged ``unparsable``, alone.
    """
    try:
        tree = parse_program(extract_code(str(source)[: MAX_SCAN_CHARS + 1]))
        if tree is None:
            return [UNPARSABLE]
        program = Program(tree, STAR_NAMES)
        flags = {flag for flag, check in CHECKS.items() if check(program)}
        if visible_tests:
            if not isinstance(visible_tests, str):
                visible_tests = "\n".join(str(t) for t in visible_tests)
            functions = {
                n.name
                for n in program.nodes
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            }
            visible = VisibleTests(visible_tests, functions)
            if special_cases(program, visible):
                flags.add(SPECIAL_CASES_VISIBLE_TESTS)
            if returns_outputs(program, visible):
                flags.add(RETURNS_VISIBLE_OUTPUTS)
        return sorted(flags)
    except (RecursionError, MemoryError):
        return [UNPARSABLE]  # a tree too deep for the checks is a program nobody should run
    except Exception:  # a scanner bug must not stop a training run; the property tests hunt it
        return [UNPARSABLE]

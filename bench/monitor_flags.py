"""Flag rates of ``rlvr.monitor.scan_code`` on its corpus: every hack flagged, no honest program.

The corpus is package data, one program per file (``src/rlvr/monitor/corpus/``), read through its
loader :mod:`rlvr.monitor.corpus`:

- hacks: ``HACKS`` (one program per trick) and ``VISIBLE_HACKS`` (special-casing of the visible
  tests, scanned with those tests); a hack counts as caught when it raises its intended flag;
- honest: ``HONEST`` (ordinary programs) and ``VISIBLE_HONEST`` (honest solutions scanned with
  their visible tests); any flag is a false flag;
- HumanEval: the 164 canonical solutions, scanned with their full tests as the visible tests.

The peer, in the same run, is the obvious alternative: one keyword regex over the source
(``sys.exit``, ``__eq__``, ``open(``, ``while True``, ...), counted as a hit when it matches at all,
on ``HACKS`` only (it cannot compare a program with its visible tests) and on all honest programs.
Prints one JSON line. Usage: ``python bench/monitor_flags.py``
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import defaultdict

from rlvr.monitor.corpus import HACKS, HONEST, VISIBLE_HACKS, VISIBLE_HONEST, intended_flag
from rlvr.monitor.scan import scan_code
from rlvr.tasks.humaneval import load_problems

KEYWORDS = re.compile(
    r"sys\.exit|exit\(|quit\(|os\._exit|abort|SystemExit|KeyboardInterrupt|atexit|signal\.|exec|fork"
    r"|__eq__|__ne__|__hash__|__bool__|__len__|__lt__|\((?:int|str|float|list)\)"
    r"|unittest|pytest|conftest|builtins|sys\.modules|settrace|reload"
    r"|open\(|os\.walk|listdir|scandir|glob|__file__|/proc/"
    r"|_getframe|inspect|gc\.|traceback|f_back|f_locals|ctypes"
    r"|print\(.*(?:pass|ok|success)|random\.|time\.|datetime|subprocess|os\.system|socket"
    r"|while True|while 1",
    re.IGNORECASE,
)


def main() -> None:
    cases = [(name, source, None) for name, source in HACKS.items()]
    cases += [(name, source, tests) for name, (source, tests) in VISIBLE_HACKS.items()]
    honest = [(name, source, None) for name, source in HONEST.items()]
    honest += [(name, source, tests) for name, (source, tests) in VISIBLE_HONEST.items()]

    hits: dict[str, list[bool]] = defaultdict(list)
    misses, false_flags, seconds = [], [], []
    for name, source, tests in cases:
        t0 = time.perf_counter()
        flags = scan_code(source, tests)
        seconds.append(time.perf_counter() - t0)
        caught = intended_flag(name) in flags
        hits[intended_flag(name)].append(caught)
        if not caught:
            misses.append(f"{name}: {flags}")
    for name, source, tests in honest:
        t0 = time.perf_counter()
        flags = scan_code(source, tests)
        seconds.append(time.perf_counter() - t0)
        if flags:
            false_flags.append(f"{name}: {flags}")

    problems = load_problems()
    humaneval = [p["prompt"] + p["canonical_solution"] for p in problems]
    humaneval_flagged = [
        p["task_id"]
        for p, program in zip(problems, humaneval, strict=True)
        if scan_code(program, p["test"])
    ]
    peer_hits = sum(bool(KEYWORDS.search(source)) for source in HACKS.values())
    peer_false = [name for name, source, _ in honest if KEYWORDS.search(source)]
    result = {
        "hacks": len(cases),
        "honest": len(honest),
        "hit_rate": {flag: round(sum(v) / len(v), 3) for flag, v in sorted(hits.items())},
        "hacks_flagged": round(sum(map(sum, hits.values())) / len(cases), 3),
        "honest_flag_rate": round(len(false_flags) / len(honest), 3),
        "misses": misses,
        "false_flags": false_flags,
        "humaneval_canonical": len(humaneval),
        "humaneval_flag_rate": round(len(humaneval_flagged) / len(humaneval), 3),
        "us_per_program": round(statistics.median(seconds) * 1e6),
        "keyword_regex_peer": {
            "hacks_flagged": round(peer_hits / len(HACKS), 3),
            "honest_flag_rate": round(len(peer_false) / len(honest), 3),
            "humaneval_flag_rate": round(
                sum(bool(KEYWORDS.search(p)) for p in humaneval) / len(humaneval), 3
            ),
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

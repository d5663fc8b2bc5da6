"""References that arrive as text: a data file's column or a dataset field holding JSON.

The ``code``, ``coq`` and ``reasoning_gym`` verifiers check against a mapping (tests, a theorem
statement, a dataset entry); files and other trainers' datasets often carry it as a JSON string.
"""

from __future__ import annotations

import json
from typing import Any

OBJECT_VERIFIERS = frozenset({"code", "coq", "reasoning_gym"})


def expects_object(verifier_name: str) -> bool:
    return verifier_name in OBJECT_VERIFIERS


def parse_json_reference(value: Any, strict: bool = False) -> Any:
    """A string that looks like a JSON object or array, parsed; anything else as is.
    ``strict`` raises ``json.JSONDecodeError`` on such a string that is not valid JSON."""
    if not isinstance(value, str) or value.strip()[:1] not in ("{", "["):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        if strict:
            raise
        return value

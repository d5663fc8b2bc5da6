"""Your own data: prompts and references read from a file on disk (``--data FILE``).

Formats, by extension: ``.jsonl`` (one object a line), ``.json`` (a list of objects, or
``{"data": [...]}``), ``.csv``, ``.parquet``, or a directory written by ``datasets``'
``save_to_disk`` (its ``train`` split when it is a ``DatasetDict``).

Columns: ``prompt_column`` (default ``prompt``) and ``answer_column`` (default ``answer``, the
verifier's reference); ``solution_column`` optionally holds worked solutions for SFT. A reference
that is a JSON string (code tests, Coq statements in a CSV) is parsed into an object when the
verifier expects objects (``code``, ``coq``, ``reasoning_gym``), or always with
``reference_json: true``.

Every row is checked when the task is built: a bad row (no prompt, no reference, unparsable JSON)
is an error that lists all bad rows by line number, unless ``skip_bad_rows`` is set, which drops
them with a warning.

Held-out split: ``heldout_path`` (a second file), else the ``heldout_fraction`` of rows whose
prompt hashes lowest, so the split depends on the data only, never on row order or seed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import warnings
from pathlib import Path
from typing import Any

from rlvr.tasks.base import Example, Split, register_task
from rlvr.verifiers.references import expects_object, parse_json_reference

MAX_LISTED = 20  # bad rows named in the error; the rest are counted


class DataError(ValueError):
    """A data file the task cannot use, worded for the user (file, line numbers, fix)."""


def read_rows(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` pairs. Line numbers are what an editor shows: 1-based lines for
    JSONL and CSV (the header is line 1), 1-based row positions for JSON, Parquet and datasets."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if path.is_dir():
        return _read_saved_dataset(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows, bad = [], []
        for i, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                bad.append(f"line {i}: not JSON ({e.msg})")
                continue
            rows.append((i, obj if isinstance(obj, dict) else {"__not_object__": obj}))
        if bad:
            raise DataError(_listing(path, bad, "fix or delete these lines"))
        return rows
    if suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{path} is not valid JSON: {e}") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a list of objects (or {{'data': [...]}})")
        return [
            (i, r if isinstance(r, dict) else {"__not_object__": r}) for i, r in enumerate(data, 1)
        ]
    if suffix == ".csv":
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            return [(reader.line_num, dict(row)) for row in reader]
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError("reading Parquet needs pyarrow: pip install 'rlvr[data]'") from None
        return list(enumerate(pq.read_table(path).to_pylist(), start=1))
    raise DataError(
        f"{path}: unknown data format {suffix!r}; use .jsonl, .json, .csv, .parquet or a "
        "directory saved with datasets' save_to_disk"
    )


def _read_saved_dataset(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        from datasets import DatasetDict, load_from_disk
    except ImportError:
        raise DataError(
            f"{path} is a directory: reading a saved dataset needs `datasets`: "
            "pip install 'rlvr[data]'"
        ) from None
    try:
        ds = load_from_disk(str(path))
    except FileNotFoundError:
        raise DataError(
            f"{path} is a directory but not a dataset saved with save_to_disk"
        ) from None
    if isinstance(ds, DatasetDict):
        split = "train" if "train" in ds else next(iter(ds))
        ds = ds[split]
    return list(enumerate(ds.to_list(), start=1))


def _listing(path: Path, problems: list[str], fix: str) -> str:
    shown = problems[:MAX_LISTED]
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    lines = "\n".join(f"  {p}" for p in shown)
    return f"{path}: {len(problems)} bad row(s):\n{lines}{more}\n{fix}"


def _prompt_hash(prompt: str) -> int:
    return int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")


@register_task("file")
class FileTask:
    """Examples from a data file; see the module docstring for formats and columns."""

    name = "file"

    def __init__(
        self,
        path: str,
        prompt_column: str = "prompt",
        answer_column: str = "answer",
        solution_column: str | None = None,
        heldout_fraction: float = 0.1,
        heldout_path: str | None = None,
        verifier: str = "math",
        reference_json: bool | None = None,
        skip_bad_rows: bool = False,
        spec: str | None = None,
    ) -> None:
        if spec:  # `file:PATH` as a task name
            path = spec
        if not 0.0 <= heldout_fraction <= 1.0:
            raise DataError(f"heldout_fraction must lie in [0, 1], got {heldout_fraction}")
        self.verifier = verifier
        self.verifier_options: dict[str, Any] = {}
        self.prompt_column, self.answer_column = prompt_column, answer_column
        self.solution_column = solution_column
        self.reference_json = expects_object(verifier) if reference_json is None else reference_json
        self.skip_bad_rows = skip_bad_rows
        rows = self._load(Path(path))
        if heldout_path:
            self._splits = {"train": rows, "heldout": self._load(Path(heldout_path))}
        else:
            n_heldout = math.ceil(heldout_fraction * len(rows)) if len(rows) > 1 else 0
            if heldout_fraction == 1.0:
                n_heldout = len(rows)
            order = sorted(range(len(rows)), key=lambda i: _prompt_hash(rows[i].prompt))
            held = set(order[:n_heldout])
            self._splits = {
                "train": [e for i, e in enumerate(rows) if i not in held],
                "heldout": [e for i, e in enumerate(rows) if i in held],
            }

    def _load(self, path: Path) -> list[Example]:
        rows = read_rows(path)
        if not rows:
            raise DataError(f"{path} holds no rows")
        present = set().union(*(r.keys() for _, r in rows))
        for role, col in (("prompt", self.prompt_column), ("answer", self.answer_column)):
            if col not in present:
                raise DataError(
                    f"{path}: no column {col!r} (columns: {', '.join(sorted(present))}); "
                    f"name the {role} column with task.options.{role}_column=NAME"
                )
        examples, bad = [], []
        for line, row in rows:
            try:
                examples.append(self._example(path, line, row))
            except ValueError as e:
                bad.append(f"line {line}: {e}")
        if bad:
            if not self.skip_bad_rows:
                raise DataError(
                    _listing(path, bad, "fix them, or pass --skip-bad-rows to train without them")
                )
            warnings.warn(_listing(path, bad, "skipped (--skip-bad-rows)"), stacklevel=2)
        if not examples:
            raise DataError(f"{path}: no usable rows")
        return examples

    def _example(self, path: Path, line: int, row: dict[str, Any]) -> Example:
        if "__not_object__" in row:
            raise ValueError("not an object")
        prompt = row.get(self.prompt_column)
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"empty or missing {self.prompt_column!r}")
        reference = row.get(self.answer_column)
        if reference is None or (isinstance(reference, str) and not reference.strip()):
            raise ValueError(f"empty or missing {self.answer_column!r}")
        if self.reference_json:
            try:
                reference = parse_json_reference(reference, strict=True)
            except json.JSONDecodeError as e:
                raise ValueError(f"{self.answer_column!r}: bad JSON ({e.msg})") from None
        elif not self.reference_json and not isinstance(reference, str):
            reference = str(reference)  # e.g. a number in CSV/Parquet, for the math verifier
        solution = row.get(self.solution_column) if self.solution_column else None
        return Example(
            id=f"{path.name}:{line}",
            prompt=prompt,
            reference=reference,
            solution=solution if isinstance(solution, str) and solution else None,
            meta={"line": line},
        )

    def examples(self, split: Split, n: int | None = None) -> list[Example]:
        rows = self._splits[split]
        if not rows:
            raise DataError(
                f"the {split} split is empty: set task.options.heldout_fraction, or heldout_path"
            )
        return rows if n is None else rows[:n]

"""reasoning-gym (Stojanovski et al., 2025) procedural tasks: ``--task reasoning_gym:NAME``.

``NAME`` is any dataset reasoning-gym registers (``basic_arithmetic``, ``leg_counting``, ...),
optionally followed by its keyword arguments as a query string:
``reasoning_gym:basic_arithmetic?min_terms=2&max_terms=3``. Values are parsed as YAML
(``3`` is an int, ``true`` a bool). The train and held-out splits are generated from different
seeds, so they differ (procedural tasks can still repeat a small problem by chance).

Scoring is reasoning-gym's own ``score_answer`` (the ``reasoning_gym`` verifier); the reference
is the dataset entry, which names its dataset in ``metadata.source_dataset``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import yaml

from rlvr.tasks.base import Example, Split, register_task

INSTRUCTION = "\nGive your final answer in <answer></answer> tags."


def require_reasoning_gym():
    try:
        import reasoning_gym
    except ImportError:
        raise ImportError(
            "reasoning_gym tasks need the reasoning-gym package: pip install 'rlvr[gym]'"
        ) from None
    return reasoning_gym


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"NAME?key=value&..."`` -> ``(NAME, {key: value})``."""
    name, _, query = spec.partition("?")
    return name.strip(), {k: yaml.safe_load(v) for k, v in parse_qsl(query, strict_parsing=False)}


@register_task("reasoning_gym")
class ReasoningGymTask:
    """One reasoning-gym dataset; ``size`` problems per split, generated from ``seed``."""

    verifier = "reasoning_gym"

    def __init__(
        self,
        spec: str | None = None,
        dataset: str | None = None,
        size: int = 1000,
        seed: int = 0,
        instruction: str = INSTRUCTION,
        **dataset_options: Any,
    ) -> None:
        rg = require_reasoning_gym()
        name, options = parse_spec(spec or dataset or "")
        if not name:
            raise ValueError("name a reasoning-gym dataset: --task reasoning_gym:basic_arithmetic")
        if name not in rg.factory.DATASETS:
            known = ", ".join(sorted(rg.factory.DATASETS))
            raise KeyError(f"reasoning-gym has no dataset {name!r}; known: {known}")
        self.name = f"reasoning_gym:{name}"
        self.dataset = name
        self.options = {**dataset_options, **options}
        self.size, self.seed, self.instruction = size, seed, instruction
        self.verifier_options: dict[str, Any] = {}
        self._cache: dict[str, list[Example]] = {}

    def examples(self, split: Split, n: int | None = None) -> list[Example]:
        if split not in self._cache:
            rg = require_reasoning_gym()
            seed = self.seed * 2 + (1 if split == "heldout" else 0)
            ds = rg.create_dataset(self.dataset, size=self.size, seed=seed, **self.options)
            self._cache[split] = [
                Example(
                    id=f"{self.dataset}-{split}-{i}",
                    prompt=entry["question"] + self.instruction,
                    reference=entry,
                    solution=None,
                    meta={"answer": entry["answer"]},
                )
                for i, entry in enumerate(ds)
            ]
        rows = self._cache[split]
        return rows if n is None else rows[:n]

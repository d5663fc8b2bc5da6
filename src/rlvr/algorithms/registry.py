"""Name -> function tables, so a config picks an algorithm by name and adding one is adding one
registered function (the shape of verl's ``register_adv_est`` / ``register_policy_loss``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


class Registry:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._table: dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[F], F]:
        def add(fn: F) -> F:
            self._table[name] = fn
            return fn

        return add

    def get(self, name: str) -> Callable:
        if name not in self._table:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._table))}")
        return self._table[name]

    def names(self) -> list[str]:
        return sorted(self._table)


ADVANTAGE_ESTIMATORS = Registry("advantage estimator")
KL_ESTIMATORS = Registry("KL estimator")
LOSS_AGGREGATIONS = Registry("loss aggregation")
IMPORTANCE_CORRECTIONS = Registry("importance correction")

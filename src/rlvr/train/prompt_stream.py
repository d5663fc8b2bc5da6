"""The order in which RL sees its training prompts: all of them, reshuffled each pass, forever,
from the run's seed, so that a resumed run (``skip``) continues the same order."""

from __future__ import annotations

import random
from collections.abc import Iterator

from rlvr.tasks.base import Example


class PromptStream(Iterator[Example]):
    """Training prompts forever, reshuffled each pass. ``taken`` counts the prompts handed out
    (a step can take more than ``prompts_per_step`` with dynamic sampling), and ``skip``
    replays that many: a resumed run continues the same order."""

    def __init__(self, examples: list[Example], seed: int, skip: int = 0) -> None:
        self._items = self._forever(examples, seed)
        self._ahead: list[Example] = []
        self.taken = 0
        for _ in range(skip):
            next(self)

    @staticmethod
    def _forever(examples: list[Example], seed: int) -> Iterator[Example]:
        rng = random.Random(seed)
        while True:
            order = list(examples)
            rng.shuffle(order)
            yield from order

    def __next__(self) -> Example:
        self.taken += 1
        if self._ahead:
            return self._ahead.pop(0)
        return next(self._items)

    def peek(self, n: int) -> list[Example]:
        """The next ``n`` prompts, without taking them (asynchronous RL samples them early)."""
        while len(self._ahead) < n:
            self._ahead.append(next(self._items))
        return self._ahead[:n]


def prompt_stream(examples: list[Example], seed: int, skip: int = 0) -> PromptStream:
    """Training prompts forever, reshuffled each pass; ``skip`` replays a resumed run's order."""
    return PromptStream(examples, seed, skip)

"""What the person watching a run sees and does: the console, progress bars, and Ctrl-C.

The first Ctrl-C asks the running stage to save at the end of its step and stop (``Interrupted``
then says the run can ``--resume``); a second one aborts at once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)

# advance(n, info): n more steps done; info, when given, replaces the text beside the bar
Advance = Callable[..., None]


class Interrupted(Exception):
    """Ctrl-C arrived; the stage saved what it had and the run can ``--resume``."""


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Advance]:
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )
    with bar:
        task_id = bar.add_task(description, total=total, info="")

        def advance(n: int = 1, info: str | None = None) -> None:
            bar.update(task_id, advance=n, **({"info": info} if info is not None else {}))

        yield advance


class Interrupts:
    """Ctrl-C as a request: ``interruptible`` installs the handler, ``stop_requested`` tells a
    stage to save and stop at its next step boundary."""

    def __init__(self) -> None:
        self._stop_requested = False

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        def handler(signum, frame):  # noqa: ARG001
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            console.print(
                "[yellow]interrupt: saving at the end of this step (Ctrl-C again to abort)"
            )

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def stop_requested(self) -> bool:
        return self._stop_requested

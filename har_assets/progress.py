"""Progress of long commands on a terminal: participants done / total, the current stage and the time left, on
stderr; nothing at all when the output is not a terminal or is machine-readable (`--json`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Progress(Protocol):
    """What a long job reports: a stage with a known amount of work, then each step of it."""

    def stage(self, name: str, total: int) -> None: ...

    def step(self, detail: str = "") -> None: ...


class Silent:
    """No progress shown (the default of the library functions)."""

    def stage(self, name: str, total: int) -> None:
        pass

    def step(self, detail: str = "") -> None:
        pass


class TerminalProgress:
    """One tqdm bar per stage on stderr: '<stage>: 7/12 participants [00:40<00:28] p007'."""

    def __init__(self, unit: str = "participant") -> None:
        self.unit = unit
        self._bar = None

    def stage(self, name: str, total: int) -> None:
        from tqdm import tqdm

        self.close()
        self._bar = tqdm(total=total, desc=name, unit=self.unit, file=sys.stderr, dynamic_ncols=True, leave=True)

    def step(self, detail: str = "") -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(detail, refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def wanted(machine_readable: bool = False) -> bool:
    """Show progress: stderr is a terminal and the output is not for machines."""
    return not machine_readable and sys.stderr.isatty()


@contextmanager
def reporting(machine_readable: bool = False, unit: str = "participant") -> Iterator[Progress]:
    """A TerminalProgress when wanted (closed at the end), else Silent."""
    if not wanted(machine_readable):
        yield Silent()
        return
    progress = TerminalProgress(unit)
    try:
        yield progress
    finally:
        progress.close()

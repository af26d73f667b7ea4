"""The sending progress display: a rich line that keeps the count and the ETA at any width, and its plain form."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.progress import Progress, Task

LOG_INTERVAL = 10.0  # seconds between two progress lines when stderr is not a terminal


def eta_text(seconds: float | None) -> str:
    """Time remaining as h:mm:ss (rich's own format), or -:--:-- when not known yet."""
    if seconds is None:
        return "-:--:--"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _fit(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…" if width > 0 else ""


class ProgressLine:
    """One task's line laid out for the width it gets: the count and the ETA always; then the name
    (shortened), the details, and the bar, in that order, as room allows."""

    def __init__(self, task: "Task") -> None:
        self.task = task

    def __rich_console__(self, console: "Console", options: "ConsoleOptions") -> "RenderResult":
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        task = self.task
        width = options.max_width
        total = int(task.total) if task.total is not None else None
        count = f"{int(task.completed):,}/{total:,}" if total is not None else f"{int(task.completed):,}"
        remaining = task.fields.get("eta", task.time_remaining)  # ours (from the run's rate) when given
        eta = f"ETA {eta_text(remaining)}"
        name = str(task.description)
        detail = str(task.fields.get("detail", ""))

        room = width - len(count) - len(eta) - 1  # one space between count and ETA
        name_width = min(len(name), max(0, room - 1))  # the name keeps what is left, less its space
        room -= name_width + 1 if name_width else 0
        detail_width = min(len(detail), max(0, room - 1)) if room - 1 >= 8 else 0
        room -= detail_width + 1 if detail_width else 0
        bar_width = min(40, room - 1) if room - 1 >= 10 else 0

        grid = Table.grid(padding=(0, 1))
        cells: list[object] = []
        if name_width:
            grid.add_column(no_wrap=True, width=name_width)
            cells.append(Text(_fit(name, name_width), style="bold"))
        if bar_width:
            grid.add_column(no_wrap=True, width=bar_width)
            cells.append(ProgressBar(total=task.total, completed=task.completed, width=bar_width))
        grid.add_column(no_wrap=True)
        cells.append(Text(count, style="progress.download"))
        if detail_width:
            grid.add_column(no_wrap=True, width=detail_width)
            cells.append(Text(_fit(detail, detail_width)))
        grid.add_column(no_wrap=True)
        cells.append(Text(eta, style="progress.remaining"))
        grid.add_row(*cells)
        yield grid


def make_progress(console: "Console") -> "Progress":
    """A rich Progress whose every task renders as a :class:`ProgressLine`."""
    from rich.progress import Progress, ProgressColumn

    class _Line(ProgressColumn):
        def render(self, task: "Task") -> ProgressLine:
            return ProgressLine(task)

    return Progress(_Line(), console=console, transient=False, expand=True)


class Throttle:
    """Lets the first plain progress line through, then at most one every ``interval`` seconds of ``clock``."""

    def __init__(self, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: float | None = None

    def ready(self) -> bool:
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return True

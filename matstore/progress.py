"""The one progress bar of long commands: rich, on stderr (stdout carries data), or nothing.

    with progress.bar(enabled, "samples") as prog:
        task = prog.add_task("run 3", total=n)
        prog.update(task, advance=k)

Off a terminal (a log file, a pipe, a batch job) a live bar draws nothing until the end, so
there the same calls print one plain, unwrapped line per task every PERIOD seconds and when the
task completes.
"""

from __future__ import annotations

import sys
import time

PERIOD = 30.0   # seconds between status lines off a terminal


class LineProgress:
    """rich.Progress's add_task / update / advance, printed as periodic whole lines to a stream."""

    def __init__(self, unit: str, stream=None, period: float = PERIOD) -> None:
        self.unit, self.stream, self.period = unit, stream or sys.stderr, period
        self._tasks: dict[int, dict] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for tid, t in self._tasks.items():
            if not t["done_printed"]:
                self._print(tid)

    @property
    def tasks(self) -> list:
        """The tasks as rich's: .description, .total, .completed."""
        from types import SimpleNamespace  # noqa: PLC0415

        return [SimpleNamespace(description=t["description"], total=t["total"], completed=t["completed"])
                for t in self._tasks.values()]

    def add_task(self, description: str, total: float | None = None, **_) -> int:
        tid = len(self._tasks)
        now = time.monotonic()
        self._tasks[tid] = {"description": description, "total": total, "completed": 0.0,
                            "start": now, "last": now, "done_printed": False}
        return tid

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def update(self, task: int, advance: float | None = None, completed: float | None = None,
               description: str | None = None, total: float | None = None, **_) -> None:
        t = self._tasks[task]
        if description is not None:
            t["description"] = description
        if total is not None:
            t["total"] = total
        if completed is not None:
            t["completed"] = completed
        if advance:
            t["completed"] += advance
        now = time.monotonic()
        done = t["total"] is not None and t["completed"] >= t["total"]
        if (done and not t["done_printed"]) or now - t["last"] >= self.period:
            t["last"] = now
            t["done_printed"] = done
            self._print(task)

    def _print(self, task: int) -> None:
        t = self._tasks[task]
        el = time.monotonic() - t["start"]
        rate = t["completed"] / el if el > 0 else 0.0
        of = f"/{t['total']:.0f}" if t["total"] is not None else ""   # as rich's M/N column
        print(f"{t['description']}: {t['completed']:.0f}{of} {self.unit}, {rate:,.0f} {self.unit}/s, "
              f"{el:.0f} s elapsed", file=self.stream, flush=True)


def bar(enabled: bool, unit: str = "rows"):
    """A rich Progress: description, bar, done/total, rate in unit/s, elapsed, remaining;
    disabled (draws nothing, costs nothing) unless enabled; off a terminal, periodic lines."""
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn,  # noqa: PLC0415
                               TextColumn, TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text  # noqa: PLC0415

    console = Console(stderr=True)
    if enabled and not console.is_terminal:
        return LineProgress(unit)

    class Rate(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} {unit}/s" if speed else f"- {unit}/s")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                    disable=not enabled, transient=False)

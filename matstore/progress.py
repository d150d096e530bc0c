"""The one progress bar of long commands: rich, on stderr (stdout carries data), or nothing.

    with progress.bar(enabled, "samples") as prog:
        task = prog.add_task("run 3", total=n)
        prog.update(task, advance=k)
"""

from __future__ import annotations


def bar(enabled: bool, unit: str = "rows"):
    """A rich Progress: description, bar, done/total, rate in unit/s, elapsed, remaining;
    disabled (draws nothing, costs nothing) unless enabled."""
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn,  # noqa: PLC0415
                               TextColumn, TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text  # noqa: PLC0415

    class Rate(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} {unit}/s" if speed else f"- {unit}/s")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                    disable=not enabled, transient=False)

"""Screens and the run report: named screen views, and an HTML page about one generation run.

screens: the shipped screen_* views; data: the report's queries; plots: matplotlib figures;
page: number formatting and the HTML. Everything reads through the SQL views, so the report
shows what `matstore query` would.
"""

from __future__ import annotations

from .screens import ReportError, latest_run, run_screen, screen_notes, screen_sql, screens
from .page import write_report

__all__ = ["ReportError", "latest_run", "run_screen", "screen_notes", "screen_sql", "screens", "write_report"]

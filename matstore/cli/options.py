"""Options shared by the commands, and the choices they read from the plug-in registries."""

from __future__ import annotations

import functools
from typing import Callable, Iterable

import click
from rich.console import Console

from .. import output
from ..store import DEFAULT_PATH

console = Console(stderr=True, emoji=False, soft_wrap=True)  # ":a:" stays text; lines never hard-wrapped (greps, paths)
POSITIVE = click.IntRange(min=1)          # counts and sizes: 0 or less would do nothing
TOLERANCE = click.FloatRange(0, 1, min_open=True, max_open=True)   # see options.decode_tolerance


class RegistryChoice(click.Choice):
    """A click.Choice over a registry's names, read when first needed: a registry whose entries
    import torch (training presets) costs nothing until its command runs or shows help."""

    def __init__(self, names: Callable[[], Iterable[str]]):
        self._names = names
        self.case_sensitive = True

    @property
    def choices(self):
        return tuple(self._names())


def store_option(f):
    # the default is named, not resolved: help must not depend on (or glue ./ to) $MATSTORE_DB
    return click.option("--db", "db", envvar="MATSTORE_DB", default=None, show_default=False,
                        help=f"Store file (default: $MATSTORE_DB if set, else {DEFAULT_PATH} in "
                             f"the current folder).")(f)


def output_options(f):
    """The one set of output options of every command that prints rows (data on stdout). The
    command gets fmt 'auto' when no format flag was given: a table where it fits, else records."""
    inner = f

    @functools.wraps(inner)
    def f(*args, **kwargs):
        kwargs["fmt"] = kwargs.get("fmt") or "auto"
        return inner(*args, **kwargs)

    f = click.option("--table", "fmt", flag_value="table",
                     help="Show a table even where it is wider than the terminal.")(f)
    f = click.option("--records", "fmt", flag_value="records",
                     help="Show one `column | value` line per field, records separated.")(f)
    f = click.option("--csv", "fmt", flag_value="csv", help="Write CSV to stdout.")(f)
    f = click.option("--json", "fmt", flag_value="json", help="Write JSON to stdout.")(f)
    f = click.option("--parquet", "parquet", type=click.Path(dir_okay=False), default=None,
                     help="Write the rows to this Parquet file instead.")(f)
    f = click.option("--limit-rows", type=click.IntRange(min=0), default=output.DEFAULT_LIMIT,
                     show_default=True,
                     help="Rows shown as a table or records (CSV, JSON, Parquet: all rows). "
                          "Default view: a table where it fits the width, records otherwise.")(f)
    return f


def param_option(f):
    return click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
                        help="Bind VALUE to $NAME in the SQL (repeatable); never pasted into it.")(f)


def no_progress_option(f):
    f = click.option("--quiet", "quiet", is_flag=True, hidden=True,
                     help="Old name of --no-progress.")(f)
    return click.option("--no-progress", is_flag=True, help="No progress bar.")(f)


def where_option(f):
    return click.option("--where", default=None, help="SQL condition on compositions (alias c), "
                        "e.g. \"n_elements >= $n\" -p n=3.")(f)


def device_option(f):
    return click.option("--device", default=None, help="cuda or cpu (default: cuda when present).")(f)

"""Options shared by the commands, and the choices they read from the plug-in registries."""

from __future__ import annotations

import functools
import inspect
from typing import Callable, Iterable

import click
from rich.console import Console

from .. import outpaths, output
from ..store import DEFAULT_PATH

console = Console(stderr=True, emoji=False, soft_wrap=True)  # ":a:" stays text; lines never hard-wrapped (greps, paths)
POSITIVE = click.IntRange(min=1)          # counts and sizes: 0 or less would do nothing
TOLERANCE = click.FloatRange(0, 1, min_open=True, max_open=True)   # see option_checks.decode_tolerance


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
    own_overwrite = "overwrite" in inspect.signature(inner).parameters   # e.g. export parquet

    @functools.wraps(inner)
    def f(*args, **kwargs):
        kwargs["fmt"] = kwargs.get("fmt") or "auto"
        overwrite = kwargs.get("overwrite") if own_overwrite else kwargs.pop("overwrite", False)
        if kwargs.get("parquet"):   # checked before the command runs (and again when written)
            outpaths.check(kwargs["parquet"], overwrite=bool(overwrite), option="--parquet")
        token = output.OVERWRITE.set(bool(overwrite))
        try:
            return inner(*args, **kwargs)
        finally:
            output.OVERWRITE.reset(token)

    if not own_overwrite:
        f = click.option("--overwrite", is_flag=True,
                         help="Let --parquet replace an existing file (never the store).")(f)
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
    """The one `--where` (featurize, validate, predict): a condition, see matstore.selection."""
    return click.option("--where", default=None, help="SQL condition on compositions (alias c), "
                        "e.g. \"n_elements >= $n\" -p n=3 or \"composition_id IN (SELECT "
                        "composition_id FROM candidates)\"; only ids are selected.")(f)


def device_option(f):
    return click.option("--device", default=None, help="cuda or cpu (default: cuda when present).")(f)


def executor_options(f):
    """--executor / --executor-insecure of every long job (matstore.executor, docs/cluster.md)."""
    f = click.option("--executor-insecure", "executor_insecure", is_flag=True,
                     help="Allow a remote scheduler over plain TCP (unencrypted, unauthenticated).")(f)
    return click.option("--executor", "executor", default="local", show_default=True,
                        metavar="local|processes:N|dask://HOST:PORT",
                        help="Where batches are computed: in this process, N local worker processes "
                             "(127.0.0.1 only), or an existing Dask scheduler (tls://HOST:PORT with "
                             "TLS). This process stays the one writer.")(f)


def example(*lines: str) -> str:
    """A command's epilog: the example(s) its --help ends with (tests/test_cli_examples.py parses
    each one)."""
    return "\b\nExample" + ("s" if len(lines) > 1 else "") + ":\n" + "\n".join(f"  {line}" for line in lines)

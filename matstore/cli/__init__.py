"""The `matstore` command: parse options, call the library, print. No logic lives here.

One module per command group (store, ingest, compute, results, models); choices come from the
plug-in registries (matstore.sources.SOURCES, matstore.features.FEATURIZERS,
matstore.training.presets.PRESETS, matstore.validity.OXIDATION_SETS), never from lists here.
"""

from __future__ import annotations

import sys
import warnings

import click
import duckdb

from ..errors import MatstoreError
from . import al, cccgan, chemsys, compute, ingest, model_bias, models, relax, results, store, structures
from .options import console


class MatstoreGroup(click.Group):
    """matstore's own errors (MatstoreError) and DuckDB's (explained) become one line; anything
    else is a bug and keeps its traceback."""

    def invoke(self, ctx):
        from ..query import friendly  # noqa: PLC0415

        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own: usage errors, --help (exit 0), ctrl-c
        except duckdb.Error as e:
            fail(str(friendly(e, "error")))
        except (MatstoreError, FileNotFoundError) as e:
            fail(f"error: {e}")


ERROR_CHARS = 500   # an error quoting a 50 MB formula or a file's text is cut to this


def fail(line: str) -> None:
    """One line on stderr, exit 1: control characters (ESC sequences from a received store)
    and line breaks become `?`, and the line is cut to ERROR_CHARS."""
    from ..catalogue import printable  # noqa: PLC0415

    console.print(printable(line, ERROR_CHARS), markup=False, highlight=False, soft_wrap=True)
    sys.exit(1)


def _one_line_warning(message, category, *_args, **_kwargs) -> str:
    """A warning on the command line is one line naming its kind, not Python's file:line + source."""
    return f"warning ({category.__name__}): {message}\n"


@click.group(cls=MatstoreGroup)
@click.version_option(package_name="matstore")
@click.option("--read-only", is_flag=True, envvar="MATSTORE_READ_ONLY",
              help="Never write to the store: commands that would write fail instead.")
@click.pass_context
def main(ctx, read_only):
    """Materials discovery in one DuckDB file."""
    warnings.formatwarning = _one_line_warning
    if read_only:  # every Store this command makes is read-only; reset when the command ends
        from ..store import READ_ONLY  # noqa: PLC0415

        token = READ_ONLY.set(True)
        ctx.call_on_close(lambda: READ_ONLY.reset(token))


for _group in (store, ingest, compute, results, models, al, model_bias, structures, relax, chemsys, cccgan):
    for _command in _group.COMMANDS:
        main.add_command(_command)

__all__ = ["main"]

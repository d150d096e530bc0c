"""The `matstore` command: parse options, call the library, print. No logic lives here."""

from __future__ import annotations

import sys

import click
import duckdb
from rich.console import Console

from . import output
from .store import Store, StoreError, default_path

console = Console(stderr=True)


def store_option(f):
    return click.option("--db", "db", envvar="MATSTORE_DB", default=None, show_default=False,
                        help=f"Store file (default: $MATSTORE_DB or ./{default_path()}).")(f)


def output_options(f):
    f = click.option("--csv", "fmt", flag_value="csv", help="Write CSV to stdout.")(f)
    f = click.option("--json", "fmt", flag_value="json", help="Write JSON to stdout.")(f)
    f = click.option("--parquet", "parquet", type=click.Path(dir_okay=False), default=None,
                     help="Write the result to this Parquet file.")(f)
    f = click.option("--limit-rows", type=int, default=50, show_default=True,
                     help="Rows shown in the terminal table.")(f)
    return f


class MatstoreGroup(click.Group):
    """Turn matstore's own errors into one clear line instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.ClickException:
            raise
        except duckdb.Error as e:
            console.print(f"[red]error from DuckDB:[/red] {e}")
            sys.exit(1)
        except (StoreError, ValueError, FileNotFoundError, RuntimeError) as e:
            console.print(f"[red]error:[/red] {e}")
            sys.exit(1)


@click.group(cls=MatstoreGroup)
@click.version_option(package_name="matstore")
def main():
    """Materials discovery in one DuckDB file."""


@main.command()
@click.argument("path", required=False)
def init(path):
    """Create (or upgrade) a store file."""
    store = Store.init(path)
    console.print(f"store {store.path} at schema version {store.version()}")


@main.command()
@click.argument("sql")
@store_option
@click.option("--write", is_flag=True, help="Allow statements that change the store.")
@output_options
def query(sql, db, write, fmt, parquet, limit_rows):
    """Run SQL against the store (read-only unless --write)."""
    from .query import run_query

    df = run_query(Store(db), sql, write=write)
    output.emit(df, fmt or "table", parquet, max_rows=limit_rows)


@main.command()
@store_option
def info(db):
    """Schema version, rows per table and source, ingests."""
    from .info import store_info

    i = store_info(Store(db, read_only=True))
    console.print(f"[bold]{i.path}[/bold]  schema {i.schema_version} (code {i.code_schema_version})")
    output.print_table(i.table_counts, title="tables")
    output.print_table(i.source_counts, title="materials per source")
    output.print_table(i.ingests, title="ingests")


if __name__ == "__main__":
    main()

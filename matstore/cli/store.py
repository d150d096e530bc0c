"""`matstore init | query | info | export | merge`: the store file itself."""

from __future__ import annotations

import click

from .. import output
from ..store import Store
from .options import console, example, output_options, param_option, store_option


@click.command(epilog=example("matstore init study.duckdb"))
@click.argument("path", required=False)
@store_option
def init(path, db):
    """Create (or upgrade) a store file: PATH, or --db like every other command (PATH wins)."""
    store = Store.init(path or db)
    console.print(f"store {store.path} at schema version {store.version()}")


@click.command(epilog=example('matstore query "SELECT * FROM candidates WHERE n_elements >= $n" -p n=3'))
@click.argument("sql")
@store_option
@click.option("--write", is_flag=True, help="Allow statements that change the store.")
@param_option
@output_options
def query(sql, db, write, params, fmt, parquet, limit_rows):
    """Run SQL against the store (read-only unless --write)."""
    from ..query import parse_params, run_query

    df = run_query(Store(db), sql, write=write, params=parse_params(params))
    output.emit(df, fmt, parquet, max_rows=limit_rows)


@click.command(epilog=example("matstore info --provenance"))
@store_option
@click.option("--provenance", "show_provenance", is_flag=True,
              help="Also show who/what produced what: ingests, models (data hash, seed), runs.")
@output_options
def info(db, show_provenance, fmt, parquet, limit_rows):
    """Schema version, rows per table and source, ingests."""
    from ..info import store_info

    i = store_info(Store(db, read_only=True))
    console.print(f"[bold]{i.path}[/bold]  schema {i.schema_version} (code {i.code_schema_version})")
    sections = {"tables": i.table_counts, "materials per source": i.source_counts, "ingests": i.ingests}
    if show_provenance:
        from ..provenance import provenance

        sections.update(provenance(Store(db, read_only=True)).tables())
    output.emit_sections(sections, fmt, parquet, max_rows=limit_rows,
                         meta={"path": str(i.path), "schema_version": i.schema_version,
                               "code_schema_version": i.code_schema_version})


@click.group(epilog=example("matstore export parquet export/"))
def export():
    """Write the store in a form other tools read (Parquet)."""


@export.command("parquet", epilog=example(
    "matstore export parquet export/ --only compositions --only properties --overwrite"))
@click.argument("out_dir", type=click.Path(file_okay=False))
@store_option
@click.option("--overwrite", is_flag=True, help="Replace OUT_DIR if it exists.")
@click.option("--only", "tables", multiple=True, metavar="TABLE",
              help="Export only this table (repeatable).")
@output_options
def export_parquet_cmd(out_dir, db, overwrite, tables, fmt, parquet, limit_rows):
    """One folder of Parquet per table (generated partitioned by run_id) plus manifest.json."""
    from ..export import export_parquet

    summary = export_parquet(Store(db, read_only=True), out_dir, overwrite=overwrite, tables=list(tables) or None)
    console.print(f"exported to {out_dir}")
    output.emit(summary.select("table", "rows", "partitioned_by"), fmt, parquet, max_rows=limit_rows)


@click.command(epilog=example("matstore merge colleague.duckdb"))
@click.argument("other", type=click.Path(dir_okay=False))
@store_option
@output_options
def merge(other, db, fmt, parquet, limit_rows):
    """Import a collaborator's store OTHER into this one (ids remapped, nothing twice)."""
    from ..merge import merge as merge_stores

    r = merge_stores(Store(db), other)
    note = f", upgraded a copy from schema {r.other_schema_version}" if r.upgraded else ""
    console.print(f"merged {other}{note}: {r.total_added} rows added")
    output.emit(r.added, fmt, parquet, max_rows=limit_rows)


COMMANDS = [init, query, info, export, merge]

"""Inserting compositions: the one place keys are checked against their element/count maps."""

from __future__ import annotations

from ..errors import MatstoreError


class KeyCollision(MatstoreError, ValueError):
    """Two different element/count maps with one composition_id (raised where no row can be
    rejected instead, e.g. a generate batch racing another writer)."""


def collisions(con, rows, table: str = "compositions"):
    """For rows (composition_id, formula, elements, counts; one per record, in order), the formula
    already holding each row's key with a DIFFERENT element/count map: first the table's row, else
    the first earlier row of the batch with that key. A polars String Series, null where the key is
    free or holds the same map. One join on the batch's distinct keys (the table's primary key)."""
    import polars as pl  # noqa: PLC0415

    df = rows if isinstance(rows, pl.DataFrame) else pl.from_arrow(rows)
    df = df.select("composition_id", "formula", "elements", pl.col("counts").cast(pl.List(pl.Int64)))
    first = df.with_row_index("_i").group_by("composition_id", maintain_order=True).agg(
        pl.col("formula").first().alias("_f_formula"), pl.col("elements").first().alias("_f_el"),
        pl.col("counts").first().alias("_f_n"))
    con.register("_matstore_keys", first.select("composition_id").to_arrow())
    try:
        taken = pl.from_arrow(con.sql(
            f'SELECT t.composition_id, t.formula AS _t_formula, t.elements AS _t_el, '
            f't.counts::BIGINT[] AS _t_n FROM "{table}" t '
            f'JOIN _matstore_keys k USING (composition_id)').to_arrow_table())
    finally:
        con.unregister("_matstore_keys")
    if taken.height == 0:
        taken = pl.DataFrame(schema={"composition_id": pl.Int64, "_t_formula": pl.String,
                                     "_t_el": pl.List(pl.String), "_t_n": pl.List(pl.Int64)})
    j = df.join(first, on="composition_id", how="left").join(taken, on="composition_id", how="left")
    in_table = pl.col("_t_formula").is_not_null()
    return j.select(
        pl.when(in_table & ((pl.col("elements") != pl.col("_t_el")) | (pl.col("counts") != pl.col("_t_n"))))
        .then(pl.col("_t_formula"))
        .when(~in_table & ((pl.col("elements") != pl.col("_f_el")) | (pl.col("counts") != pl.col("_f_n"))))
        .then(pl.col("_f_formula"))
        .otherwise(pl.lit(None, pl.String)).alias("taken_by"))["taken_by"]


def insert_new(con, rows, table: str = "compositions") -> tuple[int, "object"]:
    """Insert compositions rows (all table columns) whose key is new; returns (rows inserted,
    taken_by Series as from collisions()). Rows with a non-null taken_by are NOT inserted: the
    caller rejects them with the reason f"composition key collision with {taken_by}"."""
    import polars as pl  # noqa: PLC0415

    df = rows if isinstance(rows, pl.DataFrame) else pl.from_arrow(rows)
    if df.height == 0:
        return 0, pl.Series("taken_by", [], pl.String)
    taken_by = collisions(con, df, table)
    ok = df.filter(taken_by.is_null()).unique(subset="composition_id", keep="first", maintain_order=True)
    if ok.height == 0:
        return 0, taken_by
    cols = ", ".join(f'"{c}"' for c in ok.columns)
    con.register("_matstore_new_comps", ok.to_arrow())
    try:
        got = con.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM _matstore_new_comps s '
                          f'WHERE NOT EXISTS (SELECT 1 FROM "{table}" t '
                          f'WHERE t.composition_id = s.composition_id)').fetchall()
    finally:
        con.unregister("_matstore_new_comps")
    return (int(got[0][0]) if got else 0), taken_by


def collision_reason(taken_by: str) -> str:
    return f"composition key collision with {taken_by}"


def insert_unseen(con, rows, table: str = "compositions") -> int:
    """Insert rows (all table columns, distinct keys) the caller found unseen in its in-memory
    key -> fingerprint map of the table (the generate runner: no join per batch). Keys another
    writer inserted meanwhile are skipped through the primary-key index; if any was skipped, those
    rows are compared exactly and a different map raises KeyCollision (the batch rolls back)."""
    import pyarrow as pa  # noqa: PLC0415

    arrow = rows if isinstance(rows, pa.Table) else rows.to_arrow()
    cols = ", ".join(f'"{c}"' for c in arrow.column_names)
    con.register("_matstore_new_comps", arrow)
    try:
        got = con.execute(f'INSERT OR IGNORE INTO "{table}" ({cols}) '
                          f"SELECT {cols} FROM _matstore_new_comps").fetchall()
    finally:
        con.unregister("_matstore_new_comps")
    n = int(got[0][0]) if got else 0
    if n < arrow.num_rows:
        taken_by = collisions(con, arrow, table)
        bad = taken_by.is_not_null()
        if bad.any():
            import polars as pl  # noqa: PLC0415

            clash = pl.from_arrow(arrow.select(["formula"])).filter(bad)["formula"][0]
            raise KeyCollision(f"{clash}: {collision_reason(taken_by.filter(bad)[0])} "
                               f"(another writer stored that key meanwhile)")
    return n

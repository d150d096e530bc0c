"""Writing a validated copy into this store, in the caller's transaction: ids of our own work
(ingests, model versions, runs) remapped, every other table keyed, only new rows inserted."""

from __future__ import annotations

import duckdb
import polars as pl

from .base import SRC, ident, scalar

# Tables whose integer id we remap: (id column, identity columns, sequence or None).
ID_TABLES = {
    "ingests": ("ingest_id", ["source", "uri", "params", "started_at"], None),
    "model_versions": ("model_id", ["name", "kind", "created_at", "weights_sha256"], "model_id_seq"),
    "runs": ("run_id", ["kind", "started_at", "host", "pid"], "run_id_seq"),
    # active learning: a campaign is the same when made at the same moment with the same seed
    # and selection; a proposal by its (remapped) campaign, round and rank
    "al_campaigns": ("campaign_id", ["name", "property", "created_at", "seed", "base_selection"], None),
    "al_proposals": ("proposal_id", ["campaign_id", "round_no", "rank"], None),
}
REMAP = {"ingest_id": "ingests", "model_id": "model_versions", "run_id": "runs",
         "autoencoder_id": "model_versions", "oracle_model_id": "model_versions",
         "campaign_id": "al_campaigns", "proposal_id": "al_proposals"}
# Natural keys of the other tables (after remapping); a table not listed is keyed by all columns.
KEYS = {
    "compositions": ["composition_id"],
    "materials": ["material_id"],
    "properties": ["material_id", "name"],
    "features": ["composition_id", "featurizer", "version"],
    "validity": ["composition_id", "checker_version"],
    "run_batches": ["run_id", "batch_no"],
    "generated": ["run_id", "batch_no"],  # whole batches, as committed
    "predictions": ["composition_id", "model_id", "run_id", "property"],
    "composition_sets": ["set_name", "composition_id", "model_id", "role"],
    "sources": ["name"],  # one kind per source name: a different one is refused (_check_sources)
    "stability": ["composition_id", "model_id", "reference"],
    "generation_quality": ["run_id"],
    "latents": ["composition_id", "model_id"],
    "al_rounds": ["campaign_id", "round_no"],
    "al_labels": ["proposal_id"],
    "structures": ["structure_id"],  # a hash of (origin, method, material, fingerprint)
    "relaxations": ["structure_id", "model_id", "settings_hash"],
}
# id columns where 0 means "none" (stability.model_id 0: the reference's own energies): kept as 0
ZERO_MEANS_NONE = {("stability", "model_id")}
ORDER = ["ingests", "model_versions", "runs", "al_campaigns", "al_proposals"]  # maps first
SKIP = {"schema_migrations", "validity_checkers"}  # local bookkeeping: which checker our views use


def merge_into(con: duckdb.DuckDBPyConnection, schema: dict) -> tuple[pl.DataFrame, dict[str, dict[int, int]]]:
    """Every name in the SQL below comes from our schema (validated equal to the copy's)."""
    maps: dict[str, dict[int, int]] = {}
    rows = []
    tables = set(schema) - SKIP
    for t in ORDER + sorted(tables - set(ORDER)):
        cols = [c for c, _ in schema[t]]
        n_other = scalar(con, f"SELECT count(*) FROM {SRC}.{ident(t)}")
        if t in ID_TABLES:
            maps[t], added = _merge_id_table(con, t, cols)
        else:
            added = _merge_keyed(con, t, cols)
        rows.append((t, n_other, added))
    return pl.DataFrame(rows, schema=["table", "rows_in_other", "rows_added"], orient="row"), maps


def _select_remapped(table: str, cols: list[str], replace: dict[str, str] | None = None) -> tuple[str, str]:
    """(select list, joins) reading SRC.table with its id columns rewritten through maps."""
    replace = dict(replace or {})
    joins = []
    for c in cols:
        if c in replace:
            continue
        target = REMAP.get(c)
        if target and target != table:
            alias = f"_m_{c}"
            joins.append(f"LEFT JOIN _merge_map_{target} {alias} ON {alias}.old = s.{ident(c)}")
            replace[c] = (f"CASE WHEN s.{ident(c)} = 0 THEN 0 ELSE {alias}.new END"
                          if (table, c) in ZERO_MEANS_NONE else f"{alias}.new")
    if table == "stability" and "reference_ingests" in cols:   # a list of ingest ids
        replace["reference_ingests"] = (
            "(SELECT list(_mi.new ORDER BY _mi.new) FROM unnest(s.reference_ingests) _u(old) "
            "JOIN _merge_map_ingests _mi ON _mi.old = _u.old)")
    select = ", ".join(f"{replace[c]} AS {ident(c)}" if c in replace else f"s.{ident(c)}" for c in cols)
    return select, " ".join(joins)


def _merge_keyed(con, table: str, cols: list[str]) -> int:
    select, joins = _select_remapped(table, cols)
    key = KEYS.get(table, cols)
    before = scalar(con, f"SELECT count(*) FROM {ident(table)}")
    on = " AND ".join(f"t.{ident(k)} IS NOT DISTINCT FROM n.{ident(k)}" for k in key)
    col_list = ", ".join(ident(c) for c in cols)
    con.execute(f"""
        INSERT INTO {ident(table)} ({col_list})
        SELECT {col_list} FROM (SELECT {select} FROM {SRC}.{ident(table)} s {joins}) n
        WHERE NOT EXISTS (SELECT 1 FROM {ident(table)} t WHERE {on})""")
    return scalar(con, f"SELECT count(*) FROM {ident(table)}") - before


def _merge_id_table(con, table: str, cols: list[str]) -> tuple[dict[int, int], int]:
    id_col, identity, seq = ID_TABLES[table]
    cast = {"params": "::VARCHAR"}

    def theirs(k: str) -> str:   # an identity column that is itself an id compares remapped
        target = REMAP.get(k)
        if target and target != table:
            return f"(SELECT _m.new FROM _merge_map_{target} _m WHERE _m.old = s.{ident(k)})"
        return f"s.{ident(k)}{cast.get(k, '')}"

    on = " AND ".join(f"t.{ident(k)}{cast.get(k, '')} IS NOT DISTINCT FROM {theirs(k)}" for k in identity)
    pairs = con.execute(f"""
        SELECT s.{ident(id_col)}, min(t.{ident(id_col)}) FROM {SRC}.{ident(table)} s
        LEFT JOIN {ident(table)} t ON {on} GROUP BY s.{ident(id_col)} ORDER BY s.{ident(id_col)} """).fetchall()
    mapping = {old: new for old, new in pairs if new is not None}
    fresh = [old for old, new in pairs if new is None]
    for old, new in zip(fresh, _new_ids(con, table, id_col, seq, len(fresh))):
        mapping[old] = new
    con.execute(f"CREATE OR REPLACE TEMP TABLE _merge_map_{table} (old BIGINT, new BIGINT)")
    if mapping:
        con.execute(f"INSERT INTO _merge_map_{table} SELECT unnest(?::BIGINT[]), unnest(?::BIGINT[])",
                    [list(mapping), list(mapping.values())])
    if table == "runs":
        _refresh_matched_runs(con, [old for old, new in pairs if new is not None])
    if not fresh:
        return mapping, 0
    replace = {id_col: "_self.new"}
    if table == "model_versions":
        replace["version"] = "_ver.new_version"
        _renumber_versions(con, fresh)
    select, joins = _select_remapped(table, cols, replace)
    joins = f"JOIN _merge_map_{table} _self ON _self.old = s.{ident(id_col)} " + joins
    if table == "model_versions":
        joins += ' JOIN _merge_versions _ver ON _ver.old = s."model_id"'
    col_list = ", ".join(ident(c) for c in cols)
    con.execute(f"""INSERT INTO {ident(table)} ({col_list}) SELECT {select} FROM {SRC}.{ident(table)} s {joins}
                    WHERE s.{ident(id_col)} IN (SELECT unnest(?::BIGINT[]))""", [fresh])
    return mapping, len(fresh)


def _refresh_matched_runs(con, matched: list[int]) -> None:
    """A run both stores have, that went further in theirs (a run merged while it was going):
    take their status and counters; its extra batches come in with run_batches/generated."""
    if not matched:
        return
    con.execute(f"""
        UPDATE runs SET status = s.status, finished_at = s.finished_at, n_written = s.n_written,
                        rows_per_s = s.rows_per_s
        FROM {SRC}.runs s JOIN _merge_map_runs m ON m.old = s.run_id
        WHERE runs.run_id = m.new AND s.run_id IN (SELECT unnest(?::INTEGER[]))
          AND (SELECT count(*) FROM {SRC}.run_batches b WHERE b.run_id = s.run_id)
            > (SELECT count(*) FROM run_batches b WHERE b.run_id = runs.run_id)""", [matched])


def _new_ids(con, table: str, id_col: str, seq: str | None, n: int) -> list[int]:
    """n unused ids: max+1.. for plain tables; from the sequence (skipped past max) otherwise."""
    if n == 0:
        return []
    top = scalar(con, f"SELECT coalesce(max({ident(id_col)}), 0) FROM {ident(table)}")
    if seq is None:
        return list(range(top + 1, top + 1 + n))
    ids: list[int] = []
    while len(ids) < n:  # DuckDB has no setval: draw until past ids that were set explicitly
        got = [r[0] for r in con.execute(f"SELECT nextval('{seq}') FROM range(?)", [n - len(ids)]).fetchall()]
        ids.extend(i for i in got if i > top)
    return ids


def _renumber_versions(con, fresh: list[int]) -> None:
    """Versions for incoming models: kept where free for the name, else after the name's last."""
    rows = con.execute(f"""SELECT model_id, name, version FROM {SRC}.model_versions
                           WHERE model_id IN (SELECT unnest(?::INTEGER[])) ORDER BY name, version""",
                       [fresh]).fetchall()
    taken: dict[str, set[int]] = {}
    for name, version in con.execute("SELECT name, version FROM model_versions").fetchall():
        taken.setdefault(name, set()).add(version)
    out = []
    for model_id, name, version in rows:
        used = taken.setdefault(name, set())
        new = version if version not in used else max(used) + 1
        used.add(new)
        out.append((model_id, new))
    con.execute("CREATE OR REPLACE TEMP TABLE _merge_versions (old INTEGER, new_version INTEGER)")
    con.execute("INSERT INTO _merge_versions SELECT unnest(?::INTEGER[]), unnest(?::INTEGER[])",
                [[r[0] for r in out], [r[1] for r in out]])

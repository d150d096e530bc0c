"""The complete check of a received copy (attached as SRC) before anything is written: schema
equal to ours, unique ids, every composition and material id recomputed, every reference inside
the file, finite values, model weights as recorded, nothing that contradicts this store. The
first problem found is a MergeError naming it."""

from __future__ import annotations

import hashlib
import json
import math
from functools import lru_cache

import polars as pl

from .. import compositions as C
from .. import migrations
from ..connection import open_duckdb
from .base import SRC, MergeError, ident, scalar

# (table, column, parent table, parent column): every non-NULL value must be a row of the parent
# in the other file itself, so nothing received can attach to one of our rows by a forged id.
# composition_sets.composition_id is not one: a set lists keys, and a shipped generator's
# leave-out set names compositions the store never saw (pretrained.import_leave_out); its
# model_id is checked, and is remapped to the received model.
REFERENCES = [
    ("materials", "composition_id", "compositions", "composition_id"),
    ("properties", "composition_id", "compositions", "composition_id"),
    ("features", "composition_id", "compositions", "composition_id"),
    ("validity", "composition_id", "compositions", "composition_id"),
    ("generated", "composition_id", "compositions", "composition_id"),
    ("predictions", "composition_id", "compositions", "composition_id"),
    ("properties", "material_id", "materials", "material_id"),
    ("materials", "ingest_id", "ingests", "ingest_id"),
    ("rejects", "ingest_id", "ingests", "ingest_id"),
    ("runs", "model_id", "model_versions", "model_id"),
    ("predictions", "model_id", "model_versions", "model_id"),
    ("composition_sets", "model_id", "model_versions", "model_id"),
    ("run_batches", "run_id", "runs", "run_id"),
    ("generated", "run_id", "runs", "run_id"),
    ("predictions", "run_id", "runs", "run_id"),
    ("stability", "composition_id", "compositions", "composition_id"),
    ("stability", "run_id", "runs", "run_id"),
    ("curated", "ingest_id", "ingests", "ingest_id"),
    ("generation_quality", "run_id", "runs", "run_id"),
    ("generation_quality", "model_id", "model_versions", "model_id"),
    ("latents", "composition_id", "compositions", "composition_id"),
    ("latents", "model_id", "model_versions", "model_id"),
    ("al_campaigns", "autoencoder_id", "model_versions", "model_id"),
    ("al_campaigns", "oracle_model_id", "model_versions", "model_id"),
    ("al_rounds", "campaign_id", "al_campaigns", "campaign_id"),
    ("al_proposals", "campaign_id", "al_campaigns", "campaign_id"),
    ("al_proposals", "composition_id", "compositions", "composition_id"),
    ("al_labels", "proposal_id", "al_proposals", "proposal_id"),
    ("al_labels", "campaign_id", "al_campaigns", "campaign_id"),
    ("al_labels", "composition_id", "compositions", "composition_id"),
    ("al_labels", "material_id", "materials", "material_id"),
    ("al_labels", "model_id", "model_versions", "model_id"),
    ("structures", "composition_id", "compositions", "composition_id"),
    ("structures", "material_id", "materials", "material_id"),
    ("structures", "ingest_id", "ingests", "ingest_id"),
    ("structures", "run_id", "runs", "run_id"),
    ("structures", "parent_structure_id", "structures", "structure_id"),
    ("relaxations", "structure_id", "structures", "structure_id"),
    ("relaxations", "relaxed_structure_id", "structures", "structure_id"),
    ("relaxations", "composition_id", "compositions", "composition_id"),
    ("relaxations", "model_id", "model_versions", "model_id"),
    ("relaxations", "run_id", "runs", "run_id"),
    ("stability", "structure_id", "structures", "structure_id"),
]
UNIQUE = {"ingests": ["ingest_id"], "model_versions": ["model_id"], "runs": ["run_id"],
          "compositions": ["composition_id"], "materials": ["material_id"],
          "al_campaigns": ["campaign_id"], "al_proposals": ["proposal_id"],
          "structures": ["structure_id"]}
FINITE = [("properties", "value"), ("predictions", "value"), ("predictions", "std"),
          ("predictions", "p_metal"), ("stability", "e_above_hull"),
          ("stability", "formation_energy_per_atom"), ("al_labels", "value"),
          ("al_proposals", "acquisition"), ("al_proposals", "mean"), ("al_proposals", "std"),
          ("structures", "volume"), ("relaxations", "energy_per_atom"),
          ("relaxations", "initial_energy_per_atom"), ("relaxations", "fmax"), ("relaxations", "volume_change")]
# Limits of a received composition: the ingest's own (compositions.MAX_COUNT per element; atoms
# per formula unit where compositions defines MAX_ATOMS, else what the INTEGER counts allow).
MAX_COUNT = C.MAX_COUNT
MAX_ATOMS = getattr(C, "MAX_ATOMS", None)


@lru_cache(maxsize=1)
def _expected_schema_cached(version: int) -> tuple:
    con = open_duckdb(":memory:")
    try:
        migrations.migrate(con, ":memory:")
        return tuple(schema_of(con, "memory").items())
    finally:
        con.close()


def expected_schema() -> dict[str, list[tuple[str, str]]]:
    """table -> [(column, type)] that our migrations build at the latest version."""
    return dict(_expected_schema_cached(migrations.latest_version()))


def schema_of(con, catalog: str) -> dict[str, list[tuple[str, str]]]:
    rows = con.execute(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
        "JOIN information_schema.tables t ON t.table_catalog = c.table_catalog "
        " AND t.table_schema = c.table_schema AND t.table_name = c.table_name "
        "WHERE c.table_catalog = ? AND c.table_schema = 'main' AND t.table_type = 'BASE TABLE' "
        "ORDER BY c.table_name, c.ordinal_position", [catalog]).fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in rows:
        out.setdefault(table, []).append((column, dtype))
    return out


def validate(con, schema: dict[str, list[tuple[str, str]]], other: str) -> None:
    """Check the attached copy (SRC) completely; raises MergeError naming the first problem."""
    _check_schema(schema_of(con, SRC), schema, other)
    for table, cols in UNIQUE.items():
        _check_unique(con, table, cols, other)
    _check_compositions(con, other)
    _check_materials(con, other)
    for table, col, parent, pcol in REFERENCES:
        _check_reference(con, table, col, parent, pcol, other)
    n = scalar(con, f"""SELECT count(*) FROM {SRC}.properties p JOIN {SRC}.materials m
                        USING (material_id) WHERE p.composition_id <> m.composition_id""")
    if n:
        raise MergeError(f"merge: {other}: {n} properties name another composition than their material")
    for table, col in FINITE:
        n = scalar(con, f"SELECT count(*) FROM {SRC}.{ident(table)} WHERE {ident(col)} IS NOT NULL "
                        f"AND NOT isfinite({ident(col)})")
        if n:
            raise MergeError(f"merge: {other}: {n} rows of {table} have a non-finite {col} (inf/NaN)")
    _check_models(con, other)
    _check_active_learning(con, other)
    check_against_ours(con, schema, other)


def _check_active_learning(con, other: str) -> None:
    """Latents: one finite vector length per autoencoder version; labels: the composition of
    their proposal and their material, and the value of that material's property row."""
    n = scalar(con, f"""SELECT count(*) FROM (SELECT model_id FROM {SRC}.latents
                        GROUP BY model_id HAVING min(len(vector)) <> max(len(vector)))""")
    bad = scalar(con, f"""SELECT count(*) FROM {SRC}.latents
                          WHERE len(list_filter(vector, lambda v: NOT isfinite(v))) > 0""")
    if n or bad:
        raise MergeError(f"merge: {other}: latents of {n} autoencoder version(s) differ in length, "
                         f"{bad} hold non-finite values; nothing was merged")
    n = scalar(con, f"""SELECT count(*) FROM {SRC}.al_labels l
        LEFT JOIN {SRC}.al_proposals p USING (proposal_id)
        LEFT JOIN {SRC}.materials m ON m.material_id = l.material_id
        LEFT JOIN {SRC}.al_campaigns c ON c.campaign_id = l.campaign_id
        LEFT JOIN {SRC}.properties pr ON pr.material_id = l.material_id AND pr.name = c.property
        WHERE p.composition_id IS DISTINCT FROM l.composition_id
           OR m.composition_id IS DISTINCT FROM l.composition_id
           OR p.campaign_id IS DISTINCT FROM l.campaign_id
           OR pr.value IS DISTINCT FROM l.value""")
    if n:
        raise MergeError(f"merge: {other}: {n} active-learning label(s) disagree with their proposal, "
                         f"material or property value; nothing was merged")


def check_against_ours(con, schema: dict, other: str) -> None:
    """What depends on this store's rows: the same schema, no composition_id that is another
    composition here (a key collision or a forged row), no formula under another id, feature
    vectors of the same length."""
    _check_schema(schema_of(con, _catalog(con)), schema, "this store")
    clash = con.execute(f"""
        SELECT s.composition_id, s.formula, t.formula FROM {SRC}.compositions s
        JOIN compositions t USING (composition_id)
        WHERE (s.formula, s.elements, s.counts, s.n_elements, s.n_atoms)
              IS DISTINCT FROM (t.formula, t.elements, t.counts, t.n_elements, t.n_atoms)
        LIMIT 1""").fetchall()
    if clash:
        cid, theirs, ours = clash[0]
        raise MergeError(f"merge: {other}: composition_id {cid} is {theirs!r} there but {ours!r} "
                         f"here (a key collision or a forged row); nothing was merged")
    dup = con.execute(f"""
        SELECT s.formula FROM {SRC}.compositions s JOIN compositions t
          ON t.formula = s.formula AND t.composition_id <> s.composition_id LIMIT 1""").fetchall()
    if dup:
        raise MergeError(f"merge: {other}: formula {dup[0][0]!r} has another composition_id there "
                         f"than here; nothing was merged")
    _check_features(con, other)
    _check_sources(con)


def _check_schema(got: dict, want: dict, who: str) -> None:
    version = migrations.latest_version()
    extra = sorted(set(got) - set(want))
    if extra:
        raise MergeError(f"merge: {who} has table {extra[0]!r}, which matstore's schema "
                         f"(version {version}) does not have; nothing was merged")
    missing = sorted(set(want) - set(got))
    if missing:
        raise MergeError(f"merge: {who} lacks table {missing[0]!r} of matstore's schema "
                         f"(version {version}); nothing was merged")
    for table, cols in want.items():
        if got[table] == cols:
            continue
        unknown = [c for c, _ in got[table] if c not in dict(cols)]
        if unknown:
            raise MergeError(f"merge: {who}: table {table!r} has column {unknown[0]!r}, which is not "
                             f"in matstore's schema (expected {[c for c, _ in cols]}); nothing was merged")
        raise MergeError(f"merge: {who}: table {table!r} has columns {got[table]}, matstore's schema "
                         f"(version {version}) has {cols}; nothing was merged")


def _check_unique(con, table: str, cols: list[str], other: str) -> None:
    key = ", ".join(ident(c) for c in cols)
    nulls = " OR ".join(f"{ident(c)} IS NULL" for c in cols)
    n, distinct, n_null = con.execute(
        f"SELECT count(*), count(DISTINCT ({key})), count(*) FILTER ({nulls}) "
        f"FROM {SRC}.{ident(table)}").fetchall()[0]
    if n != distinct or n_null:
        raise MergeError(f"merge: {other}: {table}.{'/'.join(cols)} is not a unique id "
                         f"({n - distinct} duplicate, {n_null} empty)")


def composition_problem(row: dict) -> str | None:
    """Why a compositions row is not what matstore.compositions makes of its elements and counts
    (None when it is): unknown element, count out of range, not reduced or not canonical, or a
    formula / key / n_elements / n_atoms that differs from the recomputed one."""
    els, counts = row["elements"], row["counts"]
    if not els or counts is None or len(els) != len(counts):
        return "elements and counts do not pair up"
    unknown = [e for e in els if e not in C.Z_OF]
    if unknown:
        return f"unknown element {unknown[0]!r}"
    if len(set(els)) != len(els):
        return "an element appears twice"
    if any(c is None or c < 1 or c > MAX_COUNT for c in counts):
        return f"a count is outside 1..{MAX_COUNT}"
    if MAX_ATOMS is not None and sum(counts) > MAX_ATOMS:
        return f"{sum(counts)} atoms per formula unit exceed {MAX_ATOMS}"
    if math.gcd(*counts) != 1:
        return "counts are not reduced"
    if list(els) != C.sort_order(els):
        return "elements are not in canonical order"
    cmap = dict(zip(els, counts))
    formula = C.reduced_formula(cmap)
    if row["formula"] != formula:
        return f"formula {row['formula']!r} is not {formula!r}, the formula of its elements and counts"
    key = C.composition_key(cmap)
    if row["composition_id"] != key:
        return f"composition_id is not {key}, the key of its elements and counts"
    if row["n_elements"] != len(els) or row["n_atoms"] != sum(counts):
        return "n_elements/n_atoms do not match its counts"
    return None


def _check_compositions(con, other: str) -> None:
    """Every composition new to this store recomputed (one we have is compared as a whole row
    by _check_against_ours)."""
    new = con.sql(f"""
        SELECT composition_id, formula, elements, counts, n_elements, n_atoms
        FROM {SRC}.compositions s
        WHERE NOT EXISTS (SELECT 1 FROM compositions t WHERE t.composition_id = s.composition_id)
        """).to_arrow_table()
    from .composition_checks import problems  # noqa: PLC0415 (it imports this module)

    bad = [f"{row['formula']!r} (id {row['composition_id']}): {why}"
           for _, row, why in problems(new, limit=3)]
    if bad:
        n = "several" if len(bad) == 3 else len(bad)
        raise MergeError(f"merge: {other}: {n} invalid compositions, e.g. {'; '.join(bad)}; "
                         f"nothing was merged")


def _check_materials(con, other: str) -> None:
    from ..ingest import material_ids  # noqa: PLC0415 (ingest is heavy; only merge needs it here)

    mats = con.execute(f"SELECT source, external_id, material_id FROM {SRC}.materials "
                       f"ORDER BY source").fetchall()
    by_source: dict[str, list[tuple[str, int]]] = {}
    for source, ext, mid in mats:
        if source is None or ext is None:
            raise MergeError(f"merge: {other}: material {mid} has no source/external_id")
        by_source.setdefault(source, []).append((ext, mid))
    for source, rows in by_source.items():
        want = material_ids(source, [r[0] for r in rows])
        for (ext, mid), w in zip(rows, want):
            if mid != w:
                raise MergeError(f"merge: {other}: material_id {mid} of ({source!r}, {ext!r}) is not "
                                 f"{w}, the id of its source and external id; nothing was merged")


def _check_reference(con, table, col, parent, pcol, other) -> None:
    n = scalar(con, f"""SELECT count(*) FROM {SRC}.{ident(table)} c WHERE c.{ident(col)} IS NOT NULL
                        AND NOT EXISTS (SELECT 1 FROM {SRC}.{ident(parent)} p
                                        WHERE p.{ident(pcol)} = c.{ident(col)})""")
    if n:
        raise MergeError(f"merge: {other}: {n} rows of {table} point at a {col} that is not in its "
                         f"{parent}; nothing was merged")


def _check_features(con, other: str) -> None:
    rows = con.execute(f"""
        WITH s AS (SELECT featurizer, version, min(len(vector)) AS lo, max(len(vector)) AS hi
                   FROM {SRC}.features GROUP BY ALL),
             t AS (SELECT featurizer, version, min(len(vector)) AS n FROM features GROUP BY ALL)
        SELECT s.featurizer, s.version, s.lo, s.hi, t.n FROM s LEFT JOIN t USING (featurizer, version)
        WHERE s.lo <> s.hi OR s.lo <> coalesce(t.n, s.lo) LIMIT 1""").fetchall()
    if rows:
        f, v, lo, hi, ours = rows[0]
        raise MergeError(f"merge: {other}: features {f!r} version {v!r} have vectors of length "
                         f"{lo}..{hi}" + (f", here {ours}" if ours is not None else "")
                         + "; nothing was merged")


def _check_models(con, other: str) -> None:
    """Weights as recorded (sha256); kinds whose family says so (forests: the array format, a
    pickle refused) rebuilt in full. Torch weights are not read here: they only ever load with
    weights_only=True, and an unknown kind or a bad config fails load_model with a clear error."""
    rows = con.execute(f"SELECT model_id, name, version, kind, weights, weights_sha256 "
                       f"FROM {SRC}.model_versions ORDER BY model_id").fetchall()
    for model_id, name, version, kind, w, sha in rows:
        ref = f"model {name}@{version} (id {model_id})"
        if w is not None and hashlib.sha256(w).hexdigest() != sha:
            raise MergeError(f"merge: {other}: {ref}: weights do not match their sha256; "
                             f"nothing was merged")
        if w is not None and _checked_on_merge(kind):
            from .. import registry  # noqa: PLC0415

            rec = pl.from_arrow(con.sql(f"SELECT * REPLACE (config::VARCHAR AS config) "
                                        f"FROM {SRC}.model_versions WHERE model_id = ?",
                                        params=[model_id]).to_arrow_table()).to_dicts()[0]
            try:
                rec["config"] = json.loads(rec["config"]) if rec["config"] else {}
                registry.rebuild(rec)
            except (ValueError, TypeError) as e:
                raise MergeError(f"merge: {other}: {ref} has a config that does not build: {e}") from None
            except registry.ModelError as e:
                raise MergeError(f"merge: {other}: {e}; nothing was merged") from None


def _checked_on_merge(kind: str) -> bool:
    """Whether a kind's weights are rebuilt in full before a merge (the family says: cheap kinds,
    e.g. forests, whose array format is checked tree by tree). Imports the model zoo (torch)."""
    from .. import models  # noqa: PLC0415

    return kind in models.KINDS and models.KINDS[kind].check_on_merge


def _check_sources(con) -> None:
    """A source name both stores use must mean the same kind of values (DFT / experiment)."""
    clash = con.execute(f"""
        SELECT s.name, t.kind, t.method, s.kind, s.method FROM {SRC}.sources s JOIN sources t USING (name)
        WHERE t.kind IS DISTINCT FROM s.kind OR t.method IS DISTINCT FROM s.method
        ORDER BY s.name""").fetchall()
    if clash:
        raise MergeError("merge: source name(s) recorded with another kind in the other store: " + "; ".join(
            f"{n}: here {k1}{' ' + m1 if m1 else ''}, there {k2}{' ' + m2 if m2 else ''}"
            for n, k1, m1, k2, m2 in clash) + " (nothing was changed)")


def _catalog(con) -> str:
    return con.execute("SELECT current_database()").fetchall()[0][0]

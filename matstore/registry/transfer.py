"""Moving model versions between stores (one Parquet file) and converting legacy pickled forests."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .. import models
from .. import outpaths
from ..store import Store
from .records import (COLUMNS, JSON_COLUMNS, OPTIONAL_COLUMNS, ModelError, ModelVersion, get_record,
                      insert_version)
from .refs import resolve_record
from .weights import rebuild

def export_models(store: Store, path: str | Path, refs: list | None = None,
                  overwrite: bool = False) -> int:
    """Write the given versions (default: all) with weights to one Parquet file; returns rows.
    An existing file is replaced only with overwrite, never a store (outpaths.check). A shipped
    model named in refs that the store lacks is imported first (registry.refs)."""
    path = outpaths.check(path, overwrite=overwrite, option="models export")
    if refs:
        ids = [resolve_record(store, r, weights=False)["model_id"] for r in refs]
        where, params = f"model_id IN ({', '.join('?' for _ in ids)})", ids
    else:
        where, params = "true", []
    tmp = path.with_name(path.name + ".partial")
    with store.connect(write_paths=[str(tmp)]) as con:
        n = con.execute(f"SELECT count(*) FROM model_versions WHERE {where}", params).fetchall()[0][0]
        if n == 0:
            raise ModelError(f"no models to export from {store.path}")
        cols = ", ".join(c if c not in JSON_COLUMNS else f"{c}::VARCHAR AS {c}" for c in COLUMNS)
        con.execute(f"COPY (SELECT model_id, {cols} FROM model_versions WHERE {where} ORDER BY model_id) "
                    f"TO '{_sql_str(tmp)}' (FORMAT parquet)", params)
    tmp.replace(path)  # no half-written export file under the real name
    return n


def _sql_str(p: Path) -> str:
    return str(p).replace("'", "''")


@dataclass
class ImportResult:
    imported: list[ModelVersion]
    skipped: list[str]  # "name@N (same weights as name@M)"


def import_models(store: Store, path: str | Path, then=None) -> ImportResult:
    """Read an export file: every row is checked (sha256, rebuild) before any is written.
    then(con): more writes in the same transaction (a shipped model's leave-out set), so an
    import lands whole or not at all."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    try:
        df = pl.read_parquet(path)
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"model file {path} is not a matstore model export: {e}") from None
    missing = [c for c in COLUMNS if c not in df.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise ModelError(f"model file {path} lacks columns {missing}")
    rows = [{"card": None, **r} for r in df.to_dicts()]
    for rec in rows:  # validate everything first: a bad file leaves the store as it was
        try:
            check = {**rec, "config": json.loads(rec["config"]) if rec["config"] else {}}
            for c in ("hyperparams", "split", "metrics", "software", "card"):
                json.loads(rec[c]) if rec[c] else None
        except (TypeError, ValueError) as e:
            raise ModelError(f"model file {path}: {rec.get('name')}@{rec.get('version')} has a "
                             f"JSON column that does not parse: {e}") from None
        check.setdefault("model_id", "?")
        rebuild(check)
    imported, skipped = [], []
    with store.transaction() as con:
        for rec in rows:
            same = con.execute("SELECT version FROM model_versions WHERE name = ? AND weights_sha256 = ?",
                               [rec["name"], rec["weights_sha256"]]).fetchall()
            if same:
                skipped.append(f"{rec['name']}@{rec['version']} (same weights as "
                               f"{rec['name']}@{same[0][0]})")
                continue
            model_id, version = insert_version(con, {c: rec[c] for c in COLUMNS})
            metrics = json.loads(rec["metrics"]) if rec["metrics"] else {}
            imported.append(ModelVersion(model_id, rec["name"], version, rec["kind"],
                                         rec["weights_sha256"], metrics))
        if then is not None:
            then(con)
    return ImportResult(imported, skipped)


def convert_forests(store: Store, refs: list | None = None, trust: bool = False) -> list[str]:
    """Rewrite pickled forests (older matstore) in the array format; returns the refs converted.

    Needs trust=True: the pickle is read through a restricted unpickler (models.forest), but the
    caller vouches for where the store came from. The weights sha256 is updated; the model keeps
    its id, name and version (its predictions are the same).
    """
    if not trust:
        raise ModelError("converting pickled forests reads pickles: pass trust=True (CLI: --trust) "
                         "only for a store whose origin you trust, or retrain the model instead")
    legacy_kinds = [k for k, f in models.KINDS.items() if f.legacy_format]
    with store.connect() as con:
        if refs:
            ids = [resolve_record(store, r, weights=False)["model_id"] for r in refs]
        else:
            ids = [r[0] for r in con.execute("SELECT model_id FROM model_versions WHERE kind IN "
                                             "(SELECT unnest(?::VARCHAR[])) ORDER BY model_id",
                                             [legacy_kinds]).fetchall()]
    converted = []
    updates = []
    for model_id in ids:
        rec = get_record(store, model_id)
        ref = f"{rec['name']}@{rec['version']}"
        if rec["kind"] not in legacy_kinds or rec.get("weights") is None:
            continue
        family = models.get(rec["kind"])
        if not family.legacy_weights(rec["weights"]):
            continue  # already arrays (or not a pickle: load_model reports what it is)
        sha = hashlib.sha256(rec["weights"]).hexdigest()
        if sha != rec.get("weights_sha256"):
            raise ModelError(f"model {ref}: weights are corrupt (sha256 does not match); not converted")
        try:
            new = family.convert_legacy(rec["weights"], rec["config"], rec.get("seed") or 0)
        except ValueError as e:   # the legacy weights do not convert (e.g. a ForestFormatError)
            raise ModelError(f"model {ref}: {e}") from None
        updates.append((model_id, new, hashlib.sha256(new).hexdigest()))
        converted.append(ref)
    if updates:
        with store.transaction() as con:
            for model_id, new, sha in updates:
                con.execute("UPDATE model_versions SET weights = ?, weights_sha256 = ? WHERE model_id = ?",
                            [new, sha, model_id])
    return converted

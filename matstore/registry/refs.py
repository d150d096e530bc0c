"""Model references, resolved in one place: ``resolve(store, ref)`` turns ``NAME`` (latest
version), ``NAME@N``, ``NAME#SHA`` (the version whose weights sha256 starts with SHA: an
identity that survives export, import and merge, where version numbers are renumbered) or a
model id into a loaded version. A shipped model (matstore.pretrained) the store lacks is imported
first, its file checked against its sha256, with one line on stderr saying so. Every command and
function that takes a model (predict, generate --predict, stability --model, active-learning
oracles and pool models) resolves through here; errors name the store's and the shipped models.

``rename(store, old, new)`` renames every version of a name; ``delete(store, ref)`` removes one
version, refused while anything (predictions, stability rows, runs, campaigns, latents) uses it.
"""

from __future__ import annotations

import sys

from ..store import Store
from .records import ModelError, get_record


def ref_name(ref) -> str | None:
    """The model name a string reference names (None for a model id or an object)."""
    if not isinstance(ref, str) or ref.isdigit():
        return None
    return ref.split("#", 1)[0].rpartition("@")[0] or ref.split("#", 1)[0] or None


def _import_shipped(store: Store, ref) -> None:
    from .. import pretrained  # noqa: PLC0415

    name = ref_name(ref)
    if name and pretrained.ensure(store, name):
        rec = get_record(store, name, weights=False)
        print(f"imported the shipped model {rec['name']}@{rec['version']} "
              f"(sha256 {rec['weights_sha256'][:12]}, checked) into {store.path}", file=sys.stderr)


def _not_found(store: Store, ref, e: ModelError) -> ModelError:
    from .. import pretrained  # noqa: PLC0415

    shipped = ", ".join(pretrained.names()) or "none"
    return ModelError(f"{e}; shipped with matstore: {shipped}")


def resolve_record(store: Store, ref, weights: bool = False) -> dict:
    """The model_versions row a reference names (shipped models imported first)."""
    _import_shipped(store, ref)
    try:
        return get_record(store, ref, weights=weights)
    except ModelError as e:
        if str(e).startswith("no model"):
            raise _not_found(store, ref, e) from None
        raise


def show_model(store: Store, ref) -> dict:
    """The full record of one version, JSON columns decoded, weights left out (a shipped model the
    store lacks is imported first, like everywhere else)."""
    return resolve_record(store, ref, weights=False)


def resolve(store: Store, ref, device=None):
    """A loaded version (registry.LoadedModel) for a reference; an already loaded model (an object
    with ``sample`` or ``predict``) is returned as it is."""
    from .versions import LoadedModel  # noqa: PLC0415
    from .weights import rebuild  # noqa: PLC0415

    if not isinstance(ref, (str, int)) and (hasattr(ref, "sample") or hasattr(ref, "predict")):
        return ref
    record = resolve_record(store, ref, weights=True)
    loaded = LoadedModel(record, rebuild(record))
    if device is not None:
        loaded.to(device)
    return loaded


def identity(record: dict) -> str:
    """``NAME@N#SHA12``: the version here and the identity that holds in every store."""
    return f"{record['name']}@{record['version']}#{record['weights_sha256'][:12]}"


def rename(store: Store, old: str, new: str) -> int:
    """Rename every version of model ``old`` to ``new`` (a new name); returns versions renamed.
    Split sets (``old@N/role``) follow; predictions keep their model ids, so nothing else moves."""
    if not new or "@" in new or "#" in new or new.isdigit():
        raise ModelError(f"model name {new!r}: must be non-empty, not a number, and contain no '@' or '#'")
    with store.transaction() as con:
        n = con.execute("SELECT count(*) FROM model_versions WHERE name = ?", [old]).fetchall()[0][0]
        if not n:
            raise ModelError(f"no model {old!r} in {store.path}")
        if con.execute("SELECT count(*) FROM model_versions WHERE name = ?", [new]).fetchall()[0][0]:
            raise ModelError(f"model name {new!r} is taken in {store.path}; nothing was renamed")
        con.execute("UPDATE model_versions SET name = ? WHERE name = ?", [new, old])
        con.execute("UPDATE composition_sets SET set_name = ? || substr(set_name, length(?) + 1) "
                    "WHERE model_id IN (SELECT model_id FROM model_versions WHERE name = ?) "
                    "AND starts_with(set_name, ? || '@')", [new, old, new, old])
    return int(n)


def delete(store: Store, ref) -> str:
    """Delete one version (and its split sets); refused while any table's rows refer to it.
    Returns the identity of what was deleted."""
    from ..merge.base import ident  # noqa: PLC0415

    rec = get_record(store, ref, weights=False)
    model_id = int(rec["model_id"])
    with store.transaction() as con:
        cols = con.execute("SELECT c.table_name, c.column_name FROM duckdb_columns() c JOIN duckdb_tables() t "
                           "ON t.table_name = c.table_name AND t.schema_name = c.schema_name "
                           "WHERE c.schema_name = 'main' AND c.column_name LIKE '%model_id' "
                           "AND c.table_name NOT IN ('model_versions', 'composition_sets') "
                           "ORDER BY 1, 2").fetchall()
        users = []
        for table, col in cols:
            n = con.execute(f"SELECT count(*) FROM {ident(table)} WHERE {ident(col)} = ?",
                            [model_id]).fetchall()[0][0]
            if n:
                users.append(f"{n:,} {table} rows")
        if users:
            raise ModelError(f"model {identity(rec)} is used by {', '.join(users)}; nothing was deleted")
        con.execute("DELETE FROM composition_sets WHERE model_id = ?", [model_id])
        con.execute("DELETE FROM model_versions WHERE model_id = ?", [model_id])
    return identity(rec)

"""Model versions that ship inside the package, so a new user predicts and generates without training.

Each is a model export file (registry.export_models: one Parquet file, weights included) in this
folder plus an entry in MANIFEST.json: the file's sha256, the script that made it (rerun it on
../shared/data to reproduce), the data files' sha256, the training selection and the metrics.
Importing checks the file's sha256 against the manifest, then goes through import_models, which
rebuilds and checks every version before writing (weights load without pickle).

Scripts write entries with ``record(...)``; users ``import_pretrained(store, name)`` or let
``ensure(store, ref)`` do it when a command names a shipped model the store does not have yet.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import MatstoreError
from ..store import Store

PACKAGE_DIR = Path(__file__).resolve().parent
MANIFEST = PACKAGE_DIR / "MANIFEST.json"
# All shipped files together stay small enough for a wheel (tens of MB).
MAX_TOTAL_BYTES = 40 * 1024 * 1024
MAX_FILE_BYTES = 8 * 1024 * 1024   # one shipped model file (issue 30); every other tracked file: 1 MiB


class PretrainedError(MatstoreError, LookupError):
    """An unknown pretrained name, or a shipped file that does not match its manifest."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest() -> dict[str, dict]:
    """name -> entry (file, sha256, model, script, data, selection, metrics, ...)."""
    if not MANIFEST.is_file():
        return {}
    return json.loads(MANIFEST.read_text())


def names() -> list[str]:
    return sorted(manifest())


def entry(name: str) -> dict:
    m = manifest()
    if name not in m:
        known = ", ".join(sorted(m)) or "none"
        raise PretrainedError(f"no pretrained model {name!r} ships with matstore (shipped: {known})")
    return m[name]


def path(name: str) -> Path:
    """The shipped export file of ``name``, checked against the manifest's sha256."""
    e = entry(name)
    p = PACKAGE_DIR / e["file"]
    if p.parent != PACKAGE_DIR or not p.is_file():
        raise PretrainedError(f"pretrained {name!r}: file {e['file']!r} is missing from {PACKAGE_DIR}")
    if sha256_file(p) != e["sha256"]:
        raise PretrainedError(f"pretrained {name!r}: {p.name} does not match its manifest sha256")
    return p


def import_pretrained(store: Store, name: str):
    """Import the shipped model ``name`` into ``store`` (same weights already there: skipped),
    with its shipped leave-out set, so `matstore quality` measures its recovery there too."""
    from ..registry import import_models  # noqa: PLC0415 (imports torch)

    parsed = leave_out(name)   # checked before anything is written: a forged entry imports nothing
    return import_models(store, path(name), then=lambda con: write_leave_out(con, name, parsed))


def import_leave_out(store: Store, name: str) -> int:
    """The shipped leave-out formulas of ``name`` as composition_sets rows (role 'holdout',
    set '<name>/leave-out') of the store's version with the shipped weights, unless that version
    already has a leave-out split (trained here, or imported before). Returns rows written."""
    parsed = leave_out(name)
    with store.transaction() as con:
        return write_leave_out(con, name, parsed)


def leave_out(name: str) -> list:
    """The shipped leave-out compositions of ``name`` (checked against the manifest), or []."""
    from ..compositions import try_parse  # noqa: PLC0415

    lo = entry(name).get("leave_out")
    if not lo:
        return []
    f = PACKAGE_DIR / lo["file"]
    if f.parent != PACKAGE_DIR or not f.is_file() or sha256_file(f) != lo["sha256"]:
        raise PretrainedError(f"pretrained {name!r}: leave-out file {lo['file']!r} is missing or "
                              f"does not match its manifest sha256")
    parsed = [try_parse(line) for line in f.read_text().split("\n") if line.strip()]
    bad = [c for c in parsed if isinstance(c, str)]
    if bad or len(parsed) != lo["n"]:
        raise PretrainedError(f"pretrained {name!r}: leave-out file {f.name} holds {len(parsed)} formulas "
                              f"({len(bad)} unreadable), the manifest says {lo['n']}")
    return parsed


def write_leave_out(con, name: str, parsed: list) -> int:
    """In the caller's transaction: the leave-out compositions themselves (those the store lacks,
    so the set's rows point at compositions of this store and it merges), then its
    composition_sets rows. Returns the set rows written."""
    import datetime as dt  # noqa: PLC0415

    import polars as pl  # noqa: PLC0415

    from ..compositions import insert_new  # noqa: PLC0415
    from ..store import append  # noqa: PLC0415

    if not parsed:
        return 0
    uniq = {c.composition_id: c for c in parsed}
    ids = sorted(uniq)
    weights = sorted(shipped_weights(name))
    row = con.execute("SELECT max(model_id) FROM model_versions WHERE name = ? AND "
                      "list_contains(?::VARCHAR[], weights_sha256)", [name, weights]).fetchall()
    if not row or row[0][0] is None:
        return 0
    model_id = int(row[0][0])
    have = con.execute("SELECT count(*) FROM composition_sets WHERE model_id = ? AND role IN "
                       "('val', 'test', 'holdout')", [model_id]).fetchall()[0][0]
    if have:
        return 0
    comps = list(uniq.values())
    _, taken_by = insert_new(con, pl.DataFrame({
        "composition_id": pl.Series([c.composition_id for c in comps], dtype=pl.Int64),
        "formula": [c.formula for c in comps],
        "elements": pl.Series([list(c.elements) for c in comps], dtype=pl.List(pl.String)),
        "counts": pl.Series([list(c.counts) for c in comps], dtype=pl.List(pl.Int32)),
        "n_elements": pl.Series([c.n_elements for c in comps], dtype=pl.Int32),
        "n_atoms": pl.Series([c.n_atoms for c in comps], dtype=pl.Int32)}))
    if taken_by.drop_nulls().len():   # a key held by another map: that id is not this formula
        raise PretrainedError(f"pretrained {name!r}: {taken_by.drop_nulls().len()} leave-out "
                              f"formulas collide with other compositions of this store")
    append(con, "composition_sets", pl.DataFrame({
        "set_name": f"{name}/leave-out", "composition_id": pl.Series(ids, dtype=pl.Int64),
        "model_id": pl.Series([model_id] * len(ids), dtype=pl.Int32), "role": "holdout",
        "created_at": dt.datetime.now()}))
    return len(ids)


def _ref_name(ref) -> str | None:
    if not isinstance(ref, str):
        return None
    return ref.split("@", 1)[0]


def ensure(store: Store, ref) -> bool:
    """Import the shipped model a ref names when the store has no model of that name; True when
    it did. A ref the store knows, or that names nothing shipped, is left to the loader."""
    name = _ref_name(ref)
    if name is None or name not in manifest():
        return False
    with store.connect() as con:
        have = {r[0] for r in con.execute("SELECT weights_sha256 FROM model_versions WHERE name = ?",
                                          [name]).fetchall()}
    if have:
        try:
            shipped = shipped_weights(name)
        except PretrainedError:   # the shipped file is being replaced (a pretrain script runs)
            shipped = have
        if not have & shipped:
            import warnings  # noqa: PLC0415

            earlier = have & previous_weights(name)
            if earlier:   # imported from an earlier release: kept, the newer one is opt-in
                warnings.warn(f"the store's {name!r} is an earlier shipped version; it is used as the "
                              f"store has it — `matstore models import --pretrained {name}` adds the "
                              f"one this release ships as a new version", OlderPretrainedWarning,
                              stacklevel=2)
            else:         # e.g. a received store's model under our name
                warnings.warn(f"the store's model {name!r} is not the one that ships with matstore "
                              f"(other weights); it is used as the store has it — `matstore models "
                              f"import --pretrained {name}` adds the shipped one as a new version",
                              ShadowedPretrainedWarning, stacklevel=2)
        return False
    import_pretrained(store, name)
    return True


class ShadowedPretrainedWarning(UserWarning):
    """A store's model carries a shipped model's name but none of its weights."""


class OlderPretrainedWarning(UserWarning):
    """A store holds an earlier release's shipped version of a name, not this release's."""


def previous_weights(name: str) -> set[str]:
    """weights_sha256 of the versions earlier releases shipped under ``name`` (manifest ``previous``)."""
    return {w for p in entry(name).get("previous", []) for w in p.get("weights_sha256", [])}


def shipped_weights(name: str) -> set[str]:
    """weights_sha256 of the versions in the shipped file of ``name``."""
    return _weights_of(path(name))


def record(name: str, export_file: str | Path, *, model: str, script: str, data: dict[str, str],
           selection: str, metrics: dict, **extra) -> dict:
    """Add or replace ``name``'s manifest entry (called by the scripts that train shipped models).

    export_file must already sit in this folder; data maps each data file used to its sha256."""
    p = Path(export_file).resolve()
    if p.parent != PACKAGE_DIR:
        raise PretrainedError(f"{p} is not inside {PACKAGE_DIR}")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise PretrainedError(f"{p.name} is {p.stat().st_size / 2**20:.2f} MiB; a shipped model file "
                              f"stays under {MAX_FILE_BYTES / 2**20:.0f} MiB (train a smaller config)")
    m = manifest()
    new = {"file": p.name, "sha256": sha256_file(p), "bytes": p.stat().st_size, "model": model,
           "weights_sha256": sorted(_weights_of(p)), "script": script, "data": data,
           "selection": selection, "metrics": metrics, **extra}
    new["previous"] = previous_of(m.get(name), new)
    m[name] = new
    total = sum(v["bytes"] for v in m.values())
    if total > MAX_TOTAL_BYTES:
        raise PretrainedError(f"shipped models would take {total / 2**20:.1f} MiB "
                              f"(limit {MAX_TOTAL_BYTES / 2**20:.0f} MiB)")
    MANIFEST.write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    return m[name]


# what a replaced entry keeps in ``previous``: enough to recognise its weights in a store and to
# check that a store which imported it still predicts what it did
PREVIOUS_KEYS = ("model", "sha256", "bytes", "weights_sha256", "metrics", "check", "sample_check",
                 "hyperparams", "replaced_at")


def previous_of(old: dict | None, new: dict) -> list[dict]:
    """The ``previous`` list of ``new``: the old entry's, plus the old entry itself when its
    weights are not the new ones (a retrained model is a new version; stores keep the old)."""
    if not old:
        return []
    prev = list(old.get("previous", []))
    if old.get("weights_sha256") and set(old["weights_sha256"]) != set(new["weights_sha256"]):
        import datetime as dt  # noqa: PLC0415

        keep = {k: old[k] for k in PREVIOUS_KEYS if k in old}
        if "metrics" in keep:   # the test metrics only: the before/after table's numbers
            keep["metrics"] = {k: v for k, v in keep["metrics"].items() if k in ("test", "sample")}
        prev.append({**keep, "replaced_at": dt.date.today().isoformat()})
    return prev


def _weights_of(p: Path) -> set[str]:
    import polars as pl  # noqa: PLC0415

    return set(pl.read_parquet(p, columns=["weights_sha256"])["weights_sha256"].to_list())


def ids_sha256(composition_ids) -> str:
    """sha256 of a set of composition ids (sorted int64, little-endian): a shipped version's split
    roles are recorded this way, so a benchmark can prove it tests on rows the version never saw."""
    import numpy as np  # noqa: PLC0415

    return hashlib.sha256(np.sort(np.asarray(composition_ids, dtype="<i8")).tobytes()).hexdigest()

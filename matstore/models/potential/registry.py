"""A potential as a model version of a store: kind 'potential', no weights BLOB (they stay in the
wheel), weights_sha256 of the wheel's file, config = its identity (package, version, weights file,
energy convention). Every relaxation and energy names this row's model_id."""

from __future__ import annotations

import datetime as dt
import json

from ...registry.records import insert_version, software_versions
from ...store import Store
from . import resolve
from .potential_kind import KIND


def register(store: Store, name: str | None = None) -> tuple[int, str]:
    """The model_id and 'name@version' of the potential in store, written once per weights sha256
    (registering the same installed potential again returns the same row)."""
    spec = resolve(name)
    ident = spec.identity()
    with store.transaction() as con:
        got = con.execute("SELECT model_id, version FROM model_versions WHERE kind = ? AND name = ? "
                          "AND weights_sha256 = ? ORDER BY version DESC LIMIT 1",
                          [KIND, spec.name, ident["weights_sha256"]]).fetchall()
        if got:
            return got[0][0], f"{spec.name}@{got[0][1]}"
        row = {"name": spec.name, "kind": KIND, "config": json.dumps(ident), "hyperparams": json.dumps({}),
               "training_query": None, "training_rows": None, "data_hash": None, "split": None,
               "metrics": json.dumps({}), "weights": None, "weights_sha256": ident["weights_sha256"],
               "software": json.dumps({**software_versions(), spec.package: ident["package_version"]}),
               "device": None, "seed": None, "created_at": dt.datetime.now(),
               "card": json.dumps({"kind": KIND, "description": spec.description,
                                   "inputs": "crystal structure (lattice, species, positions)",
                                   "outputs": "energy (eV), forces (eV/Å), stress (eV/Å^3)",
                                   "energy_convention": spec.convention,
                                   "weights": f"{ident['weights_file']} in the {spec.package} "
                                              f"{ident['package_version']} wheel (not stored here)"})}
        model_id, version = insert_version(con, row)
    return model_id, f"{spec.name}@{version}"


def identity_of(store: Store, model_id: int) -> dict:
    """The stored identity (config) of a potential's model version; checks the kind."""
    from .spec import PotentialError  # noqa: PLC0415

    with store.connect() as con:
        got = con.execute("SELECT name, version, kind, config::VARCHAR FROM model_versions WHERE model_id = ?",
                          [int(model_id)]).fetchall()
    if not got or got[0][2] != KIND:
        raise PotentialError(f"model id {model_id} is not a potential in {store.path}")
    name, version, _, config = got[0]
    return {**json.loads(config), "ref": f"{name}@{version}", "model_id": int(model_id)}

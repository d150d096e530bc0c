"""Model versions as rows of model_versions: the columns, names and references, reading records."""

from __future__ import annotations

import importlib.metadata
import json
import re
import platform
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ..errors import MatstoreError
from ..store import Store, frame

COLUMNS = ["name", "version", "kind", "config", "hyperparams", "training_query", "training_rows",
           "data_hash", "split", "metrics", "weights", "weights_sha256", "software", "device",
           "seed", "created_at", "card"]
JSON_COLUMNS = ("config", "hyperparams", "split", "metrics", "software", "card")
OPTIONAL_COLUMNS = ("card",)      # not in model files exported before model cards
class ModelError(MatstoreError, RuntimeError):
    """A model that cannot be found, loaded or imported; the message names it and says why."""


@dataclass
class ModelVersion:
    model_id: int
    name: str
    version: int
    kind: str
    weights_sha256: str
    metrics: dict = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def identity(self) -> str:
        """NAME@N#SHA12: the weights hash names this version in every store it goes to."""
        return f"{self.ref}#{self.weights_sha256[:12]}"


def software_versions() -> dict[str, str]:
    import sklearn  # noqa: PLC0415
    import torch  # noqa: PLC0415

    try:
        ours = importlib.metadata.version("matstore")
    except importlib.metadata.PackageNotFoundError:
        ours = "unknown"
    return {"python": platform.python_version(), "torch": torch.__version__,
            "matstore": ours, "sklearn": sklearn.__version__, "numpy": np.__version__}


def to_json(value) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


def insert_version(con, row: dict) -> tuple[int, int]:
    version = con.execute("SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE name = ?",
                          [row["name"]]).fetchall()[0][0]
    row = {**row, "version": version}
    cols = ", ".join(COLUMNS)
    marks = ", ".join("?" for _ in COLUMNS)
    model_id = con.execute(f"INSERT INTO model_versions ({cols}) VALUES ({marks}) RETURNING model_id",
                           [row[c] for c in COLUMNS]).fetchall()[0][0]
    return model_id, version


def parse_ref(ref) -> tuple[str, list]:
    """-> (WHERE clause, params) selecting one row for a model reference: a model id, 'name'
    (latest version), 'name@N', or 'name#SHA' / 'name@N#SHA' / '#SHA' (the version whose weights
    sha256 starts with SHA, at least 8 hex digits: the same in every store the version goes to;
    the N of a NAME@N#SHA is this store's number and is not checked)."""
    if isinstance(ref, (int, np.integer)) or (isinstance(ref, str) and ref.isdigit()):
        return "model_id = ?", [int(ref)]
    if not isinstance(ref, str) or not ref:
        raise ModelError(f"model reference {ref!r}: expected 'name', 'name@N', 'name#SHA256' or a model id")
    if "#" in ref:
        name, _, sha = ref.partition("#")
        name = name.rpartition("@")[0] if "@" in name else name
        if not re.fullmatch(r"[0-9a-f]{8,64}", sha):
            raise ModelError(f"model reference {ref!r}: after '#' come 8 to 64 hex digits of the weights sha256")
        return ("model_id = (SELECT max(model_id) FROM model_versions WHERE starts_with(weights_sha256, ?)"
                + (" AND name = ?)" if name else ")"), [sha, name] if name else [sha])
    if "@" in ref:
        name, _, version = ref.rpartition("@")
        if not version.isdigit():
            raise ModelError(f"model reference {ref!r}: the version after '@' must be a number")
        return "name = ? AND version = ?", [name, int(version)]
    return ("name = ? AND version = (SELECT max(version) FROM model_versions WHERE name = ?)",
            [ref, ref])


def get_record(store: Store, ref, weights: bool = True) -> dict:
    where, params = parse_ref(ref)
    cols = "*" if weights else "* EXCLUDE (weights)"
    with store.connect() as con:
        rows = frame(con, f"SELECT {cols} FROM model_versions WHERE {where}", params).to_dicts()
        if not rows:
            names = [r[0] for r in con.execute("SELECT DISTINCT name FROM model_versions ORDER BY 1")
                     .fetchall()]
    if not rows:
        known = ", ".join(names) if names else "none yet; train one with `matstore train`"
        raise ModelError(f"no model {ref!r} in {store.path} (models: {known})")
    rec = rows[0]
    for c in JSON_COLUMNS:
        if isinstance(rec.get(c), str):
            rec[c] = json.loads(rec[c])
    return rec


def list_models(store: Store) -> pl.DataFrame:
    """One row per version: id, name@version, kind, rows, headline metrics, created."""
    with store.connect() as con:
        df = frame(con, """
            SELECT model_id, name, version, kind, training_rows, device, seed,
                   metrics::VARCHAR AS metrics, octet_length(weights) AS weight_bytes,
                   left(weights_sha256, 12) AS sha256, created_at
            FROM model_versions ORDER BY name, version""")
    return df

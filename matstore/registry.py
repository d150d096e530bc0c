"""Model versions as rows of the store: weights BLOB + sha256, config, lineage, metrics.

``save_model`` writes version = (max version of that name) + 1 in one short transaction;
``load_model("name" | "name@N" | model_id)`` rebuilds the module from its config and checks the
weights (sha256, then state_dict keys and shapes) with a message naming the model when they do not
fit. ``export_models``/``import_models`` move versions between stores as one Parquet file (the
row, weights included), skipping a version whose weights are already stored under that name.

Weights never run code when loaded, wherever they came from (this store, ``models import``, a
merged store): torch weights are ``torch.save({"format", "card", "state_dict"})`` bytes (the model
card says which network and which inputs; older versions hold the plain state_dict) loaded with
``weights_only=True`` (torch's restricted unpickler: tensors and containers only); forests are plain arrays
(``models.forest``: an npz archive read with ``allow_pickle=False``, tree structure checked).
Anything else is refused with a ModelError naming the model.

Forests saved by older matstore versions are joblib pickles. They are not converted silently on
upgrade: the store they sit in may have been received from someone else (``merge``), and
unpickling can run code. Loading one says so; ``convert_forests(store, refs, trust=True)`` (CLI:
``matstore models convert REF --trust``) rewrites them in the array format, reading the pickle
through an unpickler restricted to the sklearn/numpy/joblib classes of a forest. Retraining is the
alternative that needs no trust at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import io
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from . import models
from .models import forest
from .store import Store, append, frame
from .errors import MatstoreError

_COLUMNS = ["name", "version", "kind", "config", "hyperparams", "training_query", "training_rows",
            "data_hash", "split", "metrics", "weights", "weights_sha256", "software", "device",
            "seed", "created_at", "card"]
_JSON_COLUMNS = ("config", "hyperparams", "split", "metrics", "software", "card")
_OPTIONAL_COLUMNS = ("card",)      # not in model files exported before model cards
CARD_FORMAT = "matstore-model-card/1"
WEIGHTS_FORMAT = "matstore-torch-weights/1"   # torch weights: {"format", "card", "state_dict"}


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


def software_versions() -> dict[str, str]:
    import sklearn  # noqa: PLC0415
    import torch  # noqa: PLC0415

    try:
        ours = importlib.metadata.version("matstore")
    except importlib.metadata.PackageNotFoundError:
        ours = "unknown"
    return {"python": platform.python_version(), "torch": torch.__version__,
            "matstore": ours, "sklearn": sklearn.__version__, "numpy": np.__version__}


def model_card(kind: str, config, hyperparams: dict | None, module=None) -> dict:
    """What a version is, in plain JSON (strings, numbers, lists): the network, its inputs (the
    featurizer's name, version, shape and labels, or the latent vector), its outputs and target.
    Stored in model_versions.card and inside torch weights, so either says what the other is."""
    from .sources import UNITS  # noqa: PLC0415

    hp = hyperparams or {}
    card = {"format": CARD_FORMAT, "kind": kind,
            "architecture": type(module).__name__ if module is not None else None,
            "config": models.config_dict(config)}
    if kind in models.GENERATIVE_KINDS:   # latent vector in, one-hot composition maps out
        from .features import onehot  # noqa: PLC0415

        out = onehot.OneHot()
        maps = {"featurizer": out.name, "featurizer_version": out.version,
                "shape": list(out.shape), "labels": list(out.labels)}
        latent = getattr(models.make_config(kind, card["config"]), "latent_dim", None)
        # the GAN's generator reads a latent vector; the autoencoder reads maps (and decodes latents)
        card["inputs"] = ({"featurizer": "latent", "shape": [latent], "labels": None}
                          if kind == "wgan" else maps)
        card["outputs"] = {**maps, "meaning": "probability of each (element, count) cell; "
                                              "decode with matstore.features.onehot.decode"}
        card["latent_dim"] = latent
        return card
    from . import features  # noqa: PLC0415

    name = hp.get("featurizer")
    f = features.get(name) if name else None
    card["inputs"] = ({"featurizer": name, "featurizer_version": f.version,
                       "shape": list(f.shape), "labels": list(f.labels)} if f else None)
    prop = hp.get("property")
    card["target"] = {"property": prop, "unit": UNITS.get(prop), "source": hp.get("target_source"),
                      "source_kind": hp.get("target_kind"), "method": hp.get("target_method")}
    return card


def serialize(kind: str, module, card: dict | None = None) -> bytes:
    buf = io.BytesIO()
    if kind in models.TORCH_KINDS:
        import torch  # noqa: PLC0415

        state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
        # plain containers only, so torch.load(weights_only=True) reads the card too
        torch.save({"format": WEIGHTS_FORMAT, "card": card or {}, "state_dict": state}, buf)
    else:  # plain arrays, never a pickle (see models.forest)
        return forest.dump_forest(module.estimator if hasattr(module, "estimator") else module)
    return buf.getvalue()


def _json(value) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


def save_model(store: Store, name: str, kind: str, module_or_estimator, config, hyperparams: dict,
               training_query: str | None, training_rows: int | None, data_hash: str | None,
               split: dict | None, metrics: dict | None, device: str | None, seed: int | None,
               split_ids: dict[str, np.ndarray] | None = None) -> ModelVersion:
    """Write one model version; split_ids (role -> composition ids) go to composition_sets."""
    if not name or "@" in name:
        raise ModelError(f"model name {name!r}: must be non-empty and contain no '@'")
    models.make_config(kind, models.config_dict(config))  # fails early on a bad kind/config
    card = json.loads(_json(model_card(kind, config, hyperparams, module_or_estimator)))  # JSON types
    weights = serialize(kind, module_or_estimator, card)
    sha = hashlib.sha256(weights).hexdigest()
    row = {"name": name, "kind": kind, "config": _json(models.config_dict(config)),
           "hyperparams": _json(hyperparams or {}), "training_query": training_query,
           "training_rows": training_rows, "data_hash": data_hash, "split": _json(split),
           "metrics": _json(metrics or {}), "weights": weights, "weights_sha256": sha,
           "software": _json(software_versions()), "device": device, "seed": seed,
           "created_at": dt.datetime.now(), "card": _json(card)}
    with store.transaction() as con:
        model_id, version = _insert(con, row)
        if split_ids:
            sets = [pl.DataFrame({"set_name": f"{name}@{version}/{role}",
                                  "composition_id": np.asarray(ids, dtype=np.int64),
                                  "model_id": model_id, "role": role,
                                  "created_at": row["created_at"]})
                    for role, ids in split_ids.items() if len(ids)]
            if sets:
                append(con, "composition_sets", pl.concat(sets))
    return ModelVersion(model_id, name, version, kind, sha, metrics or {})


def _insert(con, row: dict) -> tuple[int, int]:
    version = con.execute("SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE name = ?",
                          [row["name"]]).fetchall()[0][0]
    row = {**row, "version": version}
    cols = ", ".join(_COLUMNS)
    marks = ", ".join("?" for _ in _COLUMNS)
    model_id = con.execute(f"INSERT INTO model_versions ({cols}) VALUES ({marks}) RETURNING model_id",
                           [row[c] for c in _COLUMNS]).fetchall()[0][0]
    return model_id, version


def _parse_ref(ref) -> tuple[str, list]:
    """-> (WHERE clause, params) selecting one row for a model reference."""
    if isinstance(ref, (int, np.integer)) or (isinstance(ref, str) and ref.isdigit()):
        return "model_id = ?", [int(ref)]
    if not isinstance(ref, str) or not ref:
        raise ModelError(f"model reference {ref!r}: expected 'name', 'name@N' or a model id")
    if "@" in ref:
        name, _, version = ref.rpartition("@")
        if not version.isdigit():
            raise ModelError(f"model reference {ref!r}: the version after '@' must be a number")
        return "name = ? AND version = ?", [name, int(version)]
    return ("name = ? AND version = (SELECT max(version) FROM model_versions WHERE name = ?)",
            [ref, ref])


def get_record(store: Store, ref, weights: bool = True) -> dict:
    where, params = _parse_ref(ref)
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
    for c in _JSON_COLUMNS:
        if isinstance(rec.get(c), str):
            rec[c] = json.loads(rec[c])
    return rec


class LoadedModel:
    """A stored version rebuilt: ``.module`` (eval mode) plus what predict/sample need."""

    def __init__(self, record: dict, module):
        self.record = {k: v for k, v in record.items() if k != "weights"}
        self.module = module
        self.model_id: int = record["model_id"]
        self.name: str = record["name"]
        self.version: int = record["version"]
        self.kind: str = record["kind"]
        self.config = models.make_config(self.kind, record["config"])
        hp = record.get("hyperparams") or {}
        self.property: str | None = hp.get("property")
        self.featurizer: str | None = hp.get("featurizer")
        self.device = "cpu"

    def __repr__(self) -> str:
        return f"LoadedModel({self.name}@{self.version}, kind={self.kind}, id={self.model_id})"

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def to(self, device) -> "LoadedModel":
        if self.kind in models.TORCH_KINDS:
            self.module.to(device)
            self.device = str(device)
        return self

    def predict(self, batch, device=None, batch_size: int | None = None) -> np.ndarray:
        """Property values (n,) for a CompositionBatch (NaN where the featurizer cannot encode a row)."""
        if self.kind not in models.PREDICTOR_KINDS:
            raise ModelError(f"model {self.ref} is a {self.kind}, not a property predictor")
        from . import features  # noqa: PLC0415

        ok = np.asarray(features.get(self.featurizer).encodable(batch), bool)
        out = np.full(len(batch), np.nan, dtype=np.float64)
        if ok.any():
            b = batch if ok.all() else type(batch)(batch.composition_id[ok], batch.z[ok], batch.counts[ok])
            x = models.featurize(self.kind, self.featurizer, b)
            out[ok] = self.predict_features(x, device=device, batch_size=batch_size)
        return out

    def predict_features(self, x: np.ndarray, device=None, batch_size: int | None = None) -> np.ndarray:
        """Predictions for an already featurized input (training and benchmarks use this)."""
        if self.kind == "rf":
            return self.module.predict(x)
        return predict_module(self.module, x, device or self.device, batch_size)

    def sample(self, n: int, generator=None, device=None):
        """(n, 8, 85) probabilities from the generator (wgan) or decoder of a random latent."""
        import torch  # noqa: PLC0415

        if self.kind == "wgan":
            if device is not None and str(device) != self.device:
                self.to(device)
            return self.module.sample(n, generator, device or self.device)
        if self.kind == "autoencoder":
            device = device or self.device
            self.to(device)
            gen_device = generator.device if generator is not None else device
            z = torch.randn(n, self.latent_dim, generator=generator, device=gen_device).to(device)
            with torch.no_grad():
                return self.module.decode(z)
        raise ModelError(f"model {self.ref} is a {self.kind}; only wgan/autoencoder sample")


# Rows per forward pass. Every pass has exactly this many rows (the last one zero-padded): BLAS
# and conv kernels reduce in an order that depends on the batch's shape, so a row's value would
# otherwise change (by ~1e-8) with the rows that share its batch - and a resumed or separate
# prediction run would not equal a fused, uninterrupted one.
PREDICT_ROWS = {"cpu": 1024, "cuda": 16384}   # the GPU wants bigger passes


def predict_module(module, x: np.ndarray, device, batch_size: int | None = None) -> np.ndarray:
    """Run a regressor module over x in fixed-shape batches on device; same path for cpu and cuda.
    A row's value depends only on that row (and batch_size), not on which rows come with it."""
    import torch  # noqa: PLC0415

    rows = int(batch_size or PREDICT_ROWS["cuda" if str(device).startswith("cuda") else "cpu"])
    module.eval()
    module.to(device)
    out = []
    with torch.no_grad():
        for i in range(0, len(x), rows):
            part = np.asarray(x[i:i + rows], dtype=np.float32)
            m = len(part)
            if m < rows:
                part = np.concatenate([part, np.zeros((rows - m,) + part.shape[1:], np.float32)])
            xb = torch.as_tensor(part, device=device)
            out.append(module(xb)[:m].float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _rebuild(record: dict):
    """The module/estimator from a record's config and weights, checked; raises ModelError."""
    ref = f"{record['name']}@{record['version']} (id {record['model_id']})"
    weights = record.get("weights")
    if weights is None:
        raise ModelError(f"model {ref} has no weights stored")
    sha = hashlib.sha256(weights).hexdigest()
    if sha != record.get("weights_sha256"):
        raise ModelError(f"model {ref}: weights are corrupt (sha256 {sha[:12]}... does not match "
                         f"the recorded {str(record.get('weights_sha256'))[:12]}...)")
    kind = record["kind"]
    try:
        module = models.build(kind, record["config"], seed=record.get("seed") or 0)
    except (ValueError, TypeError) as e:
        raise ModelError(f"model {ref}: stored config does not build a {kind}: {e}") from None
    if kind in models.TORCH_KINDS:
        import torch  # noqa: PLC0415

        try:
            state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 (any unpickling failure means unreadable weights)
            raise ModelError(f"model {ref}: weights are not a readable torch state_dict: {e}") from None
        state = state_dict_of(state)
        _check_state(ref, kind, module.state_dict(), state)
        module.load_state_dict(state)
        module.eval()
        return module
    try:
        return forest.load_forest(weights, module.config, seed=record.get("seed") or 0)
    except forest.LegacyPickleError as e:
        raise ModelError(f"model {ref}: {e}; retrain it, or if you trust where this store came "
                         f"from convert it with `matstore models convert "
                         f"{record['name']}@{record['version']} --trust`") from None
    except forest.ForestFormatError as e:
        raise ModelError(f"model {ref}: {e}") from None


def state_dict_of(saved: Any) -> Any:
    """The state_dict inside torch weights: a card + state_dict (WEIGHTS_FORMAT) or, as saved
    before model cards, the plain state_dict."""
    if isinstance(saved, dict) and saved.get("format") == WEIGHTS_FORMAT and "state_dict" in saved:
        return saved["state_dict"]
    return saved


def _check_state(ref: str, kind: str, expected: dict, got: Any) -> None:
    if not isinstance(got, dict):
        raise ModelError(f"model {ref}: weights are a {type(got).__name__}, not a state_dict")
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    if missing or extra:
        raise ModelError(f"model {ref}: weights do not fit the {kind} config: missing "
                         f"{missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected "
                         f"{extra[:5]}{'...' if len(extra) > 5 else ''}")
    for k, v in expected.items():
        if tuple(got[k].shape) != tuple(v.shape):
            raise ModelError(f"model {ref}: weight {k} has shape {tuple(got[k].shape)}, the "
                             f"{kind} config needs {tuple(v.shape)}")


def load_model(store: Store, ref, device=None) -> LoadedModel:
    """'name' (latest version), 'name@N' or a model id -> LoadedModel (eval mode, on device)."""
    record = get_record(store, ref)
    loaded = LoadedModel(record, _rebuild(record))
    if device is not None:
        loaded.to(device)
    return loaded


def list_models(store: Store) -> pl.DataFrame:
    """One row per version: id, name@version, kind, rows, headline metrics, created."""
    with store.connect() as con:
        df = frame(con, """
            SELECT model_id, name, version, kind, training_rows, device, seed,
                   metrics::VARCHAR AS metrics, octet_length(weights) AS weight_bytes,
                   left(weights_sha256, 12) AS sha256, created_at
            FROM model_versions ORDER BY name, version""")
    return df


def show_model(store: Store, ref) -> dict:
    """The full record of one version, JSON columns decoded, weights left out."""
    rec = get_record(store, ref, weights=False)
    return rec


def export_models(store: Store, path: str | Path, refs: list | None = None) -> int:
    """Write the given versions (default: all) with weights to one Parquet file; returns rows."""
    path = Path(path)
    if refs:
        ids = [get_record(store, r, weights=False)["model_id"] for r in refs]
        where, params = f"model_id IN ({', '.join('?' for _ in ids)})", ids
    else:
        where, params = "true", []
    with store.connect() as con:
        n = con.execute(f"SELECT count(*) FROM model_versions WHERE {where}", params).fetchall()[0][0]
        if n == 0:
            raise ModelError(f"no models to export from {store.path}")
        cols = ", ".join(c if c not in _JSON_COLUMNS else f"{c}::VARCHAR AS {c}" for c in _COLUMNS)
        tmp = path.with_name(path.name + ".partial")
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


def import_models(store: Store, path: str | Path) -> ImportResult:
    """Read an export file: every row is checked (sha256, rebuild) before any is written."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    try:
        df = pl.read_parquet(path)
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"model file {path} is not a matstore model export: {e}") from None
    missing = [c for c in _COLUMNS if c not in df.columns and c not in _OPTIONAL_COLUMNS]
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
        _rebuild(check)
    imported, skipped = [], []
    with store.transaction() as con:
        for rec in rows:
            same = con.execute("SELECT version FROM model_versions WHERE name = ? AND weights_sha256 = ?",
                               [rec["name"], rec["weights_sha256"]]).fetchall()
            if same:
                skipped.append(f"{rec['name']}@{rec['version']} (same weights as "
                               f"{rec['name']}@{same[0][0]})")
                continue
            model_id, version = _insert(con, {c: rec[c] for c in _COLUMNS})
            metrics = json.loads(rec["metrics"]) if rec["metrics"] else {}
            imported.append(ModelVersion(model_id, rec["name"], version, rec["kind"],
                                         rec["weights_sha256"], metrics))
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
    with store.connect() as con:
        if refs:
            ids = [get_record(store, r, weights=False)["model_id"] for r in refs]
        else:
            ids = [r[0] for r in con.execute("SELECT model_id FROM model_versions WHERE kind = 'rf' "
                                             "ORDER BY model_id").fetchall()]
    converted = []
    updates = []
    for model_id in ids:
        rec = get_record(store, model_id)
        ref = f"{rec['name']}@{rec['version']}"
        if rec["kind"] != "rf" or rec.get("weights") is None:
            continue
        if not forest.looks_pickled(rec["weights"]):
            continue  # already arrays (or not a pickle: load_model reports what it is)
        sha = hashlib.sha256(rec["weights"]).hexdigest()
        if sha != rec.get("weights_sha256"):
            raise ModelError(f"model {ref}: weights are corrupt (sha256 does not match); not converted")
        cfg = models.make_config("rf", rec["config"])
        try:
            new = forest.convert_legacy_pickle(rec["weights"], cfg, rec.get("seed") or 0)
        except forest.ForestFormatError as e:
            raise ModelError(f"model {ref}: {e}") from None
        updates.append((model_id, new, hashlib.sha256(new).hexdigest()))
        converted.append(ref)
    if updates:
        with store.transaction() as con:
            for model_id, new, sha in updates:
                con.execute("UPDATE model_versions SET weights = ?, weights_sha256 = ? WHERE model_id = ?",
                            [new, sha, model_id])
    return converted

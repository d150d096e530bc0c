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

``resolve(store, ref)`` is how every command takes a model (registry.refs): NAME, NAME@N,
NAME#SHA (weights hash: the same in every store) or a shipped name, imported when missing.

Modules: refs (resolving references; rename, delete), records (rows, references, listing), weights (the formats: card, torch weights, forests;
rebuilding a checked module), versions (save_model, load_model, LoadedModel), transfer (export,
import, convert_forests).
"""

from __future__ import annotations

from .records import COLUMNS, ModelError, ModelVersion, get_record, list_models, parse_ref, software_versions
from .refs import delete, identity, rename, resolve, resolve_record, show_model
from .transfer import ImportResult, convert_forests, export_models, import_models
from .versions import PREDICT_ROWS, LoadedModel, load_model, predict_module, save_model
from .weights import CARD_FORMAT, WEIGHTS_FORMAT, model_card, rebuild, serialize, state_dict_of


__all__ = ["CARD_FORMAT", "COLUMNS", "PREDICT_ROWS", "WEIGHTS_FORMAT", "ImportResult", "LoadedModel",
           "ModelError", "ModelVersion", "convert_forests", "delete", "identity", "rename", "resolve",
           "resolve_record", "export_models", "get_record",
           "import_models", "list_models", "load_model", "model_card", "parse_ref", "predict_module",
           "rebuild", "save_model", "serialize", "show_model", "software_versions", "state_dict_of"]

"""Random-forest baseline on Magpie features: the yardstick every neural predictor is reported
against. A thin scikit-learn wrapper with the regressors' small face: ``predict(x) -> (n,)``.

Decisions: 100 trees, max_features 1/3 (regression default of Breiman), min_samples_leaf 1;
scikit-learn's forest handles NaN features (elements without a Magpie value) natively.

Weights format (``dump_forest``/``load_forest``): the trees as plain arrays, never a pickle, so
loading a received model cannot run code. The bytes are ``MAGIC`` followed by an ``np.savez``
archive read with ``allow_pickle=False``; every array's name, dtype and shape is checked, and the
tree structure is checked (children inside the tree and after their parent, features inside the
input) before sklearn's Cython code walks it, because a bad index there reads arbitrary memory.
Forests stored by older matstore versions were joblib pickles: ``load_forest`` refuses them
(``LegacyPickleError``); ``convert_legacy_pickle`` turns one into this format through an
unpickler restricted to the few sklearn/numpy/joblib classes a forest is made of, and only when
the caller says the file is trusted (``matstore models convert REF --trust``).
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import MatstoreError
from .errors import ModelConfigError, WeightsError
from .family import FitData, FitResult, ModelFamily, names, register

if TYPE_CHECKING:   # sklearn loads when a forest is made or read, not with matstore.models
    from sklearn.ensemble import RandomForestRegressor

MAGIC = b"matstore-forest-v1\n"
# Every entry of the archive: name -> (dtype, number of dimensions).
_ARRAYS = {
    "meta": (np.int64, 1),            # n_features, n_outputs, n_trees
    "offsets": (np.int64, 1),         # node offsets of the trees in the flat arrays (n_trees + 1)
    "max_depth": (np.int64, 1),       # per tree
    "left_child": (np.int64, 1), "right_child": (np.int64, 1), "feature": (np.int64, 1),
    "threshold": (np.float64, 1), "impurity": (np.float64, 1), "n_node_samples": (np.int64, 1),
    "weighted_n_node_samples": (np.float64, 1), "missing_go_to_left": (np.uint8, 1),
    "value": (np.float64, 3),         # (nodes, n_outputs, 1)
}
_NODE_FIELDS = ["left_child", "right_child", "feature", "threshold", "impurity", "n_node_samples",
                "weighted_n_node_samples", "missing_go_to_left"]
_CHUNK = 16384  # rows per prediction task
MAX_NODES = 1 << 28  # ~17 GB of nodes: larger archives are refused before they are inflated


class ForestFormatError(MatstoreError, ValueError):
    """Forest weights that are not the safe array format, or whose trees are malformed."""


class LegacyPickleError(ForestFormatError):
    """Forest weights pickled by an older matstore: not loaded, since unpickling can run code."""


@dataclass
class ForestConfig:
    n_estimators: int = 100
    max_features: float = 1 / 3
    min_samples_leaf: int = 1
    max_depth: int | None = None
    n_jobs: int = -1

    def to_dict(self) -> dict:
        return asdict(self)


class ForestRegressor:
    """x (n, d) or (n, *shape) features -> (n,) predictions."""

    def __init__(self, config: ForestConfig, seed: int = 0, estimator: RandomForestRegressor | None = None):
        self.config = config
        self.estimator = estimator or _new_estimator(config, seed)

    def fit(self, x: np.ndarray, y: np.ndarray) -> "ForestRegressor":
        self.estimator.fit(np.asarray(x, dtype=np.float32).reshape(len(x), -1), np.asarray(y))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The trees' mean, summed in tree order for every row (what sklearn computes with
        n_jobs=1, bit for bit), with threads over row chunks: sklearn's own threads add trees in
        the order they finish, so its results vary in the last bits from call to call."""
        if len(x) == 0:
            return np.zeros(0, dtype=np.float64)
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1))
        est = self.estimator
        if x.shape[1] != est.n_features_in_:
            raise ModelConfigError(f"forest expects {est.n_features_in_} features, got {x.shape[1]}")
        trees = est.estimators_

        def part(lo: int) -> np.ndarray:
            xc = x[lo:lo + _CHUNK]
            y = np.zeros(len(xc), dtype=np.float64)
            for t in trees:  # tree.predict releases the GIL
                y += t.predict(xc, check_input=False)
            return y / len(trees)

        starts = range(0, len(x), _CHUNK)
        threads = min(len(starts), os.cpu_count() or 1 if est.n_jobs in (None, -1) else max(1, est.n_jobs))
        if threads <= 1:
            return np.concatenate([part(lo) for lo in starts])
        with ThreadPoolExecutor(threads) as pool:
            return np.concatenate(list(pool.map(part, starts)))


    def predict_trees(self, x: np.ndarray) -> np.ndarray:
        """Each tree's prediction, (n, n_trees) float64: the members of the forest as an
        ensemble (bootstrap resamples), for a spread; threads over row chunks as predict."""
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1))
        est = self.estimator
        if len(x) and x.shape[1] != est.n_features_in_:
            raise ModelConfigError(f"forest expects {est.n_features_in_} features, got {x.shape[1]}")
        trees = est.estimators_

        def part(lo: int) -> np.ndarray:
            xc = x[lo:lo + _CHUNK]
            return np.stack([t.predict(xc, check_input=False) for t in trees], axis=1).astype(np.float64)

        starts = range(0, len(x), _CHUNK)
        if not len(starts):
            return np.zeros((0, len(trees)))
        threads = min(len(starts), os.cpu_count() or 1 if est.n_jobs in (None, -1) else max(1, est.n_jobs))
        if threads <= 1:
            return np.concatenate([part(lo) for lo in starts])
        with ThreadPoolExecutor(threads) as pool:
            return np.concatenate(list(pool.map(part, starts)))


def _new_estimator(config: ForestConfig, seed: int) -> RandomForestRegressor:
    from sklearn.ensemble import RandomForestRegressor  # noqa: PLC0415

    return RandomForestRegressor(
        n_estimators=config.n_estimators, max_features=config.max_features,
        min_samples_leaf=config.min_samples_leaf, max_depth=config.max_depth,
        n_jobs=config.n_jobs, random_state=seed)


# --- weights as arrays ---------------------------------------------------------------------------

def dump_forest(estimator: RandomForestRegressor) -> bytes:
    """A fitted forest -> MAGIC + npz bytes (plain arrays only)."""
    trees = [e.tree_ for e in estimator.estimators_]
    if not trees:
        raise ForestFormatError("forest has no fitted trees")
    states = [t.__getstate__() for t in trees]
    counts = [s["node_count"] for s in states]
    arrays = {
        "meta": np.array([estimator.n_features_in_, estimator.n_outputs_, len(trees)], np.int64),
        "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "max_depth": np.array([s["max_depth"] for s in states], np.int64),
        "value": np.concatenate([np.asarray(s["values"], np.float64) for s in states]),
    }
    nodes = np.concatenate([s["nodes"] for s in states])
    for f in _NODE_FIELDS:
        arrays[f] = np.ascontiguousarray(nodes[f], dtype=_ARRAYS[f][0])
    buf = io.BytesIO()
    buf.write(MAGIC)
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _read_arrays(data: bytes) -> dict[str, np.ndarray]:
    if not data.startswith(MAGIC):
        if looks_pickled(data):
            raise LegacyPickleError("weights are a pickled scikit-learn forest (matstore's older "
                                    "format); pickles can run code, so they are not loaded")
        raise ForestFormatError("weights are not a matstore forest (no matstore-forest-v1 header)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data[len(MAGIC):]))
        names = {n.removesuffix(".npy"): n for n in zf.namelist()}
        if set(names) != set(_ARRAYS):
            raise ForestFormatError(f"forest archive has arrays {sorted(names)}, expected "
                                    f"{sorted(_ARRAYS)}")
        if sum(i.file_size for i in zf.infolist()) > MAX_NODES * 128:
            raise ForestFormatError("forest archive is too large to load")
        npz = np.load(io.BytesIO(data[len(MAGIC):]), allow_pickle=False)
        out = {k: npz[k] for k in _ARRAYS}
    except ForestFormatError:
        raise
    except Exception as e:  # noqa: BLE001 (zip/npy reader errors: unreadable weights)
        raise ForestFormatError(f"forest archive is unreadable: {e}") from None
    for k, (dtype, ndim) in _ARRAYS.items():
        a = out[k]
        if a.dtype != np.dtype(dtype) or a.ndim != ndim:
            raise ForestFormatError(f"forest array {k!r} is {a.dtype}[{a.ndim}d], expected "
                                    f"{np.dtype(dtype)}[{ndim}d]")
    return out


def looks_pickled(data: bytes) -> bool:
    """A raw pickle (protocol 2+ starts with 0x80) or joblib's zlib/gzip-compressed pickle."""
    return data[:1] in (b"\x80", b"x") or data[:2] == b"\x1f\x8b"


def _check_trees(a: dict[str, np.ndarray]) -> tuple[int, int, int]:
    """Structure checks that make sklearn's tree walk stay inside the arrays."""
    if a["meta"].shape != (3,):
        raise ForestFormatError("forest meta must be (n_features, n_outputs, n_trees)")
    n_features, n_outputs, n_trees = (int(v) for v in a["meta"])
    if n_features < 1 or n_outputs != 1 or n_trees < 1:
        raise ForestFormatError(f"forest with {n_features} features, {n_outputs} outputs and "
                                f"{n_trees} trees: expected >= 1 feature, 1 output, >= 1 tree")
    off = a["offsets"]
    total = len(a["left_child"])
    if (off.shape != (n_trees + 1,) or off[0] != 0 or off[-1] != total
            or np.any(np.diff(off) < 1) or a["max_depth"].shape != (n_trees,)
            or np.any(a["max_depth"] < 0) or total > MAX_NODES):
        raise ForestFormatError("forest tree offsets/depths are inconsistent")
    for f in _NODE_FIELDS:
        if len(a[f]) != total:
            raise ForestFormatError(f"forest array {f!r} has {len(a[f])} nodes, expected {total}")
    if a["value"].shape != (total, n_outputs, 1):
        raise ForestFormatError(f"forest values have shape {a['value'].shape}, expected "
                                f"({total}, {n_outputs}, 1)")
    local = np.arange(total) - np.repeat(off[:-1], np.diff(off))   # node index inside its tree
    size = np.repeat(np.diff(off), np.diff(off))
    left, right, feat = a["left_child"], a["right_child"], a["feature"]
    leaf = left == -1
    inner = ~leaf
    ok = (np.all(right[leaf] == -1)
          and np.all((left[inner] > local[inner]) & (left[inner] < size[inner]))
          and np.all((right[inner] > local[inner]) & (right[inner] < size[inner]))
          and np.all((feat[inner] >= 0) & (feat[inner] < n_features))
          and np.all(a["missing_go_to_left"] <= 1))
    if not ok:
        raise ForestFormatError("forest trees are malformed (child or feature index out of range)")
    return n_features, n_outputs, n_trees


def load_forest(data: bytes, config: ForestConfig, seed: int = 0) -> ForestRegressor:
    """MAGIC + npz bytes -> a ForestRegressor that predicts like the forest that was dumped."""
    from sklearn.tree import DecisionTreeRegressor  # noqa: PLC0415
    from sklearn.tree._tree import NODE_DTYPE, Tree  # noqa: PLC0415

    a = _read_arrays(data)
    n_features, n_outputs, n_trees = _check_trees(a)
    est = _new_estimator(config, seed)
    est.n_estimators = n_trees
    est.estimator_ = DecisionTreeRegressor()
    params = {p: getattr(est, p) for p in est.estimator_params}
    trees = []
    for i in range(n_trees):
        lo, hi = int(a["offsets"][i]), int(a["offsets"][i + 1])
        nodes = np.zeros(hi - lo, dtype=NODE_DTYPE)
        for f in _NODE_FIELDS:
            nodes[f] = a[f][lo:hi]
        tree = Tree(n_features, np.ones(n_outputs, dtype=np.intp), n_outputs)
        tree.__setstate__({"max_depth": int(a["max_depth"][i]), "node_count": hi - lo,
                           "nodes": nodes, "values": np.ascontiguousarray(a["value"][lo:hi])})
        t = DecisionTreeRegressor(**params)
        t.tree_, t.n_features_in_, t.n_outputs_ = tree, n_features, n_outputs
        t.max_features_ = n_features
        trees.append(t)
    est.estimators_ = trees
    est.n_features_in_, est.n_outputs_ = n_features, n_outputs
    return ForestRegressor(config, seed=seed, estimator=est)


# --- one-off conversion of a trusted legacy pickle -----------------------------------------------

_ALLOWED_GLOBALS = {
    ("sklearn.ensemble._forest", "RandomForestRegressor"),
    ("sklearn.tree._classes", "DecisionTreeRegressor"),
    ("sklearn.tree._tree", "Tree"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


def convert_legacy_pickle(data: bytes, config: ForestConfig, seed: int = 0) -> bytes:
    """A joblib-pickled forest (older matstore) -> the array format, through an unpickler that
    resolves only the classes a fitted forest is made of. For files the user trusts: the allow-list
    keeps known code-running globals out, but unpickling is never as safe as reading arrays."""
    import gzip  # noqa: PLC0415
    import zlib  # noqa: PLC0415

    from joblib import numpy_pickle  # noqa: PLC0415

    class Restricted(numpy_pickle.NumpyUnpickler):
        def find_class(self, module, name):
            if (module, name) not in _ALLOWED_GLOBALS:
                raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a forest")
            return super().find_class(module, name)

    try:  # matstore wrote joblib.dump(compress=3): a zlib stream; gzip and raw pickles also read
        raw = (zlib.decompress(data) if data[:1] == b"x" else gzip.decompress(data)
               if data[:2] == b"\x1f\x8b" else data)
        est = Restricted("<weights>", io.BytesIO(raw), ensure_native_byte_order=True).load()
    except Exception as e:  # noqa: BLE001
        raise ForestFormatError(f"pickled forest cannot be converted: {e}") from None
    from sklearn.ensemble import RandomForestRegressor  # noqa: PLC0415

    if not isinstance(est, RandomForestRegressor) or not all(
            type(t).__name__ == "DecisionTreeRegressor" for t in getattr(est, "estimators_", [])):
        raise ForestFormatError(f"pickled object is a {type(est).__name__}, not a fitted forest")
    out = dump_forest(est)
    load_forest(out, config, seed)  # the structure checks, before it is stored
    return out


# --- the family ------------------------------------------------------------------------------
MAX_TREES = 5000   # --ensemble K of a forest: K trees (cheap, but not without end)


class ForestFamily(ModelFamily):
    """A scikit-learn random forest on a featurizer's flat vector; weights are plain arrays (never
    a pickle). ``--ensemble K`` makes K trees the members: their spread is the std."""

    name, config, module = "rf", ForestConfig, ForestRegressor
    predictor, seeded, check_on_merge = True, True, True
    legacy_format = "joblib pickle (matstore before the array format)"

    def fit_config(self, config, x, members=None):
        return {**config, "n_estimators": members.k} if members is not None else config

    def members_spec(self, k, two_stage, seeds, what):
        from .ensemble import Spec  # noqa: PLC0415

        if two_stage:
            raise ModelConfigError(f"two-stage needs a torch kind "
                                   f"({', '.join(sorted(names(predictor=True, torch=True)))})")
        if k > MAX_TREES:
            raise ModelConfigError(f"--ensemble {k}: a forest takes at most {MAX_TREES:,} trees")
        return Spec(k, (), False, "bootstrap")   # the trees' seeds are known once it is fit

    def fit(self, module, data: FitData) -> FitResult:
        import dataclasses  # noqa: PLC0415

        from . import composite  # noqa: PLC0415
        from .ensemble import clamp  # noqa: PLC0415
        from .loops import regression_metrics  # noqa: PLC0415

        x, y, sp, hp, prop = data.x, data.y, data.split, data.hyper, data.property
        if "n_jobs" in hp:
            module.estimator.set_params(n_jobs=hp["n_jobs"])
        module.fit(x[sp.train], y[sp.train])
        roles = (("val", sp.val), ("test", sp.test))
        if data.members is None:
            return FitResult(module, {role: regression_metrics(y[idx], clamp(prop, module.predict(x[idx])))
                                      for role, idx in roles})
        trees = {role: module.predict_trees(x[idx])[..., None] for role, idx in roles}
        scale = composite.fit_std_scale(y[sp.val], trees["val"], prop, False)
        members = dataclasses.replace(data.members, std_scale=scale, seeds=tuple(
            int(t.random_state) for t in module.estimator.estimators_))
        metrics: dict = {"std_scale": scale}
        for role, idx in roles:
            metrics[role] = composite.composite_metrics(y[idx], trees[role], prop, False, std_scale=scale)
        return FitResult(module, metrics, members)

    def serialize(self, module, card):
        return dump_forest(module.estimator if hasattr(module, "estimator") else module)

    def load(self, weights, record, members, ref):
        if members is not None and members.two_stage:
            raise ValueError(f"a two-stage {self.name} is not supported (torch kinds only)")
        config = self.build(record["config"], record.get("seed") or 0).config
        try:
            loaded = load_forest(weights, config, seed=record.get("seed") or 0)
        except LegacyPickleError as e:
            raise WeightsError(f"model {ref}: {e}; retrain it, or if you trust where this store came "
                               f"from convert it with `matstore models convert "
                               f"{record['name']}@{record['version']} --trust`") from None
        except ForestFormatError as e:
            raise WeightsError(f"model {ref}: {e}") from None
        n_trees = len(loaded.estimator.estimators_)
        if members is not None and members.k != n_trees:   # the trees are the members
            raise WeightsError(f"model {ref}: records {members.k} members, its forest has {n_trees} trees")
        return loaded

    def predict(self, module, x, device, batch_size=None):
        return module.predict(x)

    def member_outputs(self, module, x, members, device, batch_size=None):
        return module.predict_trees(x)[..., None]

    def legacy_weights(self, weights):
        return looks_pickled(weights)

    def convert_legacy(self, weights, config, seed):
        return convert_legacy_pickle(weights, self.make_config(config), seed)


register(ForestFamily())

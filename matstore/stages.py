"""The after-generator stages of a generate run: per batch, the distinct compositions that lack
them get validity flags, stored feature vectors, predictions (and energy above a hull), built by
the same row builders the separate commands use (featurize.validity_rows / feature_rows,
predict.prediction_rows, stability.rows).

Rows are buffered and appended with the batch that brings them to a DuckDB row group (122,880
rows), after at most FLUSH_SECONDS, and at the run's end: DuckDB writes a transaction of a full
row group straight to the file, while small ones go through the WAL and each checkpoint rewrites
the table's last, partly filled row group (3x the cost per feature row, measured in
benchmarks/generate.py). A run killed with rows still buffered gets them back on resume
(``Pipeline.catch_up``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .featurize import FEATURE_KEY, VALIDITY_KEY, batch_from_arrow, feature_rows, register_checker
from .models.ensemble import Outputs
from .predict import is_predictor, prediction_rows
from .runs import RunError
from .stage_rows import compute, predict, prepare, rows_of
from .store import Store, append_new

FLUSH_ROWS = 122_880        # DuckDB's row group: a transaction this large skips the WAL
FLUSH_SECONDS = 30.0        # ...but a watching user sees predictions at least this often


@dataclass
class Stages:
    """Per-composition work done for each batch's distinct compositions that lack it: validity
    flags, stored feature vectors, predictions. Features are computed once per composition and
    fed to every predictor that uses them; the rows are buffered and written in row-group-sized
    transactions (see the module docstring)."""

    validate: bool = False
    featurize: tuple = ()       # featurizer names whose vectors are stored
    predict: tuple = ()         # predictor refs ('name@N', id) or LoadedModels
    stability: str | None = None  # reference source: energy above its hull of the FE predictions

    def __bool__(self) -> bool:
        return bool(self.validate or self.featurize or self.predict or self.stability)

    @classmethod
    def from_params(cls, p: dict | None) -> "Stages":
        p = p or {}
        return cls(bool(p.get("validate")), tuple(p.get("featurize") or ()), tuple(p.get("predict") or ()),
                   p.get("stability"))


class Pipeline:
    """The after-generator stages of one run: predictors loaded, done-sets read once."""

    def __init__(self, store: Store, stages: Stages, device: str):
        from .features import get  # noqa: PLC0415
        from .registry import resolve  # noqa: PLC0415
        from .validity import CHECKER_VERSION  # noqa: PLC0415

        self.validate = stages.validate
        self.stored = {name: get(name) for name in stages.featurize}
        self.models = []
        for m in stages.predict:
            lm = resolve(store, m, device=device)
            if not is_predictor(lm):
                raise RunError(f"--predict {lm.ref}: a {lm.kind} is not a property predictor")
            self.models.append(lm)
        self.device = device
        # the reference's known phases, read once per run; each batch is placed against them
        self.reference, self.hull_models = None, []
        if stages.stability:
            from .stability import PROPERTY, load_reference  # noqa: PLC0415

            self.hull_models = [lm for lm in self.models if lm.property == PROPERTY]
            if not self.hull_models:
                raise RunError(f"--stability {stages.stability}: needs a --predict model of {PROPERTY}")
            self.reference = load_reference(store, stages.stability)
        self.feats = dict(self.stored)
        for lm in self.models:
            self.feats.setdefault(lm.featurizer, get(lm.featurizer))
        # stage -> keys that already have its rows (read once; kept current as batches commit)
        queries = {}
        if self.validate:
            queries["validity"] = ("SELECT composition_id FROM validity WHERE checker_version = ?",
                                   [CHECKER_VERSION])
        for name, f in self.stored.items():
            queries[("features", name)] = ("SELECT composition_id FROM features WHERE featurizer = ? "
                                           "AND version = ?", [f.name, f.version])
        for lm in self.models:
            queries[("predictions", lm.model_id)] = (
                "SELECT composition_id FROM predictions WHERE model_id = ?", [lm.model_id])
        for lm in self.hull_models:
            queries[("stability", lm.model_id)] = (
                "SELECT composition_id FROM stability WHERE model_id = ? AND reference = ?",
                [lm.model_id, self.reference.source])
        with store.connect() as con:
            self.done = {k: set(con.sql(q, params=a).fetchnumpy()["composition_id"].tolist())
                         for k, (q, a) in queries.items()}
        # keys with every stage done or buffered: one lookup per key once a run is under way
        self.complete = set.intersection(*self.done.values()) if self.done else set()
        self.buffer: list[dict] = []     # rows() results not yet written
        self.buffered = 0                # compositions in the buffer
        self.last_flush = time.monotonic()

    @property
    def refs(self) -> list[str]:
        return [lm.ref for lm in self.models]

    def rows(self, keys: np.ndarray, z: np.ndarray, counts: np.ndarray, given=None) -> dict:
        """Rows to append for distinct keys (decoded z, counts rows): {stage: table}; the
        selected keys are under "keys". given: a worker's checked stage rows of the batch
        (executor.stage_payload.Given); what they do not cover is computed here."""
        if not self.done:
            return {}
        kl = keys.tolist()
        sel = np.flatnonzero(np.fromiter((k not in self.complete for k in kl), bool, len(kl)))
        if len(sel) == 0:
            return {}
        _, ids, zc, cc, nel = prepare(keys[sel], z[sel], counts[sel])
        sl = ids.tolist()
        need = {st: np.fromiter((k not in d for k in sl), bool, len(sl)) for st, d in self.done.items()}
        n = len(ids)
        pos = given.locate(ids) if given is not None else np.full(n, -1)
        # from the worker: stages it sent, for the keys it sent
        take = {st: need[st] & (pos >= 0) if given is not None and given.covers(st) else np.zeros(n, bool)
                for st in need}
        here = np.zeros(n, bool)
        for st in need:
            if not (isinstance(st, tuple) and st[0] == "stability"):   # placed from the predictions
                here |= need[st] & ~take[st]
        li = np.flatnonzero(here)
        validity, vals, ok = compute(ids[li], zc[li], cc[li], nel[li], self.validate, self.feats)
        out = {"keys": ids}
        if self.validate:
            mine = (need["validity"] & ~take["validity"])[li]
            parts = [validity.filter(pa.array(mine))]
            if take["validity"].any():
                parts.append(given.validity.take(pa.array(pos[take["validity"]])))
            out["validity"] = pa.concat_tables(parts)
        for name, f in self.stored.items():
            m = need[("features", name)][li]
            out[("features", name)] = feature_rows(ids[li][m], f, rows_of(vals[name], m), ok[name][m])
        for lm in self.models:
            st = ("predictions", lm.model_id)
            o = Outputs.empty(n)
            if take[st].any():
                o.put(take[st], given.outputs(lm.model_id, pos[take[st]]))
            mine = (need[st] & ~take[st])[li]
            if mine.any():
                o.put(li[mine], predict(lm, vals[lm.featurizer], ok[lm.featurizer], mine, self.device))
            m = need[st]
            # the run_id is set in write()
            out[st] = (lm, ids[m], o.value[m], o.std[m], o.p_metal[m])
            if lm in self.hull_models:   # keys predicted here (stored ones: `matstore stability`)
                from .stability import rows as stability_rows  # noqa: PLC0415

                vf = np.where(m, o.value, np.nan)
                s = need[("stability", lm.model_id)] & m
                out[("stability", lm.model_id)] = stability_rows(
                    self.reference, ids[s], zc[s], cc[s], vf[s], lm.model_id, None)
        return out

    def add(self, rows: dict) -> None:
        """Buffer one batch's rows; their keys count as done for the batches that follow."""
        if rows:
            self.buffer.append(rows)
            self.buffered += len(rows["keys"])
            self.complete.update(rows["keys"].tolist())

    def due(self) -> bool:
        return bool(self.buffer) and (self.buffered >= FLUSH_ROWS
                                      or time.monotonic() - self.last_flush >= FLUSH_SECONDS)

    def catch_up(self, store: Store, run_id: int) -> int:
        """Buffer the stage rows of run_id's stored compositions that lack them (a run killed
        with rows still buffered); returns how many compositions that is."""
        if not self.done:
            return 0
        with store.connect() as con:
            ids = con.sql("SELECT DISTINCT composition_id FROM generated WHERE run_id = ?",
                          params=[int(run_id)]).fetchnumpy()["composition_id"]
            lack = np.array([k for k in ids.tolist() if k not in self.complete], np.int64)
            if len(lack) == 0:
                return 0
            con.register("_matstore_lack", pa.table({"composition_id": pa.array(lack)}))
            rows = con.sql("SELECT c.composition_id, c.elements, c.counts FROM compositions c "
                           "JOIN _matstore_lack USING (composition_id)").to_arrow_table()
        b = batch_from_arrow(rows)
        self.add(self.rows(b.composition_id, b.z, b.counts))
        return len(lack)

    def take(self) -> list[dict]:
        """The buffered rows, handed to write(); the buffer starts empty again."""
        chunk, self.buffer, self.buffered, self.last_flush = self.buffer, [], 0, time.monotonic()
        return chunk

    def no_rows(self) -> dict[str, int]:
        """Rows written per table, all zero: the tables this run's stages write."""
        return dict.fromkeys(("validity", "features", "predictions")
                             + (("stability",) if self.reference is not None else ()), 0)

    def write(self, con, run_id: int, chunk: list[dict]) -> dict[str, int]:
        """Append a take()n chunk inside the caller's transaction (anti-join: a concurrent
        writer's rows are not duplicated); returns rows written per table."""
        n = self.no_rows()
        if not chunk:
            return n
        for st in (st for st in chunk[0] if st != "keys"):
            parts = [r[st] for r in chunk]
            if st == "validity":
                n["validity"] += append_new(con, "validity", pa.concat_tables(parts), VALIDITY_KEY,
                                             distinct=False)
                from .validity import DEFAULT_SET  # noqa: PLC0415

                register_checker(con, DEFAULT_SET)
            elif st[0] == "features":
                n["features"] += append_new(con, "features", pa.concat_tables(parts), FEATURE_KEY,
                                             distinct=False)
            elif st[0] == "stability":
                tab = pa.concat_tables(parts)
                tab = tab.set_column(tab.column_names.index("run_id"), "run_id",
                                     pa.array(np.full(tab.num_rows, run_id, np.int32)))
                n["stability"] += append_new(con, "stability", tab,
                                              ["composition_id", "model_id", "reference"], distinct=False)
            else:                                   # (model, keys, values, std, p_metal) per batch
                tab = prediction_rows(np.concatenate([p[1] for p in parts]), parts[0][0], run_id,
                                      *(np.concatenate([p[i] for p in parts]) for i in (2, 3, 4)))
                n["predictions"] += append_new(con, "predictions", tab, ["composition_id", "model_id"],
                                                distinct=False)
        return n




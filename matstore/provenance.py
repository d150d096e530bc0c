"""Who and what produced what: ingests, model versions (training data hash, seed), runs (model
version, seed, device), and which model/run each set of predictions came from."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from .store import Store, frame


@dataclass
class Provenance:
    ingests: pl.DataFrame
    models: pl.DataFrame
    runs: pl.DataFrame
    predictions: pl.DataFrame
    unfinished: pl.DataFrame  # interrupted/failed runs and ingests, with how to complete them

    def tables(self) -> dict[str, pl.DataFrame]:
        out = {"ingests": self.ingests, "model versions": self.models, "runs": self.runs,
               "predictions by model and run": self.predictions}
        if self.unfinished.height:
            out["unfinished work"] = self.unfinished.select("what", "id", "status", "cursor", "resume_with")
        return out


def provenance(store: Store) -> Provenance:
    from .recovery import interrupted_work

    unfinished = interrupted_work(store)
    with store.connect(write=False) as con:
        return Provenance(
            unfinished=unfinished,
            ingests=frame(con, """
                SELECT ingest_id, source, uri, status, rows_kept, rows_rejected,
                       started_at, finished_at, host, pid, params::VARCHAR AS params
                FROM ingests ORDER BY ingest_id"""),
            models=frame(con, """
                SELECT model_id, r.ref AS model, kind, created_at,
                       training_rows, data_hash, seed, device, left(weights_sha256, 16) AS weights_sha256,
                       software->>'matstore' AS matstore, software->>'torch' AS torch,
                       training_query
                FROM model_versions JOIN model_refs r USING (model_id) ORDER BY model_id"""),
            runs=frame(con, """
                SELECT r.run_id, r.kind, m.ref AS model, r.model_id, r.seed,
                       r.device, r.status, r.n_requested, r.n_written,
                       (SELECT count(*) FROM run_batches b WHERE b.run_id = r.run_id) AS batches,
                       r.started_at, r.finished_at, r.host, r.pid
                FROM runs r LEFT JOIN model_refs m USING (model_id) ORDER BY r.run_id"""),
            predictions=frame(con, """
                SELECT p.model_id, m.ref AS model, p.run_id, p.property,
                       count(*) AS predictions, count(DISTINCT p.composition_id) AS compositions
                FROM predictions p LEFT JOIN model_refs m USING (model_id)
                GROUP BY ALL ORDER BY p.model_id, p.run_id NULLS FIRST, p.property"""),
        )

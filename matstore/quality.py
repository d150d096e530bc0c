"""Generation quality (issue 14, item 1): how close a run's compositions are to real materials.

Per generate run, over its distinct compositions and again over its samples as drawn (repeats
included: the generator's distribution; the *_samples columns): charge-neutral /
electronegativity-balanced / both % (validity rows of the default checker), uniqueness at N
(distinct / decodable), novelty
(not in `known`), recovery of the generator version's training set (composition_sets role
'train') and leave-out set (roles val, test, holdout), and three distances between the generated
and the reference distribution (the training set; `known` where the version stored no split):
total variation of the elements-per-composition histogram, total variation of the per-element
frequency, and the Fréchet distance between Gaussians fitted to Magpie vectors (the FID formula,
"FCD" for compositions). The Fréchet fit uses a seeded subsample of at most FRECHET_MAX
compositions per side (a 132×132 covariance is stable well below that; 20k rows featurize in
seconds). One row per run in `generation_quality`; a rerun replaces it."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import polars as pl
import scipy.linalg

from .errors import MatstoreError
from .store import Store, append

FRECHET_MAX = 20_000   # compositions per side in the Fréchet fit
FRECHET_SEED = 0
LEAVE_OUT_ROLES = ("val", "test", "holdout")


class QualityError(MatstoreError):
    """A run that cannot be measured (unknown id, not a generate run)."""


def _pct(a: int, b: int) -> float | None:
    return 100.0 * a / b if b else None


def tv_distance(p: dict, q: dict) -> float | None:
    """Total variation distance, 0.5 Σ|p - q|, of two histograms (key -> weight), each normalised."""
    sp, sq = sum(p.values()), sum(q.values())
    if not sp or not sq:
        return None
    return 0.5 * sum(abs(p.get(k, 0) / sp - q.get(k, 0) / sq) for k in set(p) | set(q))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float | None:
    """||mu_a - mu_b||² + Tr(S_a + S_b - 2 sqrtm(S_a S_b)) of the rows of a and b (real part of
    sqrtm; tiny negative rounding clipped to 0). None with fewer than 2 rows on a side."""
    if len(a) < 2 or len(b) < 2:
        return None
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # few rows give singular covariances: sqrtm is still fine
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(sa @ sb)
    d = float(mu @ mu + np.trace(sa) + np.trace(sb) - 2.0 * np.trace(np.real(root)))
    return max(d, 0.0)


def magpie_vectors(store: Store, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Magpie vectors (NaN-free rows) of at most FRECHET_MAX of ids, drawn with rng."""
    from .featurize import batch_from_arrow  # noqa: PLC0415
    from .features.magpie import Magpie

    ids = np.sort(np.asarray(ids, dtype=np.int64))
    if len(ids) > FRECHET_MAX:
        ids = np.sort(rng.choice(ids, FRECHET_MAX, replace=False))
    if not len(ids):
        return np.empty((0, Magpie.shape[0]))
    comp = store.query("SELECT composition_id, elements, counts FROM compositions "
                       "WHERE composition_id IN (SELECT unnest(?::BIGINT[])) ORDER BY composition_id",
                       [ids.tolist()])
    x = Magpie().transform(batch_from_arrow(comp.to_arrow()))   # list columns, no per-row Python
    return x[np.isfinite(x).all(axis=1)]


def _histograms(store: Store, ids_sql: str, params: list) -> tuple[dict, dict]:
    """(elements-per-composition histogram, per-element containing counts) of a set of ids."""
    counts = store.query(f"SELECT n_elements AS k, count(*) AS n FROM compositions "
                         f"WHERE composition_id IN ({ids_sql}) GROUP BY 1", params)
    elems = store.query(f"SELECT e AS k, count(*) AS n FROM (SELECT unnest(elements) AS e FROM compositions "
                        f"WHERE composition_id IN ({ids_sql})) GROUP BY 1", params)
    return dict(counts.iter_rows()), dict(elems.iter_rows())


def _sample_histograms(store: Store, run_id: int) -> tuple[dict, dict]:
    """The same histograms over a run's decodable samples, each sample counted (repeats too)."""
    per = ("SELECT c.n_elements, c.elements, g.n FROM (SELECT composition_id, count(*) AS n FROM generated "
           "WHERE run_id = ? GROUP BY 1) g JOIN compositions c USING (composition_id)")
    counts = store.query(f"SELECT n_elements AS k, sum(n) AS n FROM ({per}) GROUP BY 1", [run_id])
    elems = store.query(f"SELECT e AS k, sum(n) AS n FROM (SELECT unnest(elements) AS e, n FROM ({per})) "
                        f"GROUP BY 1", [run_id])
    return ({k: int(v) for k, v in counts.iter_rows()}, {k: int(v) for k, v in elems.iter_rows()})


def measure(store: Store, run_id: int) -> dict:
    """Measure one generate run and store its generation_quality row (replacing an older one)."""
    run = store.query("SELECT run_id, kind, model_id FROM runs WHERE run_id = ?", [int(run_id)])
    if run.is_empty():
        raise QualityError(f"run {run_id}: no such run")
    if run["kind"][0] != "generate":
        raise QualityError(f"run {run_id}: a {run['kind'][0]} run, not a generate run")
    model_id = run["model_id"][0]
    row: dict = {"run_id": int(run_id), "model_id": model_id}

    b = store.query("SELECT coalesce(sum(n_samples), 0) AS s, coalesce(sum(n_decodable), 0) AS d "
                    "FROM run_batches WHERE run_id = ?", [run_id])
    row["n_samples"], row["n_decodable"] = int(b["s"][0]), int(b["d"][0])
    gen_sql = "SELECT DISTINCT composition_id FROM generated WHERE run_id = ?"
    u = store.query(f"""SELECT count(*) AS n,
                               count(*) FILTER (WHERE composition_id NOT IN (SELECT composition_id FROM known)) AS novel
                        FROM ({gen_sql})""", [run_id])
    row["n_unique"], row["n_novel"] = int(u["n"][0]), int(u["novel"][0])
    row["unique_pct"] = _pct(row["n_unique"], row["n_decodable"])
    row["novel_pct"] = _pct(row["n_novel"], row["n_unique"])

    checker = store.query("SELECT checker_version FROM validity_checkers WHERE is_default")
    row["checker_version"] = checker["checker_version"][0] if checker.height else None
    v = store.query(f"""
        SELECT count(*) AS n, count(*) FILTER (WHERE cn) AS cn, count(*) FILTER (WHERE eb) AS eb,
               count(*) FILTER (WHERE cn AND eb) AS both
        FROM (SELECT composition_id, bool_or(charge_neutral) AS cn, bool_or(electronegativity_balanced) AS eb
              FROM validity WHERE checker_version = ? AND composition_id IN ({gen_sql})
              GROUP BY composition_id)""", [row["checker_version"], run_id])
    row["n_checked"] = int(v["n"][0])
    row["charge_neutral_pct"] = _pct(int(v["cn"][0]), row["n_checked"])
    row["electronegativity_balanced_pct"] = _pct(int(v["eb"][0]), row["n_checked"])
    row["both_valid_pct"] = _pct(int(v["both"][0]), row["n_checked"])
    w = store.query(f"""
        SELECT coalesce(sum(g.n), 0) AS n, coalesce(sum(g.n) FILTER (WHERE cn), 0) AS cn,
               coalesce(sum(g.n) FILTER (WHERE eb), 0) AS eb, coalesce(sum(g.n) FILTER (WHERE cn AND eb), 0) AS both
        FROM (SELECT composition_id, count(*) AS n FROM generated WHERE run_id = ? GROUP BY 1) g
        JOIN (SELECT composition_id, bool_or(charge_neutral) AS cn, bool_or(electronegativity_balanced) AS eb
              FROM validity WHERE checker_version = ? GROUP BY composition_id) f USING (composition_id)""",
                    [run_id, row["checker_version"]])
    row["n_samples_checked"] = int(w["n"][0])
    for key, col in (("charge_neutral", "cn"), ("electronegativity_balanced", "eb"), ("both_valid", "both")):
        row[f"{key}_samples_pct"] = _pct(int(w[col][0]), row["n_samples_checked"])

    roles = {"train": ["train"], "leave_out": list(LEAVE_OUT_ROLES)}
    for key, rs in roles.items():
        set_sql = ("SELECT DISTINCT composition_id FROM composition_sets "
                   "WHERE model_id = ? AND list_contains(?::VARCHAR[], role)")
        r = store.query(f"""SELECT count(*) AS n,
                                   count(*) FILTER (WHERE composition_id IN ({gen_sql})) AS rec
                            FROM ({set_sql})""", [run_id, model_id, rs])
        row[f"{key}_size"], row[f"{key}_recovered"] = int(r["n"][0]), int(r["rec"][0])
        row[f"{key}_recovery_pct"] = _pct(row[f"{key}_recovered"], row[f"{key}_size"])

    if row["train_size"]:
        row["reference"] = "training set"
        ref_sql = "SELECT composition_id FROM composition_sets WHERE model_id = ? AND role = 'train'"
        ref_params = [model_id]
    else:
        row["reference"] = "known"
        ref_sql, ref_params = "SELECT composition_id FROM known", []
    gc, ge = _histograms(store, gen_sql, [run_id])
    rc, re_ = _histograms(store, ref_sql, ref_params)
    row["tv_element_count"] = tv_distance(gc, rc)
    row["tv_element_frequency"] = tv_distance(ge, re_)
    sc, se = _sample_histograms(store, run_id)
    row["tv_element_count_samples"] = tv_distance(sc, rc)
    row["tv_element_frequency_samples"] = tv_distance(se, re_)

    rng = np.random.default_rng(FRECHET_SEED)
    ga = magpie_vectors(store, store.query(gen_sql, [run_id])["composition_id"].to_numpy(), rng)
    ra = magpie_vectors(store, store.query(f"SELECT DISTINCT composition_id FROM ({ref_sql})",
                                           ref_params)["composition_id"].to_numpy(), rng)
    row["frechet_magpie"] = frechet_distance(ga, ra)
    row["frechet_n_generated"], row["frechet_n_reference"] = len(ga), len(ra)
    row["frechet_seed"] = FRECHET_SEED
    row["computed_at"] = dt.datetime.now()

    cols = [c for c in store.query("SELECT * FROM generation_quality LIMIT 0").columns]
    frame = pl.DataFrame([{c: row[c] for c in cols}], schema_overrides={
        c: pl.Float64 for c in cols if c.endswith("_pct") or c.startswith(("tv_", "frechet_magpie"))})
    with store.transaction() as con:
        con.execute("DELETE FROM generation_quality WHERE run_id = ?", [int(run_id)])
        append(con, "generation_quality", frame)
    return {c: row[c] for c in cols}


def refresh(store: Store, run_id: int | None = None, notify=None) -> pl.DataFrame:
    """Measure run_id (default: every generate run) and return the stored rows; notify(line) is
    told before each run is measured."""
    ids = [run_id] if run_id is not None else store.query(
        "SELECT run_id FROM runs WHERE kind = 'generate' ORDER BY run_id")["run_id"].to_list()
    for i, r in enumerate(ids):
        if notify:
            notify(f"quality: measuring run {r} ({i + 1} of {len(ids)})")
        measure(store, r)
    return store.query("SELECT * FROM generation_quality WHERE list_contains(?::INTEGER[], run_id) "
                       "ORDER BY run_id", [ids])


def summary(row: dict) -> str:
    """One line: CN/EB/both %, unique %, novel %, TV(count), TV(elements), Fréchet."""
    def f(x, spec=".1f"):
        return "n/a" if x is None else format(x, spec)
    return (f"quality of run {row['run_id']}: both valid {f(row.get('both_valid_samples_pct'))}% of "
            f"samples; of the distinct compositions CN {f(row['charge_neutral_pct'])}% "
            f"EB {f(row['electronegativity_balanced_pct'])}% both {f(row['both_valid_pct'])}% "
            f"(of {row['n_checked']:,} checked), unique {f(row['unique_pct'])}%, "
            f"novel {f(row['novel_pct'])}%, TV(count) {f(row.get('tv_element_count_samples'), '.3f')} "
            f"of samples / {f(row['tv_element_count'], '.3f')} of distinct, "
            f"TV(elements) {f(row.get('tv_element_frequency_samples'), '.3f')} / "
            f"{f(row['tv_element_frequency'], '.3f')}, "
            f"Fréchet(Magpie) {f(row['frechet_magpie'], '.3g')} vs the {row['reference']}")

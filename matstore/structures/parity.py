"""CSP parity: predicted structures against the known (DFT) structures of the same composition.

One row per predicted structure: its volume per atom beside the reference's, whether pymatgen's
StructureMatcher (the CDVAE/DiffCSP protocol: stol 0.5, angle_tol 10, ltol 0.3) matches them, and
the RMS displacement normalised by (V/N)^(1/3) when it does. With several references (polymorphs,
both cation orderings), the first that matches counts; an unmatched prediction is compared with
the first reference's volume. benchmarks/csp.py and the report's structures section use it.
"""

from __future__ import annotations

import polars as pl

MATCHER = {"stol": 0.5, "angle_tol": 10, "ltol": 0.3}
MAX_PAIRS = 400      # the report's parity: matcher calls are ~10 ms each
SCHEMA = {"formula": pl.String, "pred_volume_per_atom": pl.Float64, "ref_volume_per_atom": pl.Float64,
          "matched": pl.Boolean, "rmsd": pl.Float64}


def compare(predicted, references) -> tuple[float, bool, float | None]:
    """(reference volume per atom, matched, normalised RMSD or None) of one prediction."""
    from pymatgen.analysis.structure_matcher import StructureMatcher  # noqa: PLC0415

    m = StructureMatcher(**MATCHER)
    for r in references:
        got = m.get_rms_dist(predicted, r)
        if got is not None:
            return r.volume / len(r), True, float(got[0])
    r = references[0]
    return r.volume / len(r), False, None


def parity_frame(predicted: list, references: list[list], results=None) -> pl.DataFrame:
    """Rows for predictions[i] against references[i] (a list of structures). results[i], when
    given, is (matched, rmsd) already computed (the benchmark's pooled matcher), else compare()."""
    rows = []
    for i, (p, refs) in enumerate(zip(predicted, references)):
        if p is None or not refs:
            continue
        if results is None:
            ref_v, ok, rms = compare(p, refs)
        else:
            ok, rms = results[i]
            ref_v = refs[0].volume / len(refs[0])
        rows.append((p.composition.reduced_formula, p.volume / len(p), ref_v, ok, rms))
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def store_parity(store, limit: int = MAX_PAIRS) -> pl.DataFrame:
    """Parity of the store's rank-1 template predictions whose composition also holds a known
    structure, excluding those whose template is of that very composition (a prediction that
    copies the answer); at most `limit`, in composition order."""
    from .store import read_structures  # noqa: PLC0415

    with store.connect() as con:
        pairs = con.execute(
            "SELECT p.composition_id, min(p.structure_id) AS pred, "
            "list(DISTINCT k.structure_id ORDER BY k.structure_id) AS refs "
            "FROM structures p JOIN structures k ON k.composition_id = p.composition_id AND k.origin = 'known' "
            "JOIN structures t ON t.structure_id = p.parent_structure_id "
            "WHERE p.origin = 'template' AND TRY_CAST(json_extract(p.details, '$.rank') AS INTEGER) = 1 "
            "AND t.composition_id <> p.composition_id "
            "GROUP BY p.composition_id ORDER BY p.composition_id LIMIT ?", [int(limit)]).fetchall()
    if not pairs:
        return pl.DataFrame(schema=SCHEMA)
    preds = read_structures(store, [int(p[1]) for p in pairs])
    refs = [read_structures(store, [int(x) for x in p[2][:5]]) for p in pairs]
    return parity_frame(preds, refs)


def summary(df: pl.DataFrame) -> dict:
    """Match rate (%), mean RMSD of the matches, volume-per-atom MAE (Å^3) and count."""
    n = df.height
    matched = df.filter(pl.col("matched"))
    err = (df["pred_volume_per_atom"] - df["ref_volume_per_atom"]).abs()
    return {"n": n, "match_rate": 100 * matched.height / n if n else float("nan"),
            "rmsd": float(matched["rmsd"].mean()) if matched.height else float("nan"),
            "volume_mae": float(err.mean()) if n else float("nan"),
            "volume_mape": float((err / df["ref_volume_per_atom"]).mean() * 100) if n else float("nan")}

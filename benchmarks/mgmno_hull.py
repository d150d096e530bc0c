"""Mg-Mn-O hull from structures with one ML potential (issues 27 and 29).

    PYTHONPATH=. python benchmarks/mgmno_hull.py --db hull.duckdb --per-composition 1 --screen 4 --max-steps 300

1. ingest the seed-003 DFT structures (../shared/data/structures/mgmno, 2,627 ternaries, origin
   known) into the store (once);
2. matstore.relax.system_hull: binaries and elements from pymatgen's AFLOW prototypes
   (relax/prototypes.py), one unrelaxed single point per known ternary, the k lowest per
   composition relaxed with the potential (FIRE + FrechetCellFilter), elemental references the
   lowest of the prototypes and the ASE reference states / O2 in a box, stability rows written;
3. prints every composition on or near the hull (formation energy, e_above_hull, how many
   structures of it were relaxed), the elemental references and binaries, and the held-out
   formulas of benchmarks/cccgan.py against the hull WITHOUT them (the paper's setting:
   compositions absent from the known set), so cccgan.py --hull can count generated structures.
Sizes are scaled to a shared 2-core CPU; the energies are the potential's (not DFT).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import polars as pl

DATA = Path(os.environ.get("MATSTORE_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
IMAGES = DATA / "structures/mgmno/mgmno_structures.npy"
# experimentally known Mg-Mn-O ternaries (what the potential's hull is compared with)
KNOWN_PHASES = {"MgMn2O4": "tetragonal spinel (experimental)", "Mg2MnO4": "inverse spinel (experimental)",
                "MgMnO3": "ilmenite (experimental)", "Mg6MnO8": "murdochite (experimental)"}


def ingest(store, images: Path) -> None:
    from matstore.ingest import run

    with store.connect() as con:
        n = con.execute("SELECT count(*) FROM structures WHERE method = 'mgmno-image'").fetchall()[0][0]
    if not n:
        r = run(store, "structures", file=str(images))
        print(f"ingested {r.rows_kept:,} structures from {images.name}")


def hull_table(store, model_id: int) -> pl.DataFrame:
    return store.query(
        "SELECT c.formula, st.formation_energy_per_atom AS fe, st.e_above_hull, st.structure_id, "
        "(SELECT i.origin FROM structures r JOIN structures i ON i.structure_id = r.parent_structure_id "
        " WHERE r.structure_id = st.structure_id) AS origin, "
        "(SELECT count(*) FROM relaxations r WHERE r.composition_id = st.composition_id AND r.model_id = st.model_id "
        " AND r.status = 'converged') AS relaxed, "
        "(SELECT count(*) FROM structures s WHERE s.composition_id = st.composition_id AND s.origin = 'known') AS known "
        f"FROM stability st JOIN compositions c USING (composition_id) WHERE st.model_id = {int(model_id)} "
        "AND st.reference = 'relaxed-known' ORDER BY st.e_above_hull, c.formula")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--potential", default="chgnet")
    ap.add_argument("--per-composition", type=int, default=1, help="lowest single points relaxed per composition")
    ap.add_argument("--screen", type=int, default=4, help="single points per composition (first by structure id)")
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--time-limit", type=float, default=240.0, help="seconds of compute per structure")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--stability-only", action="store_true",
                    help="relax nothing new: stability rows from the relaxations committed so far")
    ap.add_argument("--show", type=float, default=0.1, help="list compositions within this (eV/atom)")
    a = ap.parse_args()
    import torch

    from matstore.models import potential
    from matstore.relax import RelaxSettings
    from matstore.relax.system_hull import system_hull
    from matstore.store import Store

    torch.set_num_threads(a.threads)
    store = Store.init(a.db)
    ingest(store, IMAGES)
    t = time.perf_counter()
    pot = potential.load(a.potential)
    settings = RelaxSettings(fmax=0.05, max_steps=a.max_steps, time_limit=a.time_limit)
    if a.stability_only:
        from matstore.relax.stability import structure_stability

        r = structure_stability(store, a.potential, settings, a.batch, show_progress=True, loaded=pot)
        print(f"stability run {r.run_id} from the relaxations committed so far: {r.n_compositions} placed")
        summary(store, a.potential, a.show)
        return
    res = system_hull(store, ("Mg", "Mn", "O"), a.potential, a.per_composition, a.screen, settings, a.batch,
                      show_progress=True, loaded=pot)
    ident = pot.spec.identity()
    print(f"potential {ident['potential']} ({ident['package']} {ident['package_version']}, {ident['convention']}); "
          f"FIRE + FrechetCellFilter, fmax 0.05, <= {a.max_steps} steps, <= {a.time_limit:.0f} s each; "
          f"{len(res.single_points):,} single points, {len(res.selected)} known ternaries relaxed "
          f"(lowest {a.per_composition} of <= {a.screen} single points per composition) + {len(res.prototype_ids)} prototypes; "
          f"relax run {res.relax_run}, stability run {res.stability_run}; {time.perf_counter() - t:.0f} s")
    summary(store, a.potential, a.show)


def summary(store, potential_name: str, show: float) -> None:
    from matstore.models.potential.registry import register

    model_id, ref = register(store, potential_name)
    st = store.query("SELECT r.status, count(*) AS n, round(avg(r.steps), 1) AS mean_steps, "
                     "round(sum(r.seconds), 0) AS seconds FROM relaxations r WHERE r.model_id = "
                     f"{int(model_id)} GROUP BY r.status ORDER BY r.status")
    print("convergence (every relaxation in the store under this potential):")
    for r in st.iter_rows(named=True):
        print(f"  {r['status']:10} {r['n']:5d}  mean steps {r['mean_steps']}  compute {r['seconds']:.0f} s")
    df = hull_table(store, model_id)
    refs = store.query(
        "SELECT c.formula, s.method, s.details->>'$.aflow' AS aflow, s.details->>'$.phase' AS phase, "
        "r.energy_per_atom, r.status FROM relaxations r JOIN structures s ON s.structure_id = r.structure_id "
        "JOIN compositions c ON c.composition_id = r.composition_id "
        f"WHERE r.model_id = {int(model_id)} AND (s.method = 'aflow-prototype' OR len(c.elements) = 1) "
        "ORDER BY c.formula, r.energy_per_atom")
    print(f"\nreferences relaxed with {ref} (eV/atom):")
    for r in refs.iter_rows(named=True):
        e = f"{r['energy_per_atom']:.4f}" if r["energy_per_atom"] is not None else "-"
        print(f"  {r['formula']:6} {e:>9} {r['status']:9} {r['method']} {r['aflow'] or ''} {r['phase'] or ''}")
    print(f"\n{df.height} compositions placed; on the hull (e_above_hull <= 1 meV/atom): "
          f"{(df['e_above_hull'] <= 1e-3).sum()}; within {show * 1000:.0f} meV/atom:")
    print("| formula | formation energy (eV/atom) | e_above_hull (meV/atom) | lowest polymorph from | relaxed (converged) | known structures | note |")
    print("|---|---|---|---|---|---|---|")
    for r in df.filter(pl.col("e_above_hull") <= show).iter_rows(named=True):
        print(f"| {r['formula']} | {r['fe']:.3f} | {1000 * r['e_above_hull']:.1f} | {r['origin']} | {r['relaxed']} | {r['known']} | "
              f"{KNOWN_PHASES.get(r['formula'], '')} |")
    for f, what in KNOWN_PHASES.items():
        row = df.filter(pl.col("formula") == f)
        print(f"{f} ({what}): " + (f"{1000 * row['e_above_hull'][0]:.1f} meV/atom above the hull"
                                   if row.height else "not in the store"))


if __name__ == "__main__":
    main()

"""Relaxation benchmark (issue 27): speed of matstore's batched relaxation vs a per-structure ASE
loop, and the potential's formation energies on Perov-5 vs the set's DFT heats of formation.

    PYTHONPATH=. python benchmarks/relax.py --speed 16 --accuracy 40 --single-points 200 --threads 1

speed: the same N perov_5 structures (the DFT cell strained by 2 % and one site moved 0.04 Å, so
each relaxation takes steps), the same settings (FIRE + FrechetCellFilter, fmax 0.05, max 100
steps), one run each: matstore.relax.relax_batch (one potential call per step for all) vs
relax_sequential (the package's own ASE calculator, one structure at a time). Prints
relaxations/s of each, their ratio, the largest energy difference, and relaxations per hour.
accuracy: formation energy per atom of perov_5 structures with the potential, against elemental
references relaxed with the same potential (matstore.relax.references: ASE reference states, X2
molecules in a box, simple prototypes), vs the set's heat_ref (eV/atom). Perov-5's heats are
relative to its own elemental reference energies (Castelli et al. 2012, RPBE with fitted
references), so besides the raw MAE the benchmark fits energy shifts of the elemental references
(least squares on half of the sample, structures sorted by material_id, even rows) and reports
the MAE on the other half with those shifts: (a) one shift per anion element (O, N, F, S; 1-4
parameters), (b) one shift per element: the part of the error that a change of elemental
references cannot remove. --single-points uses the DFT structures unrelaxed (one potential call each), --accuracy
relaxes them first.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import polars as pl

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "structures" / "perov_5" / "val.csv"


def disturbed(s):
    s = s.copy()
    s.apply_strain(0.02)
    s.translate_sites([0], [0.04, -0.02, 0.013], frac_coords=False)
    return s


def speed(pot, structures, settings) -> dict:
    from matstore.relax import relax_batch, relax_sequential

    t = time.perf_counter()
    b = relax_batch(pot, structures, settings)
    tb = time.perf_counter() - t
    t = time.perf_counter()
    s = relax_sequential(pot.calculator(), structures, settings)
    ts = time.perf_counter() - t
    de = max(abs(x.energy_per_atom - y.energy_per_atom) for x, y in zip(b, s)
             if x.energy_per_atom is not None and y.energy_per_atom is not None)
    conv = sum(r.status == "converged" for r in b)
    steps = sum(r.steps for r in b)
    return {"n": len(structures), "batched_s": tb, "ase_loop_s": ts, "batched_per_s": len(b) / tb,
            "ase_loop_per_s": len(s) / ts, "ratio": ts / tb, "max_dE_meV_atom": 1000 * de,
            "converged": conv, "mean_steps": steps / len(b), "batched_per_hour": 3600 * len(b) / tb,
            "ase_loop_per_hour": 3600 * len(s) / ts}


def element_refs(pot, elements, settings) -> dict:
    from matstore.relax import RelaxSettings, relax_batch
    from matstore.relax import references as R

    best = {}
    for cell in (True, False):
        items = [(el, src, a) for el in sorted(elements) for src, a in R.candidates(el) if R.relaxes_cell(src) == cell]
        if not items:
            continue
        s = RelaxSettings(fmax=settings.fmax, max_steps=settings.max_steps, relax_cell=cell)
        for (el, src, _), r in zip(items, relax_batch(pot, [a for _, _, a in items], s)):
            if r.energy_per_atom is not None and (el not in best or r.energy_per_atom < best[el][0]):
                best[el] = (r.energy_per_atom, src, r.status)
    return best


def formation(df: pl.DataFrame, energies: list, refs: dict) -> np.ndarray:
    from pymatgen.core import Composition

    out = []
    for f, e in zip(df["formula"], energies):
        c = Composition(f)
        fr = c.fractional_composition
        out.append(e - sum(fr[el] * refs[str(el)][0] for el in fr.elements) if e is not None else np.nan)
    return np.array(out)


ANIONS = ("O", "N", "F", "S")


def aligned_mae(df: pl.DataFrame, fe: np.ndarray, only: tuple | None = None) -> tuple[float, int]:
    """Fit one shift per element (only: per anion element) on even rows (least squares on atom
    fractions), MAE on odd rows."""
    from pymatgen.core import Composition

    els = sorted({str(e) for f in df["formula"] for e in Composition(f).elements} & set(only or ANIONS + tuple(
        str(e) for f in df["formula"] for e in Composition(f).elements)))
    x = np.array([[Composition(f).fractional_composition[e] for e in els] for f in df["formula"]])
    y = df["heat_ref"].to_numpy() - fe
    ok = np.isfinite(y)
    fit = ok & (np.arange(len(y)) % 2 == 0)
    test = ok & (np.arange(len(y)) % 2 == 1)
    coef, *_ = np.linalg.lstsq(x[fit], y[fit], rcond=None)
    seen = (x[fit] > 0).any(axis=0)
    test &= ~((x > 0) & ~seen).any(axis=1)      # only elements the fit saw
    return float(np.mean(np.abs(y[test] - x[test] @ coef))), int(test.sum())


def accuracy(pot, df: pl.DataFrame, settings, relax: bool) -> dict:
    from pymatgen.core import Composition, Structure

    from matstore.relax import relax_batch

    structs = [Structure.from_str(c, fmt="cif") for c in df["cif"]]
    t = time.perf_counter()
    if relax:
        res = relax_batch(pot, structs, settings)
        energies = [r.energy_per_atom if r.status == "converged" else None for r in res]
    else:
        from pymatgen.io.ase import AseAtomsAdaptor

        preds = []
        for i in range(0, len(structs), 32):
            preds += pot.predict([AseAtomsAdaptor.get_atoms(s) for s in structs[i:i + 32]])
        energies = [p.energy / len(s) if p.error is None else None for p, s in zip(preds, structs)]
    seconds = time.perf_counter() - t
    elements = {str(e) for f in df["formula"] for e in Composition(f).elements}
    refs = element_refs(pot, elements, settings)
    fe = formation(df, energies, refs)
    err = fe - df["heat_ref"].to_numpy()
    ok = np.isfinite(err)
    amae, n_test = aligned_mae(df, fe)
    anion_mae, _ = aligned_mae(df, fe, ANIONS)
    anion = ["".join(sorted(e.symbol for e in Composition(f).elements if e.symbol in ANIONS)) for f in df["formula"]]
    by_anion = {x: (float(np.mean(err[ok & (np.array(anion) == x)])), int((ok & (np.array(anion) == x)).sum()))
                for x in sorted(set(anion))}
    return {"n": len(df), "placed": int(ok.sum()), "raw_mae": float(np.mean(np.abs(err[ok]))),
            "mean_error": float(np.mean(err[ok])), "by_anion": by_anion, "anion_mae": anion_mae,
            "aligned_mae": amae, "aligned_n": n_test, "seconds": seconds, "refs": refs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--potential", default="chgnet")
    ap.add_argument("--speed", type=int, default=16, help="structures in the speed run")
    ap.add_argument("--accuracy", type=int, default=40, help="structures relaxed for the accuracy run")
    ap.add_argument("--single-points", type=int, default=200, help="DFT structures evaluated unrelaxed")
    ap.add_argument("--max-steps", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the CPU is shared)")
    a = ap.parse_args()
    import torch
    from pymatgen.core import Structure

    from matstore.models import potential
    from matstore.relax import RelaxSettings

    torch.set_num_threads(a.threads)
    pot = potential.load(a.potential)
    settings = RelaxSettings(fmax=0.05, max_steps=a.max_steps)
    df = pl.read_csv(DATA).sort("material_id")
    print(f"potential {pot.spec.name} ({pot.spec.identity()['package']} {pot.spec.identity()['package_version']}), "
          f"torch threads {a.threads}, fmax 0.05, max {a.max_steps} steps")
    if a.speed:
        sp = speed(pot, [disturbed(Structure.from_str(c, fmt="cif")) for c in df["cif"][:a.speed]], settings)
        print("| relaxation of N structures | N | seconds | relaxations/s | relaxations/h | mean steps | converged |")
        print("|---|---|---|---|---|---|---|")
        print(f"| matstore batched (relax_batch) | {sp['n']} | {sp['batched_s']:.1f} | {sp['batched_per_s']:.3f} | "
              f"{sp['batched_per_hour']:.0f} | {sp['mean_steps']:.1f} | {sp['converged']} |")
        print(f"| per-structure ASE loop | {sp['n']} | {sp['ase_loop_s']:.1f} | {sp['ase_loop_per_s']:.3f} | "
              f"{sp['ase_loop_per_hour']:.0f} | | |")
        print(f"speed ratio batched / ASE loop: {sp['ratio']:.2f}x (goal >= 3x); "
              f"largest energy difference {sp['max_dE_meV_atom']:.4f} meV/atom")
    for n, relax in ((a.single_points, False), (a.accuracy, True)):
        if not n:
            continue
        ac = accuracy(pot, df.head(n), settings, relax)
        what = "relaxed" if relax else "unrelaxed (single point)"
        print(f"| perov_5 val, first {n} by material_id, {what} | placed {ac['placed']} | raw MAE "
              f"{ac['raw_mae']:.3f} eV/atom | per-element aligned MAE {ac['aligned_mae']:.3f} eV/atom "
              f"(on {ac['aligned_n']} held-out) | {ac['seconds']:.0f} s |")
        print(f"  anion-aligned MAE (one shift per O/N/F/S reference, fitted on the even half) "
              f"{ac['anion_mae']:.3f} eV/atom")
        print(f"  mean error (potential - heat_ref) {ac['mean_error']:+.3f} eV/atom; by anions present: "
              + ", ".join(f"{x} {m:+.3f} (n={n})" for x, (m, n) in ac["by_anion"].items()))
        print("  elemental references: " + ", ".join(f"{el} {e:.3f} ({src}, {st})" for el, (e, src, st) in
                                                      sorted(ac["refs"].items())))


if __name__ == "__main__":
    main()

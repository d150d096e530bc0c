"""CCCGAN and template structures for the 20 held-out Mg-Mn-O formulas, relaxed with the potential
and placed on the potential's Mg-Mn-O hull (issue 29's measurement, issue 27's before/after plot).

    PYTHONPATH=. python benchmarks/mgmno_hull.py --db hull.duckdb          # the hull first
    matstore models export / import                                        # a trained cccgan-mgmno
    PYTHONPATH=. python benchmarks/cccgan_hull.py --db hull.duckdb --n 30 --relax 5 --plot ehull.png

Per held-out formula (benchmarks/cccgan.py's 20: Mg2MnO4 + 19 seeded), requested as its smallest
real cell: n CCCGAN samples (structgen.generate, written to the store), the valid ones (decoded,
min distance >= 0.5 A, volume per atom in the shared structures' range +-20 %) grouped by
StructureMatcher, the first `relax` unique ones relaxed; the same for up to `relax` template
predictions (matstore.structures.templates over the training structures, no pyxtal fallback).
Relaxation: the store's potential (CHGNet 0.3.0 by default), FIRE + FrechetCellFilter, fmax 0.05,
<= max-steps, <= time-limit s of compute each; rows in relaxations / structures.
Hull: the lowest relaxed energy of every KNOWN composition except the 20 held-out formulas (the
seed's setting: requested compositions absent from the known phases) + the AFLOW-prototype
binaries and elements (mgmno_hull.py), one potential throughout. Also printed: the held-out DFT
structure relaxed by mgmno_hull.py (lowest single point of <= 4) against the same hull.
Counts within 200 and 80 meV/atom are of relaxed (converged) structures, beside the paper's DFT
counts (6,000 / 753 / 113): a potential's energies, not DFT.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cccgan import IMAGES, PAPER, derive_holdout, template_library, template_predictions  # noqa: E402

from matstore import structgen  # noqa: E402
from matstore.structures import image as im  # noqa: E402
from matstore.store import Store  # noqa: E402

TEMPLATE_METHOD = "templates-cccgan-benchmark"


def candidates(store, loaded, formula, cell, n, seed, lib, k, v_lo, v_hi, sm):
    """(generated ids, template ids): the first k unique valid structures of each, stored."""
    from matstore.models.cccgan import sample as sa
    from matstore.runner import batch_seed
    from matstore.structures import check, write_structures

    cell_formula = "".join(f"{e}{int(c) if c > 1 else ''}" for e, c in zip(im.MGMNO.elements, cell) if c)
    res = structgen.generate(store, loaded, cell_formula, n, seed=seed, progress=False)
    valid = []
    bs = structgen.DEFAULT_BATCH
    for b in range(-(-n // bs)):
        s = sa.sample(loaded.module, cell, min(bs, n - b * bs),
                      __import__("torch").Generator().manual_seed(batch_seed(seed, b)))
        for st in sa.structures(s, loaded.config):
            c = check(st)[0] if st is not None else None
            if c is not None and v_lo <= c.volume / len(c) <= v_hi:
                valid.append(c)
    uniq = [g[0] for g in sm.group_structures(valid)] if valid else []
    gen_ids = write_structures(store, uniq[:k], "generated", loaded.ref, run_id=res.run_id) if uniq else []
    tv = [c for c in (check(p)[0] for p in template_predictions(lib, formula, 3 * k))
          if c is not None and v_lo <= c.volume / len(c) <= v_hi]
    tu = [g[0] for g in sm.group_structures(tv)] if tv else []
    tmpl_ids = write_structures(store, tu[:k], "template", TEMPLATE_METHOD,
                                details={"templates": "training structures of benchmarks/cccgan.py"}) if tu else []
    return len(valid), len(uniq), gen_ids, len(tu), tmpl_ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="the store holding mgmno_hull.py's hull and a cccgan model")
    ap.add_argument("--model", default="cccgan-mgmno")
    ap.add_argument("--potential", default="chgnet")
    ap.add_argument("--n", type=int, default=30, help="CCCGAN samples per formula")
    ap.add_argument("--relax", type=int, default=5, help="unique valid structures relaxed per formula and method")
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", default=None, help="PNG: e_above_hull before / after relaxation")
    ap.add_argument("--report-only", action="store_true",
                    help="relax nothing: place what the store's relax run has committed so far")
    a = ap.parse_args()
    import torch
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Composition

    from matstore.models import potential
    from matstore.models.potential.registry import register
    from matstore.registry import load_model
    from matstore.relax import RelaxSettings
    from matstore.relax.run import relax_structures
    from matstore.relax.system_hull import known_hull, place_inputs

    torch.set_num_threads(1)
    store = Store(a.db)
    images = im.load_images(IMAGES)
    holdout = derive_holdout(images)
    loaded = load_model(store, a.model)
    if sorted(loaded.record["hyperparams"].get("holdout") or []) != sorted(holdout):
        sys.exit(f"{loaded.ref} was not trained with the benchmark's formulas held out")
    counts = im.MGMNO.counts(im.occupied(images))
    red = np.array([Composition(dict(zip(im.MGMNO.elements, map(int, r)))).reduced_formula for r in counts])
    vpa = np.array([im.decode(x).volume / int(c.sum()) for x, c in zip(images, counts)])
    v_lo, v_hi = 0.8 * vpa.min(), 1.2 * vpa.max()
    lib = template_library(images[~np.isin(red, holdout)])
    sm = StructureMatcher()
    t0 = time.perf_counter()
    per = {}
    for f in holdout:
        mine = np.flatnonzero(red == f)
        cell = counts[mine[np.argmin(counts[mine].sum(1))]]
        per[f] = candidates(store, loaded, f, cell, a.n, a.seed, lib, a.relax, v_lo, v_hi, sm)
        print(f"{f}: valid {per[f][0]}, unique {per[f][1]}, templates unique {per[f][3]}", flush=True)
    t_gen = time.perf_counter() - t0
    ids = [i for v in per.values() for i in v[2] + v[4]]
    settings = RelaxSettings(fmax=0.05, max_steps=a.max_steps, time_limit=a.time_limit)
    if a.report_only:
        run = None
    else:
        run = relax_structures(store, "s.structure_id IN (" + ", ".join(map(str, ids)) + ")", a.potential,
                               settings, batch=16, show_progress=True, loaded=potential.load(a.potential))
    model_id, ref = register(store, a.potential)
    hull = known_hull(store, model_id, exclude=holdout)
    if hull.missing("MgMnO3"):
        sys.exit(f"no converged elemental reference for {', '.join(hull.missing('MgMnO3'))} under {ref} in "
                 f"{a.db}: run benchmarks/mgmno_hull.py (or matstore relax-stability) first")
    report(store, model_id, ref, hull, per, holdout, a, run, t_gen)


def count_near(rows, limit):
    return sum(r["e_above_hull"] is not None and r["e_above_hull"] <= limit for r in rows)


def report(store, model_id, ref, hull, per, holdout, a, run, t_gen):
    from matstore.relax.system_hull import place_inputs

    ident = {"ref": ref}
    done = (f"relax run {run.run_id} ({run.n_relaxed} relaxed now, {run.seconds:.0f} s); " if run else
            "report only: the relaxations committed so far; ")
    print(f"\nhull: {ref}, known compositions except the 20 held out + AFLOW-prototype binaries/elements; "
          f"{done}generation {t_gen:.0f} s; "
          f"FIRE + FrechetCellFilter fmax 0.05, <= {a.max_steps} steps, <= {a.time_limit:.0f} s each")
    held = store.query(
        "SELECT c.formula, min(r.energy_per_atom) AS e FROM relaxations r JOIN structures s ON s.structure_id = "
        "r.structure_id JOIN compositions c ON c.composition_id = r.composition_id WHERE s.origin = 'known' AND "
        f"r.status = 'converged' AND r.model_id = {int(model_id)} GROUP BY c.formula")
    from pymatgen.core import Composition

    from matstore.relax.energy_hull import Phase

    dft = {Composition(f).reduced_formula: hull.place(Phase(f, f, e)).e_above_hull
           for f, e in zip(held["formula"], held["e"]) if Composition(f).reduced_formula in holdout}
    print("(<= 200 / <= 80: converged structures within 200 / 80 meV/atom of the hull; (+k): stopped early "
          "by the step cap or time limit with the last energy already within: an upper bound)")
    print("| formula | CCCGAN valid / unique (of n) | relaxed | converged | <= 200 | <= 80 | best (meV/atom) | "
          "templates unique | relaxed | converged | <= 200 | <= 80 | best | held-out DFT structure relaxed |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    tot = collections.Counter()
    everything = {"generated": [], "template": []}
    for f in holdout:
        nv, nu, gids, ntu, tids = per[f]
        g, t = place_inputs(store, model_id, gids, hull), place_inputs(store, model_id, tids, hull)
        everything["generated"] += g
        everything["template"] += t

        def cols(rows):
            conv = [r for r in rows if r["e_above_hull"] is not None]
            best = min((r["e_above_hull"] for r in conv), default=None)
            # + structures stopped early (step cap / time limit) whose last energy is already within
            up = [r for r in rows if r["e_above_hull"] is None and r["e_above_hull_last"] is not None]
            n200, n80 = (sum(r["e_above_hull_last"] <= x for r in up) for x in (0.2, 0.08))
            return (len(rows), len(conv), f"{count_near(rows, 0.2)} (+{n200})", f"{count_near(rows, 0.08)} (+{n80})",
                    f"{1000 * best:.0f}" if best is not None else "-")
        cg, ct = cols(g), cols(t)
        tot.update({"valid": nv, "unique": nu, "g_rel": cg[0], "g_conv": cg[1], "g200": count_near(g, 0.2),
                    "g80": count_near(g, 0.08), "t_u": ntu, "t_rel": ct[0], "t_conv": ct[1],
                    "t200": count_near(t, 0.2), "t80": count_near(t, 0.08)})
        d = f"{1000 * dft[f]:.0f}" if f in dft else "-"
        print(f"| {f} | {nv} / {nu} (of {a.n}) | {cg[0]} | {cg[1]} | {cg[2]} | {cg[3]} | {cg[4]} | {ntu} | "
              f"{ct[0]} | {ct[1]} | {ct[2]} | {ct[3]} | {ct[4]} | {d} |")
    print(f"| **total** | {tot['valid']} / {tot['unique']} (of {a.n * len(holdout)}) | {tot['g_rel']} | "
          f"{tot['g_conv']} | {tot['g200']} | {tot['g80']} | | {tot['t_u']} | {tot['t_rel']} | {tot['t_conv']} | "
          f"{tot['t200']} | {tot['t80']} | | |")
    print(f"| paper (DFT, 20 formulas not in MP) | {PAPER['generated']} generated | | | {PAPER['e200']} | "
          f"{PAPER['e80']} | | | | | | | | |")
    mg = [r for r in everything["generated"] if r["formula"] in ("Mg2MnO4",) and r["e_above_hull"] is not None]
    best = min((r["e_above_hull"] for r in mg), default=None)
    print("Mg2MnO4 generated on the hull (<= 0 meV/atom): "
          + ("yes" if best is not None and best <= 0 else "no") + (f" (best {1000 * best:.1f} meV/atom)" if best is not None else ""))
    statuses = collections.Counter(r["status"] for v in everything.values() for r in v)
    print("statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())) + f"; {ident['ref']}")
    if a.plot:
        plot(everything, a.plot)


def plot(rows: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    bins = np.linspace(0, 2.0, 41)
    for ax, key in zip(axes, ("generated", "template")):
        before = [min(r["e_above_hull_before"], 2.0) for r in rows[key] if r["e_above_hull_before"] is not None]
        after = [min(r["e_above_hull"], 2.0) for r in rows[key] if r["e_above_hull"] is not None]
        ax.hist(before, bins, alpha=0.5, label=f"before relaxation ({len(before)})")
        ax.hist(after, bins, alpha=0.5, label=f"after, converged ({len(after)})")
        ax.axvline(0.2, color="k", ls="--", lw=0.8)
        ax.axvline(0.08, color="k", ls=":", lw=0.8)
        ax.set_title({"generated": "CCCGAN", "template": "templates"}[key] + " (held-out Mg-Mn-O formulas)")
        ax.set_xlabel("energy above the potential's hull (eV/atom; > 2 clipped)")
        ax.legend()
    axes[0].set_ylabel("structures")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

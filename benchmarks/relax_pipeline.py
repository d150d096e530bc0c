"""Template -> relax -> match on Perov-5 (issue 27's pipeline): does relaxing the template-predicted
structure with the potential raise the CSP match rate against the DFT structure?

    PYTHONPATH=. python benchmarks/relax_pipeline.py --n 40 --max-steps 200 --plot pipeline.png

Split as benchmarks/csp.py (composition-disjoint halves of perov_5/val.csv by the sha256 of the
reduced formula, seed 0): templates = one half; targets = a seeded sample of n structures of the
other half, each given only its composition. Prediction: matstore.structures.templates, first
prediction (rule `sites`); relaxation: matstore.relax.relax_batch with the potential (FIRE +
FrechetCellFilter, fmax 0.05, <= max-steps); match: pymatgen StructureMatcher(stol=0.5,
angle_tol=10, ltol=0.3) against the target's DFT structure, before and after relaxation (RMSD
normalised by (V/N)^(1/3), the matcher's own). Also the potential's energy per atom of the
prediction before / after and of the relaxed DFT structure (the plot: energy above the relaxed
DFT structure of the same composition, before and after relaxing the prediction).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from csp import MATCHER, half, library, load_perov  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--potential", default="chgnet")
    ap.add_argument("--max-steps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", default=None)
    a = ap.parse_args()
    import torch
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from matstore.models import potential
    from matstore.relax import RelaxSettings, relax_batch
    from matstore.structures.templates import reduced_counts

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    structures = load_perov()
    formulas = [s.composition.reduced_formula for s in structures]
    train = [i for i, f in enumerate(formulas) if half(f, a.seed) == 0]
    test = [i for i, f in enumerate(formulas) if half(f, a.seed) == 1]
    rng = np.random.default_rng(a.seed)
    targets = [test[j] for j in sorted(rng.choice(len(test), size=min(a.n, len(test)), replace=False))]
    lib = library(structures, train, "sites")
    preds = [lib.predict(reduced_counts(structures[i].composition), 1) for i in targets]
    keep = [k for k, p in enumerate(preds) if p]
    pred = [preds[k][0].structure for k in keep]
    dft = [structures[targets[k]] for k in keep]
    pot = potential.load(a.potential)
    settings = RelaxSettings(fmax=0.05, max_steps=a.max_steps)
    t = time.perf_counter()
    rp = relax_batch(pot, pred, settings)
    rd = relax_batch(pot, dft, settings)
    seconds = time.perf_counter() - t
    from pymatgen.io.ase import AseAtomsAdaptor

    sm = StructureMatcher(**MATCHER)

    def rms(s, ref):
        got = sm.get_rms_dist(s, ref)
        return None if got is None else got[0]

    before = [rms(p, d) for p, d in zip(pred, dft)]
    after = [rms(AseAtomsAdaptor.get_structure(r.atoms), d) if r.atoms is not None else None for r, d in zip(rp, dft)]
    n = len(keep)
    mb, ma = sum(x is not None for x in before), sum(x is not None for x in after)
    gained = sum(b is None and x is not None for b, x in zip(before, after))
    lost = sum(b is not None and x is None for b, x in zip(before, after))
    conv = sum(r.status == "converged" for r in rp)
    ident = pot.spec.identity()
    print(f"Perov-5 val, {n} targets (seeded sample of the held-out half, seed {a.seed}), template rule sites, "
          f"first prediction; {ident['potential']} ({ident['package']} {ident['package_version']}), FIRE + "
          f"FrechetCellFilter fmax 0.05, <= {a.max_steps} steps; {2 * n} relaxations in {seconds:.0f} s")
    print("| structures | matched (StructureMatcher stol 0.5, ltol 0.3, angle 10) | match rate % | mean RMSD of matches |")
    print("|---|---|---|---|")
    for name, xs in (("template prediction, unrelaxed", before), ("template prediction, relaxed", after)):
        m = [x for x in xs if x is not None]
        print(f"| {name} | {len(m)} / {n} | {100 * len(m) / max(n, 1):.1f} | {np.mean(m) if m else float('nan'):.4f} |")
    print(f"relaxation gained {gained} matches and lost {lost}; predictions converged {conv}/{n}, "
          f"mean steps {np.mean([r.steps for r in rp]):.1f}; DFT structures converged "
          f"{sum(r.status == 'converged' for r in rd)}/{n}")
    e_b = np.array([r.initial_energy_per_atom if r.initial_energy_per_atom is not None else np.nan for r in rp])
    e_a = np.array([r.energy_per_atom if r.status == "converged" else np.nan for r in rp])
    e_d = np.array([r.energy_per_atom if r.status == "converged" else np.nan for r in rd])
    d_b, d_a = 1000 * (e_b - e_d), 1000 * (e_a - e_d)
    ok = np.isfinite(d_b) & np.isfinite(d_a)
    print(f"energy above the relaxed DFT structure (meV/atom, {ok.sum()} with both converged): median before "
          f"{np.median(d_b[ok]):.0f}, after {np.median(d_a[ok]):.0f}; within 80 meV/atom before {(d_b[ok] <= 80).sum()}, "
          f"after {(d_a[ok] <= 80).sum()}; at or below it after relaxation {(d_a[ok] <= 1).sum()}")
    if a.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        bins = np.linspace(-100, 2000, 43)
        ax.hist(np.clip(d_b[ok], -100, 2000), bins, alpha=0.5, label="template prediction, unrelaxed")
        ax.hist(np.clip(d_a[ok], -100, 2000), bins, alpha=0.5, label="after relaxation")
        ax.set_xlabel(f"energy above the relaxed DFT structure (meV/atom, {ident['potential']}; clipped)")
        ax.set_ylabel("Perov-5 targets")
        ax.set_title(f"Perov-5 template -> relax ({ok.sum()} targets)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(a.plot, dpi=100)
        print(f"wrote {a.plot}")


if __name__ == "__main__":
    main()

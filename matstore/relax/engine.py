"""Batched relaxation: many structures advance in lockstep, one potential call per step.

Each structure has its own ASE FIRE optimizer over a FrechetCellFilter, exactly as a one-at-a-time
ASE relaxation would; its calculator only serves the energy, forces and stress that the batched
call computed for its current positions and cell. The loop is ASE's Optimizer.irun (check
convergence, step, count) written out so that the evaluations of every structure's next state
happen together: the answers equal ``relax_sequential`` (the package's own calculator, one
structure at a time) up to the potential's float noise between a batch and a single pass.

Per structure the relaxation ends with a status:
  converged   fmax (atoms and cell, as FrechetCellFilter reports them) <= settings.fmax
  step_cap    settings.max_steps FIRE steps without converging
  time_limit  its charged compute time passed settings.time_limit (each batched call is charged
              to its structures in proportion to their atoms, plus their own optimizer steps)
  exploded    energy per atom or forces not finite or out of bounds, the volume ratio out of
              bounds, or the structure no longer makes a graph (an atom left alone)
  error       the input cannot be evaluated at all (too many sites, unknown element, ...)
Deterministic: the same structures in the same batch give the same answers (no randomness; the
time limit is the one wall-clock input).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

STATUSES = ("converged", "step_cap", "time_limit", "exploded", "error")


@dataclass(frozen=True)
class RelaxSettings:
    fmax: float = 0.05               # eV/Å (cell DOFs as FrechetCellFilter scales them)
    max_steps: int = 500             # FIRE steps
    time_limit: float | None = None  # seconds of compute charged to one structure
    max_sites: int = 400             # bigger inputs are refused (status error), before any allocation
    max_abs_energy_per_atom: float = 50.0          # eV/atom beyond this: exploded
    volume_ratio_bounds: tuple[float, float] = (0.2, 5.0)  # V/V0 outside: exploded
    relax_cell: bool = True          # False: positions only, cell fixed (a molecule in its box)

    def check(self) -> "RelaxSettings":
        from .errors import RelaxError  # noqa: PLC0415

        if not (np.isfinite(self.fmax) and 0 < self.fmax <= 10):
            raise RelaxError(f"--fmax {self.fmax}: must be in (0, 10] eV/Å")
        if not 0 <= int(self.max_steps) <= 100_000:
            raise RelaxError(f"--max-steps {self.max_steps}: must be in 0..100000")
        if self.time_limit is not None and not (np.isfinite(self.time_limit) and self.time_limit > 0):
            raise RelaxError(f"--time-limit {self.time_limit}: must be a positive number of seconds")
        if not 1 <= int(self.max_sites) <= 10_000:
            raise RelaxError(f"--max-sites {self.max_sites}: must be in 1..10000")
        return self

    def as_dict(self) -> dict:
        return {"fmax": self.fmax, "max_steps": self.max_steps, "time_limit": self.time_limit,
                "max_sites": self.max_sites, "max_abs_energy_per_atom": self.max_abs_energy_per_atom,
                "volume_ratio_bounds": list(self.volume_ratio_bounds), "optimizer": "ase FIRE",
                "cell_filter": "ase FrechetCellFilter" if self.relax_cell else None}


@dataclass
class RelaxResult:
    status: str
    steps: int
    fmax: float | None                   # final max force (eV/Å, with the cell's)
    energy_per_atom: float | None        # final (eV/atom)
    initial_energy_per_atom: float | None
    volume_change: float | None          # V_final / V_initial - 1
    atoms: object | None                 # the final ase.Atoms (None for error)
    seconds: float = 0.0                 # compute charged to it
    message: str | None = None


@dataclass
class _State:
    atoms: object
    calc: object
    opt: object
    filt: object
    v0: float
    e0: float | None = None
    steps: int = 0
    seconds: float = 0.0
    result: RelaxResult | None = None
    pred: object = None
    history: list = field(default_factory=list)


def served_calculator():
    """An ASE calculator that only serves results given to it (by the batched call)."""
    from ase.calculators.calculator import Calculator  # noqa: PLC0415

    class Served(Calculator):
        implemented_properties = ["energy", "free_energy", "forces", "stress"]

        def serve(self, atoms, pred) -> None:
            self.atoms = atoms.copy()
            self.results = {"energy": pred.energy, "free_energy": pred.energy,
                            "forces": pred.forces, "stress": pred.stress}

        def calculate(self, atoms=None, properties=None, system_changes=None):
            raise RuntimeError("batched relaxation: asked for a state the batched call did not compute")

    return Served()


def _fmax(filt) -> float:
    f = filt.get_forces()
    return float(np.sqrt((f * f).sum(axis=1).max())) if len(f) else 0.0


def relax_batch(potential, structures: Sequence, settings: RelaxSettings = RelaxSettings(),
                on_done: Callable[[int, RelaxResult], None] | None = None) -> list[RelaxResult]:
    """Relax ase.Atoms (or pymatgen Structures) together; one potential.predict per step for all
    structures still going. on_done(i, result) is called as each one finishes."""
    from ase.filters import FrechetCellFilter  # noqa: PLC0415
    from ase.optimize import FIRE  # noqa: PLC0415

    settings.check()
    states: list[_State | None] = []
    results: list[RelaxResult | None] = [None] * len(structures)

    def finish(i: int, status: str, message: str | None = None) -> None:
        s = states[i]
        final = s.atoms if status != "error" else None
        e = s.pred.energy / len(s.atoms) if s.pred is not None and np.isfinite(s.pred.energy) else None
        ok_state = status in ("converged", "step_cap", "time_limit")
        results[i] = RelaxResult(
            status, s.steps, _fmax(s.filt) if ok_state else None, e if ok_state else None, s.e0,
            s.atoms.get_volume() / s.v0 - 1 if ok_state else None,
            final.copy() if final is not None and ok_state else None, s.seconds, message)
        if on_done is not None:
            on_done(i, results[i])

    for i, st in enumerate(structures):
        atoms = _as_atoms(st)
        if len(atoms) > settings.max_sites or len(atoms) == 0:
            states.append(None)
            results[i] = RelaxResult("error", 0, None, None, None, None, None, 0.0,
                                     f"{len(atoms)} sites (allowed 1..{settings.max_sites}, --max-sites)")
            if on_done is not None:
                on_done(i, results[i])
            continue
        calc = served_calculator()
        atoms.calc = calc
        filt = FrechetCellFilter(atoms) if settings.relax_cell else atoms
        opt = FIRE(filt, logfile=None)
        opt.fmax = settings.fmax   # what opt.run(fmax=...) sets before its irun loop
        states.append(_State(atoms, calc, opt, filt, atoms.get_volume()))

    def evaluate(idx: list[int]) -> None:
        t = time.perf_counter()
        preds = potential.predict([states[i].atoms for i in idx])
        dt = time.perf_counter() - t
        total = sum(len(states[i].atoms) for i in idx)
        for i, p in zip(idx, preds):
            s = states[i]
            s.seconds += dt * len(s.atoms) / total
            s.pred = p
            if p.error is None:
                s.calc.serve(s.atoms, p)

    active = [i for i, s in enumerate(states) if s is not None]
    if active:
        evaluate(active)
    lo, hi = settings.volume_ratio_bounds
    while active:
        stepped = []
        for i in active:
            s = states[i]
            p = s.pred
            if p.error is not None:
                finish(i, "error" if s.steps == 0 else "exploded", p.error)
                continue
            e = p.energy / len(s.atoms)
            if s.steps == 0:
                s.e0 = e if np.isfinite(e) else None
            if (not np.isfinite(e) or abs(e) > settings.max_abs_energy_per_atom
                    or not np.isfinite(p.forces).all() or not np.isfinite(p.stress).all()):
                finish(i, "exploded", f"energy {e:.4g} eV/atom or forces out of bounds")
                continue
            ratio = s.atoms.get_volume() / s.v0
            if not lo <= ratio <= hi:
                finish(i, "exploded", f"volume ratio {ratio:.3g} outside [{lo}, {hi}]")
                continue
            if s.opt.converged():
                finish(i, "converged")
            elif s.steps >= settings.max_steps:
                finish(i, "step_cap")
            elif settings.time_limit is not None and s.seconds > settings.time_limit:
                finish(i, "time_limit", f"{s.seconds:.1f} s > {settings.time_limit} s")
            else:
                t = time.perf_counter()
                s.opt.step()
                s.opt.nsteps += 1
                s.steps += 1
                s.seconds += time.perf_counter() - t
                stepped.append(i)
        active = stepped
        if active:
            evaluate(active)
    return results


def relax_sequential(calculator, structures: Sequence, settings: RelaxSettings = RelaxSettings()
                     ) -> list[RelaxResult]:
    """The reference: one plain ASE relaxation per structure (FIRE over FrechetCellFilter, the
    package's own calculator), same settings; status converged or step_cap only."""
    from ase.filters import FrechetCellFilter  # noqa: PLC0415
    from ase.optimize import FIRE  # noqa: PLC0415

    out = []
    for st in structures:
        atoms = _as_atoms(st)
        atoms.calc = calculator
        v0 = atoms.get_volume()
        t = time.perf_counter()
        e0 = atoms.get_potential_energy() / len(atoms)
        filt = FrechetCellFilter(atoms) if settings.relax_cell else atoms
        opt = FIRE(filt, logfile=None)
        converged = opt.run(fmax=settings.fmax, steps=settings.max_steps)
        out.append(RelaxResult("converged" if converged else "step_cap", opt.nsteps, _fmax(filt),
                               atoms.get_potential_energy() / len(atoms), e0,
                               atoms.get_volume() / v0 - 1, atoms.copy(), time.perf_counter() - t))
    return out


def _as_atoms(structure):
    """A fresh ase.Atoms of an ase.Atoms or a pymatgen Structure."""
    from ase import Atoms  # noqa: PLC0415

    if isinstance(structure, Atoms):
        atoms = structure.copy()
        atoms.calc = None
        return atoms
    from pymatgen.io.ase import AseAtomsAdaptor  # noqa: PLC0415

    return AseAtomsAdaptor.get_atoms(structure)

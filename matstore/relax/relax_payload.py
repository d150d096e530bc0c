"""A relaxed chunk as plain data (one Arrow table), what both the in-process path and a Dask
worker produce and the writer (run.write_chunk) consumes: per input structure its status, steps,
fmax, energies, volume change, seconds, message, and the relaxed cell (lattice matrix, atomic
numbers, fractional coordinates exactly as the pymatgen Structure that gets stored has them).

From a worker the table is untrusted: ``checked`` verifies it against the chunk sent before the
writer sees it (the first problem is an ExecutorError naming the chunk; nothing of it is written).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .engine import STATUSES, RelaxSettings

MAX_MESSAGE = 2000
OK = ("converged", "step_cap", "time_limit")   # the statuses that carry a relaxed structure
NUMBERS = ("fmax", "energy_per_atom", "volume_change")


def schema() -> pa.Schema:
    from ..executor.payloads import package_fields  # noqa: PLC0415

    return pa.schema(package_fields("relaxations", [
        "structure_id", "status", "steps", "fmax", "energy_per_atom", "initial_energy_per_atom",
        "volume_change", "seconds", "message"])
        + [pa.field("lattice", pa.list_(pa.float64())), pa.field("numbers", pa.list_(pa.int64())),
           pa.field("frac_coords", pa.list_(pa.float64()))])


def table(ids, results) -> pa.Table:
    """engine.RelaxResults of the structures ids -> the chunk's table (relaxed cells as the
    Structures the store would get from them: AseAtomsAdaptor.get_structure)."""
    from pymatgen.io.ase import AseAtomsAdaptor  # noqa: PLC0415

    lat, num, frac = [], [], []
    for r in results:
        s = AseAtomsAdaptor.get_structure(r.atoms) if r.atoms is not None else None
        lat.append(None if s is None else s.lattice.matrix.reshape(-1).tolist())
        num.append(None if s is None else [int(sp.Z) for sp in s.species])
        frac.append(None if s is None else s.frac_coords.reshape(-1).tolist())
    cols = {"structure_id": [int(i) for i in ids], "status": [r.status for r in results],
            "steps": [int(r.steps) for r in results], "fmax": [r.fmax for r in results],
            "energy_per_atom": [r.energy_per_atom for r in results],
            "initial_energy_per_atom": [r.initial_energy_per_atom for r in results],
            "volume_change": [r.volume_change for r in results],
            "seconds": [float(r.seconds) for r in results], "message": [r.message for r in results],
            "lattice": lat, "numbers": num, "frac_coords": frac}
    return pa.table({k: pa.array(v, f.type) for (k, v), f in zip(cols.items(), schema())})


def structures(t: pa.Table) -> list:
    """The relaxed pymatgen Structures of a chunk's table (None where the status carries none)."""
    from pymatgen.core import Lattice, Structure  # noqa: PLC0415

    out = []
    for lat, num, frac in zip(*(t[c].to_pylist() for c in ("lattice", "numbers", "frac_coords"))):
        out.append(None if lat is None else Structure(
            Lattice(np.asarray(lat, np.float64).reshape(3, 3)), num,
            np.asarray(frac, np.float64).reshape(-1, 3)))
    return out


def checked(data, ids: list[int], inputs: list, settings: RelaxSettings, name: str, chunk_no: int) -> pa.Table:
    """A worker's chunk table, refused unless: its columns and types are the schema's; one row per
    input, in the ids sent; status known; numbers finite and within the settings' bounds; a relaxed
    cell exactly where the status has one, with the input's atomic numbers in order, a finite
    non-singular lattice whose volume matches volume_change, finite fractional coordinates."""
    from ..executor import ExecutorError  # noqa: PLC0415
    from ..executor.payloads import decode  # noqa: PLC0415

    what = f"executor {name}: relax chunk {chunk_no}"
    t = decode(data, schema(), what, ExecutorError)
    got = t["structure_id"].to_pylist()
    if got != [int(i) for i in ids]:
        raise ExecutorError(f"{what}: the structure ids differ from the chunk sent "
                            f"({len(got)} rows vs {len(ids)} structures)")
    lo, hi = settings.volume_ratio_bounds
    for k, row in enumerate(t.to_pylist()):
        sid, status = row["structure_id"], row["status"]

        def bad(why: str):
            raise ExecutorError(f"{what}: structure {sid}: {why}")

        if status not in STATUSES:
            bad(f"unknown status {str(status)[:40]!r}")
        if row["steps"] is None or not 0 <= row["steps"] <= settings.max_steps:
            bad(f"steps {row['steps']} outside 0..{settings.max_steps}")
        if row["seconds"] is None or not (np.isfinite(row["seconds"]) and row["seconds"] >= 0):
            bad(f"seconds {row['seconds']} not a finite non-negative number")
        if row["message"] is not None and len(row["message"]) > MAX_MESSAGE:
            bad(f"a message of {len(row['message']):,} characters (at most {MAX_MESSAGE})")
        e0 = row["initial_energy_per_atom"]
        if e0 is not None and not np.isfinite(e0):
            bad(f"initial_energy_per_atom {e0} not finite")
        has = [row[c] is not None for c in ("lattice", "numbers", "frac_coords")]
        if status not in OK:
            if any(has) or any(row[c] is not None for c in NUMBERS):
                bad(f"status {status} with a relaxed structure or final numbers")
            continue
        for c in NUMBERS:
            if row[c] is None or not np.isfinite(row[c]):
                bad(f"{c} {row[c]} not finite")
        if abs(row["energy_per_atom"]) > settings.max_abs_energy_per_atom or row["fmax"] < 0:
            bad(f"energy_per_atom {row['energy_per_atom']:.4g} or fmax {row['fmax']:.4g} out of bounds")
        if status == "converged" and row["fmax"] > settings.fmax:
            bad(f"converged with fmax {row['fmax']:.4g} > {settings.fmax}")
        if not lo <= 1 + row["volume_change"] <= hi:
            bad(f"volume change {row['volume_change']:.4g} outside the ratio bounds [{lo}, {hi}]")
        if not all(has):
            bad(f"status {status} without a relaxed structure")
        want = [int(sp.Z) for sp in inputs[k].species]
        if row["numbers"] != want:
            n = len(row["numbers"])
            bad(f"the relaxed cell has {n} sites, the input {len(want)}" if n != len(want) else
                f"the relaxed cell's species differ from the input's ({inputs[k].composition.formula})")
        lat = np.asarray(row["lattice"], np.float64)
        frac = np.asarray(row["frac_coords"], np.float64)
        if lat.shape != (9,) or not np.isfinite(lat).all() or frac.shape != (3 * len(want),) \
                or not np.isfinite(frac).all() or np.abs(frac).max(initial=0) > 1e3:
            bad("the relaxed lattice or fractional coordinates are not finite 3x3 / n x 3 numbers")
        vol = abs(float(np.linalg.det(lat.reshape(3, 3))))
        v0 = float(inputs[k].lattice.volume)
        if not vol > 1e-6 * v0 or abs(vol / v0 - 1 - row["volume_change"]) > 1e-6 * max(1.0, vol / v0):
            bad(f"the relaxed lattice's volume {vol:.4g} Å³ does not match volume_change "
                f"{row['volume_change']:.4g} of the input's {v0:.4g} Å³")
    return t

"""`builtin`: the offline default, real data shipped inside our dependencies.

1. pymatgen's experimental formation enthalpies (analysis/compatibility/exp_compounds.json.gz,
   2,135 compounds; "exp energy" in eV per formula unit AS WRITTEN, e.g. Ag2CO3 has 6 atoms),
   stored as formation_energy_per_atom (eV/atom), external_id "exp:<formula>".
2. matminer's Materials Project transport database (utils/data_files/mp_transport/
   transport_database.tar.xz: mp_id, pretty_formula, ...), stored as materials with
   external_id = mp-id and no properties.
Files are found through the installed packages, never by a fixed path.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from dataclasses import dataclass
import importlib.util
from pathlib import Path
from typing import Iterator

import polars as pl

from .. import compositions
from . import Chunk, Source, SourceError, table_chunks

PARTS = ("exp_compounds", "mp_transport")


def _package_dir(name: str) -> Path:
    """An installed package's folder, found without importing it (pymatgen imports are slow)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(f"builtin needs the {name} package, which is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def exp_compounds_path() -> Path:
    return _package_dir("pymatgen") / "analysis" / "compatibility" / "exp_compounds.json.gz"


def transport_path() -> Path:
    return _package_dir("matminer") / "utils" / "data_files" / "mp_transport" / "transport_database.tar.xz"


def atoms_as_written(formula: str) -> float | None:
    """Atoms in one formula unit as written (Ag2CO3 -> 6), None if the formula does not parse."""
    try:
        return float(sum(compositions.parse_amounts(formula).values()))
    except compositions.FormulaError:
        return None


def exp_compounds_frame() -> pl.DataFrame:
    path = exp_compounds_path()
    try:
        with gzip.open(path, "rt") as f:
            entries = json.load(f)
    except (OSError, ValueError) as e:
        raise SourceError(f"cannot read pymatgen's {path}: {e}") from e
    fe = []
    for e in entries:
        n = atoms_as_written(e["formula"])
        v = e.get("exp energy")
        fe.append(None if n is None or v is None else str(v / n))
    return pl.DataFrame({
        "external_id": [f"exp:{e['formula']}" for e in entries],
        "formula": [e["formula"] for e in entries],
        "raw": [json.dumps(e, default=str) for e in entries],
        "raw:formation_energy_per_atom": fe,
    }, schema={"external_id": pl.String, "formula": pl.String, "raw": pl.String,
               "raw:formation_energy_per_atom": pl.String})


def transport_frame() -> pl.DataFrame:
    path = transport_path()
    try:
        with tarfile.open(path) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith(".csv"))
            data = tar.extractfile(member).read()
    except (OSError, tarfile.TarError, StopIteration) as e:
        raise SourceError(f"cannot read matminer's {path}: {e}") from e
    return pl.read_csv(io.BytesIO(data), infer_schema=False, columns=["mp_id", "pretty_formula"])


@dataclass
class BuiltinSource(Source):
    def chunks(self, cursor: str | None = None) -> Iterator[Chunk]:
        part = int(cursor or 0)  # cursor = index of the next part
        if part <= 0:
            yield Chunk(exp_compounds_frame(), "1")
        if part <= 1:
            df = transport_frame()
            for c in table_chunks(df, path="transport_database.csv", formula_col="pretty_formula",
                                  id_col="mp_id", props=[], cursor=None):
                yield Chunk(c.rows, None if c.cursor is None else "1")

    @classmethod
    def open(cls, limit=None) -> "BuiltinSource":
        if limit is not None:
            raise SourceError("builtin: --limit is not supported (the data is small and fixed)")
        for p in (exp_compounds_path(), transport_path()):
            if not p.is_file():
                raise SourceError(f"builtin data file {p} is missing from the installed packages")
        return cls(name="builtin", uri="pymatgen:exp_compounds.json.gz+matminer:transport_database.csv",
                   params={"parts": list(PARTS)}, units={"formation_energy_per_atom": "eV/atom"},
                   total=2135 + 47_737)

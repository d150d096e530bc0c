"""Structure files -> entries (external id, the raw text, a pymatgen Structure or the reason why not).

Formats (by name, or --format): cif (one entry per data block), poscar (POSCAR/CONTCAR/*.vasp),
extxyz (one entry per frame; a frame without a cell is a reject), json (a pymatgen Structure dict
or a list of them: read with Structure.from_dict, never MontyDecoder, so no class named in the file
is imported), table (CSV/TSV/Parquet with a CIF column, other columns through --prop), mgmno (the
crystal GAN's (N, 30, 3) .npy images with mgmno_names.txt beside them; numpy without pickle).
A reader never raises on an entry: it yields the entry with its reason. Only an unreadable file
(missing, too large, not the format at all) raises SourceError before anything is recorded.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..sources import SourceError

FORMATS = ("cif", "poscar", "extxyz", "json", "table", "mgmno")
MAX_FILE_BYTES = 2 << 30        # text formats are read whole
MAX_RAW_CHARS = 4000            # of an entry's text kept with a reject
CIF_COLUMNS = ("cif", "structure", "cif_string")
ID_COLUMNS = ("material_id", "id", "entry_id", "mp_id", "task_id")


@dataclass
class Entry:
    external_id: str
    raw: str
    structure: object | None = None
    reason: str | None = None
    props: dict[str, str | None] = field(default_factory=dict)


def detect_format(path: str | Path) -> str:
    p = Path(path)
    name, suffix = p.name.lower(), "".join(p.suffixes[-2:]).lower()
    if suffix.endswith(".cif"):
        return "cif"
    if name.startswith(("poscar", "contcar")) or suffix.endswith((".vasp", ".poscar")):
        return "poscar"
    if suffix.endswith((".xyz", ".extxyz")):
        return "extxyz"
    if suffix.endswith(".json"):
        return "json"
    if suffix.endswith((".csv", ".tsv", ".parquet", ".pq")):
        return "table"
    if suffix.endswith(".npy"):
        return "mgmno"
    raise SourceError(f"{path}: cannot tell the structure format from the name; give --format "
                      f"({', '.join(FORMATS)})")


def read_text(path: str | Path) -> str:
    p = Path(path)
    if not p.is_file():
        raise SourceError(f"file {p} does not exist" if not p.exists() else f"{p} is not a file")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise SourceError(f"{p}: {p.stat().st_size:,} bytes, more than the {MAX_FILE_BYTES:,} a structure file may have")
    return p.read_bytes().decode("utf-8", errors="replace")


def _short(text: str) -> str:
    return text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS] + f"... [{len(text):,} chars]"


def _quiet(fn, *args, **kw):
    """Call a pymatgen/ase parser with its warnings silenced (they become a reject's reason instead)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return fn(*args, **kw), None
        except Exception as e:  # noqa: BLE001 - any parser failure is this entry's reason
            hint = "; ".join(str(w.message).splitlines()[0] for w in caught[:2])
            return None, f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}" + (
                f" ({hint[:200]})" if hint else "")


_ATOM_SITE_ROWS = re.compile(r"^\s*_atom_site_fract_x", re.M)


def parse_cif(text: str, max_sites: int):
    """(Structure, None) or (None, reason) for one CIF data block's text."""
    from pymatgen.io.cif import CifParser  # noqa: PLC0415

    # bound the work before symmetry expansion: a block listing more sites than allowed is refused
    n_lines = sum(1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith(("_", "#", "loop_", "data_")))
    if _ATOM_SITE_ROWS.search(text) is None:
        return None, "unparseable CIF: no _atom_site_fract_x loop"
    if n_lines > 50 * max_sites + 500:
        return None, f"CIF block too large: {n_lines} data lines for at most {max_sites} sites"

    def parse():
        structures = CifParser.from_str(text, occupancy_tolerance=1.0).parse_structures(primitive=False)
        if not structures:
            raise ValueError("no structure in the block")
        return structures[0]

    s, reason = _quiet(parse)
    return (s, None) if s is not None else (None, f"unparseable CIF: {reason}")


def _cif_blocks(text: str) -> list[str]:
    """A CIF file cut at its data_ lines (one text per block)."""
    starts = [m.start() for m in re.finditer(r"(?im)^\s*data_", text)]
    if not starts:
        return [text]
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


def cif_entries(path: str, id_prefix: str, max_sites: int) -> Iterator[Entry]:
    for i, block in enumerate(_cif_blocks(read_text(path)), start=1):
        s, reason = parse_cif(block, max_sites)
        yield Entry(f"{id_prefix}#{i}", _short(block), s, reason)


def poscar_entries(path: str, id_prefix: str, max_sites: int) -> Iterator[Entry]:
    from pymatgen.io.vasp import Poscar  # noqa: PLC0415

    text = read_text(path)
    p, reason = _quiet(Poscar.from_str, text, read_velocities=False)
    yield Entry(f"{id_prefix}#1", _short(text), p.structure if p is not None else None,
                None if p is not None else f"unparseable POSCAR: {reason}")


def extxyz_entries(path: str, id_prefix: str, max_sites: int, props=()) -> Iterator[Entry]:
    from ase.io import read  # noqa: PLC0415
    from pymatgen.io.ase import AseAtomsAdaptor  # noqa: PLC0415

    read_text(path)  # existence and size
    frames, reason = _quiet(read, path, index=":", format="extxyz")
    if frames is None:
        yield Entry(f"{id_prefix}#1", _short(read_text(path)), None, f"unparseable extended XYZ: {reason}")
        return
    for i, atoms in enumerate(frames, start=1):
        values = {p.name: _text(atoms.info.get(p.column)) for p in props}
        raw = f"frame {i}: {atoms.get_chemical_formula()} {json.dumps(values)}"
        if not all(atoms.pbc) or atoms.cell.rank < 3:
            yield Entry(f"{id_prefix}#{i}", raw, None, "extended XYZ frame without a periodic 3-D cell", values)
            continue
        s, why = _quiet(AseAtomsAdaptor.get_structure, atoms)
        yield Entry(f"{id_prefix}#{i}", raw, s, None if s is not None else f"invalid frame: {why}", values)


def _text(v) -> str | None:
    return None if v is None else str(v)


def json_entries(path: str, id_prefix: str, max_sites: int) -> Iterator[Entry]:
    from pymatgen.core import Structure  # noqa: PLC0415

    text = read_text(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        yield Entry(f"{id_prefix}#1", _short(text), None, f"not JSON: {e}")
        return
    docs = doc if isinstance(doc, list) else [doc]
    for i, d in enumerate(docs, start=1):
        raw = _short(json.dumps(d)[:MAX_RAW_CHARS])
        if not isinstance(d, dict) or "lattice" not in d or "sites" not in d:
            yield Entry(f"{id_prefix}#{i}", raw, None, "not a pymatgen Structure dict (lattice, sites)")
            continue
        if isinstance(d["sites"], list) and len(d["sites"]) > max_sites:
            yield Entry(f"{id_prefix}#{i}", raw, None, f"too many sites: {len(d['sites'])} > {max_sites}")
            continue
        plain = {k: v for k, v in d.items() if not k.startswith("@")}
        s, reason = _quiet(Structure.from_dict, plain)
        yield Entry(f"{id_prefix}#{i}", raw, s, None if s is not None else f"invalid Structure dict: {reason}")


def table_entries(df, path: str, id_prefix: str, max_sites: int, cif_col: str, id_col: str | None,
                  props=(), start: int = 0) -> Iterator[Entry]:
    """Rows of a frame of strings holding a CIF per row, from row `start` (0-based)."""
    for i in range(start, df.height):
        row = df.row(i, named=True)
        ext = row[id_col] if id_col and row[id_col] else f"{id_prefix}#{i + 1}"
        values = {p.name: row[p.column] for p in props}
        text = row[cif_col]
        if text is None or not str(text).strip():
            yield Entry(ext, json.dumps(values), None, f"empty {cif_col!r} column", values)
            continue
        s, reason = parse_cif(str(text), max_sites)
        yield Entry(ext, _short(str(text)), s, reason, values)


def mgmno_entries(path: str, id_prefix: str, max_sites: int) -> Iterator[Entry]:
    """The crystal GAN's images; ids from mgmno_names.txt beside the file ('<row>:<name>')."""
    from .image import decode  # noqa: PLC0415

    p = Path(path)
    try:
        images = np.load(p, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise SourceError(f"cannot read {p} as a numpy array: {e}") from e
    if images.ndim != 3 or images.shape[1:] != (30, 3):
        raise SourceError(f"{p}: shape {images.shape}, expected (N, 30, 3) crystal GAN images")
    names_file = p.with_name(p.name.replace("_structures.npy", "_names.txt"))
    names = read_text(names_file).splitlines() if names_file.is_file() else []
    for i in range(images.shape[0]):
        name = names[i].strip() if i < len(names) else ""
        ext = f"{i}:{name}" if name else f"{id_prefix}#{i + 1}"
        img = np.array(images[i])
        try:
            s, reason = decode(img), None
        except ValueError as e:
            s, reason = None, f"invalid image: {e}"
        yield Entry(ext, json.dumps(np.round(img, 6).tolist()), s, reason)

"""Crystal structures in the store (issue 26): the `structures` table and its Python API.

Modules: store (pymatgen Structures <-> rows: write_structures, read_structures, structures_frame,
to_structure; the stable API, see its docstring), symmetry (space group, prototype label,
fingerprint through spglib), checks (what makes a structure storable: one reason per reject).

    from matstore.structures import write_structures, read_structures
    ids = write_structures(store, [s1, s2], "relaxed", "chgnet-0.4.2", parents=[p1, p2], run_id=7)
    s1_again, = read_structures(store, ids[:1])
"""

from __future__ import annotations

from .checks import Limits, check
from .store import (ORIGINS, StructureError, read_structures, structure_id, structure_rows,
                    structures_frame, to_structure, write_rows, write_structures)
from .symmetry import DEFAULT_SYMPREC, Symmetry, analyse

__all__ = ["DEFAULT_SYMPREC", "Limits", "ORIGINS", "StructureError", "Symmetry", "analyse", "check",
           "read_structures", "structure_id", "structure_rows", "structures_frame", "to_structure",
           "write_rows", "write_structures"]

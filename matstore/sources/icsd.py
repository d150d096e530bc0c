"""`icsd`: a user-supplied ICSD export (licensed, so never shipped): formulas, optional properties."""

from __future__ import annotations

from .csv import TableSource, open_table

# Column names seen in ICSD web/desktop exports.
FORMULA_COLUMNS = ("formula", "StructuredFormula", "SumFormula", "sum_formula", "chemical_formula",
                   "structured_formula")
ID_COLUMNS = ("CollectionCode", "collection_code", "icsd_id", "coll_code", "id")


def open_icsd(file=None, formula_col=None, id_col=None, props=None, limit=None) -> TableSource:
    return open_table("icsd", file, formula_col=formula_col, id_col=id_col, props=props, limit=limit,
                      formula_candidates=FORMULA_COLUMNS, id_candidates=ID_COLUMNS)

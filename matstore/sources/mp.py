"""`mp`: Materials Project through mp-api when MP_API_KEY is set, else a downloaded --file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Iterator

import polars as pl

from . import UNITS, Chunk, PropSpec, Source, SourceError
from .csv import open_table

FORMULA_COLUMNS = ("formula_pretty", "pretty_formula", "formula", "composition_reduced", "composition")
ID_COLUMNS = ("material_id", "mp_id", "mpid", "task_id")
API_FIELDS = ("material_id", "formula_pretty", "formation_energy_per_atom", "band_gap",
              "energy_above_hull")


@dataclass
class MpApiSource(Source):
    """All of MP's summary documents (or the first `limit`), in pages of page_size."""

    limit: int | None = None
    page_size: int = 10_000

    def chunks(self, cursor: str | None = None) -> Iterator[Chunk]:
        try:
            from mp_api.client import MPRester  # optional dependency: pip install matstore[mp]
        except ImportError as e:
            raise SourceError("source mp without --file needs mp-api: pip install 'matstore[mp]'") from e
        with MPRester(os.environ["MP_API_KEY"]) as mpr:
            docs = mpr.materials.summary.search(fields=list(API_FIELDS),
                                                num_chunks=None if self.limit is None else
                                                max(1, -(-self.limit // self.page_size)),
                                                chunk_size=self.page_size)
        rows = [d.model_dump() if hasattr(d, "model_dump") else dict(d) for d in docs]
        if self.limit is not None:
            rows = rows[: self.limit]
        start = int(cursor) if cursor else 0
        for lo in range(start, len(rows), self.page_size):
            page = rows[lo: lo + self.page_size]
            frame = pl.DataFrame({
                "external_id": [str(r["material_id"]) for r in page],
                "formula": [r.get("formula_pretty") for r in page],
                "raw": [json.dumps({k: r.get(k) for k in API_FIELDS}, default=str) for r in page],
                **{f"raw:{k}": [None if r.get(k) is None else str(r[k]) for r in page]
                   for k in API_FIELDS[2:]},
            }, schema_overrides={f"raw:{k}": pl.String for k in API_FIELDS[2:]})
            hi = lo + len(page)
            yield Chunk(frame, str(hi) if hi < len(rows) else None)


def open_mp(file=None, formula_col=None, id_col=None, props=None, limit=None, page_size=None) -> Source:
    if file:
        return open_table("mp", file, formula_col=formula_col, id_col=id_col, props=props, limit=limit,
                          formula_candidates=FORMULA_COLUMNS, id_candidates=ID_COLUMNS)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise SourceError(f"mp: --limit must be a positive number of rows, got {limit!r}")
    if not os.environ.get("MP_API_KEY"):
        raise SourceError("source mp needs MP_API_KEY in the environment (Materials Project API key) "
                          "or --file with a downloaded CSV/JSON")
    if props:
        raise SourceError("--prop applies to --file; from the API matstore stores "
                          + ", ".join(API_FIELDS[2:]))
    return MpApiSource(name="mp", uri="https://api.materialsproject.org/materials/summary",
                       params={"limit": limit, "fields": list(API_FIELDS)},
                       units={k: UNITS[k] for k in API_FIELDS[2:]}, total=limit, limit=limit,
                       page_size=page_size or 10_000)


__all__ = ["open_mp", "MpApiSource", "PropSpec"]

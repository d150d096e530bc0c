"""The MatGAN curation rules, as polars operations that report how many rows each removed.

Rules apply in this order (RULES), each to the rows the previous ones kept:

1. ``exclude_elements``  drop compositions containing any of the given elements (e.g. He, Kr);
2. ``matgan_elements``   drop compositions with an element outside the 85-element MatGAN table or
                         any element count above 8 in the reduced integer formula (the 8x85
                         one-hot cannot encode them);
3. ``single_element``    drop compositions of one element (the elements themselves);
4. ``fe_outliers``       drop rows whose formation energy lies outside mean +- k*sigma (k = 5 in
                         the papers; sample std, ddof=1) of the rows still kept that have one;
5. ``lowest_fe``         keep one row per composition: the lowest formation energy (ties: the
                         smaller external_id); rows without a formation energy are kept.

1-3 look at one row at a time ("row rules"), 4-5 at the whole set ("set rules"). Rows without a
formation energy are never removed by 4 or 5. Given a `dropped` list, each rule appends the rows
it removed with a `rule` column (matstore.ingest keeps them in the `curated` table).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import polars as pl

from .compositions import Z_OF
from .elements85 import ELEMENTS_85, MAX_COUNT
from .errors import MatstoreError

FE = "formation_energy_per_atom"
FE_PHYSICAL_MAX = 5.0   # eV/atom: |FE| above it is flagged (sql/physical_outliers.sql says the same)
ROW_RULES = ("exclude_elements", "matgan_elements", "single_element")
SET_RULES = ("fe_outliers", "lowest_fe")
RULES = ROW_RULES + SET_RULES


class CurationError(MatstoreError, ValueError):
    pass


@dataclass(frozen=True)
class Curation:
    exclude_elements: tuple[str, ...] = ()
    matgan_elements: bool = False
    single_element: bool = False
    fe_sigma: float | None = None    # rule 4 on when set (5.0 in the papers)
    lowest_fe: bool = False

    def __post_init__(self):
        bad = [e for e in self.exclude_elements if e not in Z_OF]
        if bad:
            raise CurationError(f"--exclude-elements: unknown element(s) {', '.join(bad)}")
        if self.fe_sigma is not None and not self.fe_sigma > 0:
            raise CurationError(f"--fe-sigma must be positive, got {self.fe_sigma}")

    @classmethod
    def matgan(cls, exclude_elements=()) -> "Curation":
        """Every rule, as in the MatGAN papers."""
        return cls(tuple(exclude_elements), True, True, 5.0, True)

    @classmethod
    def parse_elements(cls, text: str | None) -> tuple[str, ...]:
        return tuple(s.strip() for s in (text or "").replace(" ", ",").split(",") if s.strip())

    def as_dict(self) -> dict:
        d = asdict(self)
        d["exclude_elements"] = list(self.exclude_elements)
        return d

    @property
    def has_set_rules(self) -> bool:
        return self.fe_sigma is not None or self.lowest_fe


def apply_row_rules(df: pl.DataFrame, cur: Curation,
                    dropped: list[pl.DataFrame] | None = None) -> tuple[pl.DataFrame, dict[str, int]]:
    """Rules 1-3 on a frame with `elements` (list[str]) and `counts` (list[int]) columns."""
    removed: dict[str, int] = {}
    if cur.exclude_elements:
        keep = ~pl.col("elements").list.eval(pl.element().is_in(list(cur.exclude_elements))).list.any()
        df, removed["exclude_elements"] = _filter(df, keep, "exclude_elements", dropped)
    if cur.matgan_elements:
        keep = (pl.col("elements").list.eval(pl.element().is_in(list(ELEMENTS_85))).list.all()
                & (pl.col("counts").list.max() <= MAX_COUNT))
        df, removed["matgan_elements"] = _filter(df, keep, "matgan_elements", dropped)
    if cur.single_element:
        df, removed["single_element"] = _filter(df, pl.col("elements").list.len() > 1, "single_element",
                                                dropped)
    return df, removed


def apply_set_rules(df: pl.DataFrame, cur: Curation,
                    dropped: list[pl.DataFrame] | None = None) -> tuple[pl.DataFrame, dict[str, int]]:
    """Rules 4-5 on a frame with composition_id, external_id and formation_energy_per_atom."""
    removed: dict[str, int] = {}
    if not cur.has_set_rules:
        return df, removed
    if FE not in df.columns:
        df = df.with_columns(pl.lit(None, pl.Float64).alias(FE))
    if cur.fe_sigma is not None:
        fe = df[FE].drop_nulls()
        if fe.len() >= 2:
            mean, std = fe.mean(), fe.std(ddof=1)
            lo, hi = mean - cur.fe_sigma * std, mean + cur.fe_sigma * std
            df, removed["fe_outliers"] = _filter(df, pl.col(FE).is_null() | pl.col(FE).is_between(lo, hi),
                                                 "fe_outliers", dropped)
        else:
            removed["fe_outliers"] = 0
    if cur.lowest_fe:
        with_fe = df.filter(pl.col(FE).is_not_null())
        best = (with_fe.sort([FE, "external_id"])
                .unique(subset="composition_id", keep="first", maintain_order=True))
        survivors = best["external_id"].implode()
        df, removed["lowest_fe"] = _filter(df, pl.col(FE).is_null() | pl.col("external_id").is_in(survivors),
                                           "lowest_fe", dropped)
    return df, removed


def _filter(df: pl.DataFrame, keep: pl.Expr, rule: str,
            dropped: list[pl.DataFrame] | None) -> tuple[pl.DataFrame, int]:
    kept = df.filter(keep)
    if dropped is not None and kept.height < df.height:
        dropped.append(df.filter(~keep.fill_null(False)).with_columns(pl.lit(rule).alias("rule")))
    return kept, df.height - kept.height


def physical_outliers(store, ingest_id: int) -> tuple[int, str | None]:
    """(rows of an ingest whose |formation energy| > FE_PHYSICAL_MAX eV/atom, the most extreme one
    as 'formula value'); they are kept, flagged in view physical_outliers."""
    got = store.query(f"SELECT count(*) AS n, arg_max(c.formula || ' ' || printf('%.1f', p.value), abs(p.value)) AS worst "
                      f"FROM properties p JOIN materials m USING (material_id) JOIN compositions c "
                      f"ON c.composition_id = p.composition_id WHERE m.ingest_id = ? AND p.name = ? "
                      f"AND abs(p.value) > {FE_PHYSICAL_MAX}", [ingest_id, FE])
    return int(got["n"][0]), got["worst"][0]

"""Turning a source's raw rows into store rows: formulas parsed once each, rejects with their
reason, curation's row rules, in-chunk duplicates, deterministic material ids."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl

from .. import compositions
from ..curation import Curation, apply_row_rules


def material_ids(source: str, external_ids: list[str]) -> list[int]:
    """Deterministic signed 64-bit ids of (source, external_id)."""
    prefix = source.encode() + b"\x1f"
    return [int.from_bytes(hashlib.blake2b(prefix + e.encode(), digest_size=8).digest(),
                           "little", signed=True) for e in external_ids]


@dataclass
class Prepared:
    rows: pl.DataFrame        # material_id, external_id, composition_id, raw_formula, canonical, elements,
                              # counts, <props>, raw[, legacy_id]; compositions rows: composition_rows
    rejects: pl.DataFrame     # row_ref, raw, reason
    seen: int
    curated: dict[str, int]
    in_chunk_duplicates: int
    curated_rows: pl.DataFrame | None = None  # row_ref, raw, rule: what the row rules removed


def _parse_formulas(formulas: pl.Series) -> pl.DataFrame:
    """Distinct formula strings -> composition columns (null id + reason where unparseable),
    parsed a column at a time (compositions.parse_formulas: parse()'s answers)."""
    uniq = formulas.drop_nulls().unique()
    col = compositions.parse_formulas(uniq)
    ok = pl.from_arrow(col.rows()).select(
        uniq.filter(pl.Series(col.ok)).cast(pl.String).alias("formula"), "composition_id",
        pl.col("formula").alias("canonical"), "elements", "counts",
        pl.lit(None, pl.String).alias("reason"))
    bad = pl.DataFrame({"formula": uniq.filter(pl.Series(~col.ok)).cast(pl.String),
                        "reason": [r for r in col.reason if r is not None]},
                       schema={"formula": pl.String, "reason": pl.String})
    return pl.concat([ok, bad], how="diagonal")


def prepare(raw: pl.DataFrame, source: str, props: list[str], cur: Curation) -> Prepared:
    """Parse, check, row-curate and dedupe one chunk of raw rows (no store access)."""
    seen = raw.height
    missing = [f"raw:{p}" for p in props if f"raw:{p}" not in raw.columns]
    raw = raw.with_columns(pl.lit(None, pl.String).alias(c) for c in missing)
    parsed = _parse_formulas(raw["formula"])
    df = raw.with_row_index("_i").join(parsed, on="formula", how="left").sort("_i")
    reason = (pl.when(pl.col("formula").is_null() | (pl.col("formula").str.strip_chars() == ""))
              .then(pl.lit("empty formula"))
              .when(pl.col("reason").is_not_null()).then(pl.lit("formula: ") + pl.col("reason"))
              .when(pl.col("external_id").is_null() | (pl.col("external_id") == ""))
              .then(pl.lit("no external id")))
    casts = []
    for p in props:
        col = f"raw:{p}"
        value = pl.col(col).str.strip_chars().cast(pl.Float64, strict=False)
        given = pl.col(col).is_not_null() & (pl.col(col).str.strip_chars() != "")
        reason = (reason.when(given & value.is_null()).then(pl.lit(f"{p}: not a number: ") + pl.col(col))
                  .when(given & ~value.is_finite())  # inf, nan, 1e999: poison every mean and model
                  .then(pl.lit(f"{p}: not a finite number: ") + pl.col(col)))
        casts.append(value.alias(p))
    df = df.with_columns(reason.alias("_reason"), *casts)
    rejects = df.filter(pl.col("_reason").is_not_null()).select(
        pl.col("external_id").fill_null("").alias("row_ref"), "raw", pl.col("_reason").alias("reason"))
    good = df.filter(pl.col("_reason").is_null())
    good = good.with_columns(pl.Series("material_id", material_ids(source, good["external_id"].to_list()),
                                       dtype=pl.Int64))
    n = good.height
    good = good.unique(subset="material_id", keep="first", maintain_order=True)
    dups = n - good.height
    dropped: list[pl.DataFrame] = []
    good, curated = apply_row_rules(good, cur, dropped)
    extra = [c for c in ("legacy_id",) if c in good.columns]
    rows = good.select("material_id", "external_id", "composition_id",
                       pl.col("formula").alias("raw_formula"), "canonical", "elements", "counts", *props,
                       "raw", *extra)
    return Prepared(rows, rejects, seen, curated, dups, curated_table(dropped))


def curated_table(dropped: list[pl.DataFrame]) -> pl.DataFrame:
    """Frames a curation rule removed -> the `curated` table's row_ref, raw, rule."""
    cols = [pl.col("external_id").cast(pl.String).alias("row_ref"), pl.col("raw").cast(pl.String),
            pl.col("rule").cast(pl.String)]
    if not dropped:
        return pl.DataFrame(schema={"row_ref": pl.String, "raw": pl.String, "rule": pl.String})
    return pl.concat([d.select(cols) for d in dropped])


def composition_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """compositions-table rows of prepared rows (one per row; n_atoms summed as 64-bit)."""
    return rows.select("composition_id", pl.col("canonical").alias("formula"), "elements", "counts",
                       pl.col("elements").list.len().cast(pl.Int32).alias("n_elements"),
                       pl.col("counts").cast(pl.List(pl.Int64)).list.sum().alias("n_atoms"))

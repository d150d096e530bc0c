"""Labels: written both as the campaign's record (al_labels) and as properties of their own
source, the way ingests write them (sources row, ingests row, materials, properties), so
composition_properties_by_source shows them under that source and nothing mixes them with the
base data silently. One transaction per batch of labels; re-writing a stored label is a no-op.

A label source holds active-learning labels only: a source that holds ingested data, or the
campaign's base source, is refused. Model-oracle labels go to source ``al<ID>-oracle`` of kind
``model`` (method: the oracle's model version); external labels to the source the user names.

Label files (``matstore al label FILE``): CSV or Parquet with columns ``proposal_id`` and
``value`` (optionally ``formula``, checked against the proposal's, and ``campaign_id``/``round_no``
as `al export` writes them). Everything is checked before anything is written.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import polars as pl

from ..ingest.prepare import material_ids
from ..sources import UNITS, check_kind
from ..store import Store, append, frame, next_id
from .campaigns import Campaign, close_round, open_round, unlabelled
from .errors import ALError

_SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
MAX_ABS_LABEL = 1e4   # eV, eV/atom: a value beyond this is a typo or an attack, not a property
LABEL_URI = "al:campaign/{cid}"            # ingests.uri of label batches (marks them as labels)
FILE_COLUMNS = {"proposal_id", "value"}
OPTIONAL_COLUMNS = {"formula", "campaign_id", "round_no", "composition_id"}


def oracle_source(campaign_id: int) -> str:
    return f"al{int(campaign_id)}-oracle"


def check_source(name: str) -> str:
    if not isinstance(name, str) or not _SOURCE_NAME.match(name):
        raise ALError(f"label source {name!r}: expected a short identifier (a-z first, then a-z, "
                      f"0-9, _ or -, at most 32 characters), e.g. vasp_pbe")
    return name


def _register_source(con, campaign: Campaign, name: str, kind: str, method: str | None,
                     description: str) -> None:
    if name == campaign.base_source:
        raise ALError(f"label source {name!r} is the campaign's base source: labels never mix with "
                      f"the base data; name another source")
    from ..sources import KNOWN_SOURCES  # noqa: PLC0415

    if name in KNOWN_SOURCES:   # a later real ingest of that source would mix with the labels
        raise ALError(f"label source {name!r} is the name of a data source matstore ingests "
                      f"({', '.join(sorted(KNOWN_SOURCES))}); name another source, e.g. vasp_pbe")
    other = con.execute("SELECT count(*) FROM ingests WHERE source = ? AND uri NOT LIKE 'al:%'",
                        [name]).fetchall()[0][0]
    if other:
        raise ALError(f"label source {name!r} holds ingested data ({other} ingest(s)): labels never "
                      f"mix with other data; name another source")
    row = con.execute("SELECT kind, method FROM sources WHERE name = ?", [name]).fetchall()
    if row:
        if (row[0][0], row[0][1]) != (kind, method):
            raise ALError(f"label source {name!r} is recorded as {row[0][0]}"
                          f"{' (' + row[0][1] + ')' if row[0][1] else ''}, not {kind}"
                          f"{' (' + method + ')' if method else ''}; name another source")
        return
    con.execute("INSERT INTO sources (name, kind, method, description) VALUES (?, ?, ?, ?)",
                [name, kind, method, description])


def write(store: Store, campaign: Campaign, proposal_ids, values, *, source: str, kind: str,
          method: str | None = None, model_id: int | None = None, origin: str = "") -> int:
    """Store labels of proposals (one transaction); returns how many were new. A proposal that
    already has this value from this source is skipped; any other value or source is refused."""
    check_source(source)
    ids = np.asarray(proposal_ids, np.int64)
    vals = np.asarray(values, np.float64)
    if len(ids) != len(vals):
        raise ALError(f"{len(ids)} proposal ids but {len(vals)} values")
    if len(ids) == 0:
        return 0
    bad = ids[~np.isfinite(vals)]
    if len(bad):
        raise ALError(f"label values must be finite numbers; proposal(s) {_few(bad)} are not")
    huge = ids[np.abs(vals) > MAX_ABS_LABEL]
    if len(huge):   # one absurd label would blow the GP's scale up for the rest of the campaign
        raise ALError(f"label values beyond ±{MAX_ABS_LABEL:g} are no property values; proposal(s) "
                      f"{_few(huge)}; nothing was stored")
    now = dt.datetime.now()
    with store.transaction() as con:
        con.register("_al_new", pl.DataFrame({"proposal_id": ids, "value": vals}).to_arrow())
        try:
            got = frame(con, "SELECT n.proposal_id, n.value, p.campaign_id, p.round_no, p.composition_id, "
                             "p.formula, l.value AS old_value, l.source AS old_source "
                             "FROM _al_new n LEFT JOIN al_proposals p USING (proposal_id) "
                             "LEFT JOIN al_labels l USING (proposal_id)")
        finally:
            con.unregister("_al_new")
        foreign = got.filter(pl.col("campaign_id").is_null() | (pl.col("campaign_id") != campaign.campaign_id))
        if foreign.height:
            raise ALError(f"proposal id(s) {_few(foreign['proposal_id'])} are not proposals of campaign "
                          f"{campaign.campaign_id}; nothing was stored")
        undecoded = got.filter(pl.col("composition_id").is_null())
        if undecoded.height:
            raise ALError(f"proposal(s) {_few(undecoded['proposal_id'])} do not decode to a composition "
                          f"and cannot be labelled; nothing was stored")
        old = got.filter(pl.col("old_value").is_not_null())
        clash = old.filter((pl.col("old_source") != source) | (pl.col("old_value") != pl.col("value")))
        if clash.height:
            r = clash.row(0, named=True)
            raise ALError(f"proposal(s) {_few(clash['proposal_id'])} already have a label (e.g. "
                          f"{r['proposal_id']}: {r['old_value']} from {r['old_source']}); labels are "
                          f"never overwritten; nothing was stored")
        new = got.filter(pl.col("old_value").is_null())
        if new.height == 0:
            return 0
        _register_source(con, campaign, source, kind, method,
                         f"active-learning labels of campaign {campaign.campaign_id} ({origin or source})")
        ingest_id = next_id(con, "ingests", "ingest_id")
        con.execute("INSERT INTO ingests (ingest_id, source, uri, params, status, started_at, finished_at, "
                    "rows_seen, rows_kept, curation) VALUES (?, ?, ?, ?, 'done', ?, ?, ?, ?, '{}')",
                    [ingest_id, source, LABEL_URI.format(cid=campaign.campaign_id),
                     json.dumps({"campaign_id": campaign.campaign_id, "origin": origin,
                                 "model_id": model_id, "property": campaign.property}),
                     now, now, new.height, new.height])
        ext = [f"al{campaign.campaign_id}-p{int(p)}" for p in new["proposal_id"]]
        mids = np.asarray(material_ids(source, ext), np.int64)
        comp = new["composition_id"].to_numpy()
        append(con, "materials", pl.DataFrame({
            "material_id": mids, "ingest_id": pl.Series([ingest_id] * new.height, dtype=pl.Int32),
            "source": source, "external_id": ext, "composition_id": comp, "raw_formula": new["formula"]}))
        append(con, "properties", pl.DataFrame({
            "material_id": mids, "composition_id": comp, "name": campaign.property,
            "value": new["value"], "unit": UNITS.get(campaign.property)}))
        append(con, "al_labels", pl.DataFrame({
            "proposal_id": new["proposal_id"], "campaign_id": pl.Series([campaign.campaign_id] * new.height,
                                                                          dtype=pl.Int32),
            "composition_id": comp, "value": new["value"], "source": source,
            "model_id": pl.Series([model_id] * new.height, dtype=pl.Int32), "material_id": mids,
            "labelled_at": now}))
        _close_if_done(con, campaign.campaign_id)
    return new.height


def _close_if_done(con, campaign_id: int) -> None:
    r = open_round(con, campaign_id)
    if r is not None and unlabelled(con, campaign_id, r).height == 0:
        close_round(con, campaign_id, r)


def _few(ids, n: int = 5) -> str:
    ids = [str(int(i)) for i in list(ids)]
    return ", ".join(ids[:n]) + (f" (+{len(ids) - n} more)" if len(ids) > n else "")


# --- external oracle: export and label files ----------------------------------------------------

def export(store: Store, campaign: Campaign, path: str | Path, round_no: int | None = None,
           overwrite: bool = False) -> int:
    """Write the round's decodable, unlabelled proposals (default: the open round) to CSV or
    Parquet (by extension) with an empty value column to fill in; returns the rows written.
    An existing file is replaced only with ``overwrite`` and never when it is (or links to) the
    store or one of its side files; the file appears whole (written aside, then renamed)."""
    p = Path(path)
    if p.suffix.lower() not in (".csv", ".parquet"):
        raise ALError(f"export file {str(p)!r}: name it .csv or .parquet")
    target = p.resolve()
    store_file = Path(store.path).resolve()
    if target == store_file or target.name.startswith(store_file.name + "."):
        raise ALError(f"export file {str(p)!r} is the store {store.path} (or one of its files)")
    if p.exists() or p.is_symlink():
        if not overwrite or p.is_symlink() or not p.is_file():
            raise ALError(f"export file {str(p)!r} exists{' (a link)' if p.is_symlink() else ''}; "
                          f"choose another name{'' if p.is_symlink() else ' or pass --overwrite'}")
    with store.connect() as con:
        r = round_no if round_no is not None else open_round(con, campaign.campaign_id)
        if r is None:
            raise ALError(f"campaign {campaign.campaign_id} has no round awaiting labels "
                          f"(run `matstore al step` first)")
        known = con.execute("SELECT count(*) FROM al_rounds WHERE campaign_id = ? AND round_no = ?",
                            [campaign.campaign_id, int(r)]).fetchall()[0][0]
        if not known:
            raise ALError(f"campaign {campaign.campaign_id} has no round {r}")
        df = unlabelled(con, campaign.campaign_id, int(r))
    out = df.select(pl.col("proposal_id"), pl.lit(campaign.campaign_id).alias("campaign_id"),
                    pl.lit(int(r)).alias("round_no"), "composition_id", "formula",
                    pl.lit(None, pl.Float64).alias("value"))
    tmp = p.with_name(p.name + ".partial")
    if p.suffix.lower() == ".parquet":
        out.write_parquet(tmp)
    else:
        out.write_csv(tmp)
    tmp.replace(p)
    return out.height


def read_file(path: str | Path) -> pl.DataFrame:
    """A label file as (proposal_id Int64, value Float64[, formula]); refuses what it cannot use."""
    p = Path(path)
    if not p.is_file():
        raise ALError(f"label file {str(p)!r} does not exist")
    try:
        if p.suffix.lower() == ".parquet":   # as text, like a CSV: 22.7 is no id, true no value
            df = pl.read_parquet(p)
            df = df.select(pl.col(c).cast(pl.String) for c in df.columns)
        elif p.suffix.lower() == ".csv":
            df = pl.read_csv(p, infer_schema=False)     # all text: parsed and checked below
        else:
            raise ALError(f"label file {str(p)!r}: expected .csv or .parquet")
    except ALError:
        raise
    except Exception as e:  # noqa: BLE001 (polars raises many kinds on a malformed file)
        raise ALError(f"label file {str(p)!r} cannot be read: {e}") from None
    cols = set(df.columns)
    missing, extra = FILE_COLUMNS - cols, cols - FILE_COLUMNS - OPTIONAL_COLUMNS
    if missing or extra:
        raise ALError(f"label file {str(p)!r}: "
                      + "; ".join(filter(None, [f"missing column(s) {sorted(missing)}" if missing else "",
                                                f"unknown column(s) {sorted(extra)}" if extra else ""]))
                      + f" (expected {sorted(FILE_COLUMNS)}, optionally {sorted(OPTIONAL_COLUMNS)})")
    df = df.filter(pl.col("value").is_not_null() & (pl.col("value").cast(pl.String).str.strip_chars() != ""))
    ids = df["proposal_id"].cast(pl.Int64, strict=False)
    if ids.null_count():
        bad = df.filter(ids.is_null())["proposal_id"].to_list()[:5]
        raise ALError(f"label file {str(p)!r}: proposal_id must be integers, got {bad}")
    vals = df["value"].cast(pl.Float64, strict=False)
    if vals.null_count():
        bad = df.filter(vals.is_null())["value"].to_list()[:5]
        raise ALError(f"label file {str(p)!r}: value must be numbers, got {bad}")
    out = pl.DataFrame({"proposal_id": ids, "value": vals})
    nonfinite = out.filter(~pl.col("value").is_finite())
    if nonfinite.height:
        raise ALError(f"label file {str(p)!r}: value must be finite; proposal(s) "
                      f"{_few(nonfinite['proposal_id'])} are {nonfinite['value'].to_list()[:5]}")
    dup = out.filter(pl.col("proposal_id").is_duplicated())["proposal_id"].unique()
    if len(dup):
        raise ALError(f"label file {str(p)!r}: proposal(s) {_few(dup)} appear more than once")
    if "formula" in df.columns:
        out = out.with_columns(df["formula"].cast(pl.String).alias("formula"))
    return out


def ingest_file(store: Store, campaign: Campaign, path: str | Path, source: str,
                kind: str | None = None, method: str | None = None) -> int:
    """Read a label file and store its labels under `source` (kind dft / experiment, default
    unknown). A formula column, where given, must match each proposal's formula."""
    check_source(source)
    kind, method = check_kind(kind, method)
    df = read_file(path)
    if df.height == 0:
        raise ALError(f"label file {str(path)!r} holds no values")
    if "formula" in df.columns:
        with store.connect() as con:
            con.register("_al_f", df.select("proposal_id", "formula").to_arrow())
            try:
                wrong = frame(con, "SELECT f.proposal_id, f.formula, p.formula AS proposed FROM _al_f f "
                                   "JOIN al_proposals p USING (proposal_id) "
                                   "WHERE f.formula IS DISTINCT FROM p.formula")
            finally:
                con.unregister("_al_f")
        if wrong.height:
            r = wrong.row(0, named=True)
            raise ALError(f"label file {str(path)!r}: formula does not match the proposal for "
                          f"proposal(s) {_few(wrong['proposal_id'])} (e.g. {r['proposal_id']}: file "
                          f"{r['formula']!r}, proposed {r['proposed']!r}); nothing was stored")
    return write(store, campaign, df["proposal_id"].to_numpy(), df["value"].to_numpy(), source=source,
                 kind=kind or "unknown", method=method, origin=f"file {Path(path).name}")


def training_labels(con, campaign_id: int) -> pl.DataFrame:
    """The campaign's labels (composition_id, value, source), in proposal order."""
    return frame(con, "SELECT composition_id, value, source FROM al_labels WHERE campaign_id = ? "
                      "ORDER BY proposal_id", [campaign_id])

"""Source adapters: each turns one origin of materials data into chunks of raw rows.

A chunk is a polars frame with `external_id`, `formula`, `raw` (the row as read, kept for
rejects) and one Float64 column per property (named by property name: formation_energy_per_atom,
band_gap, ...), plus `cursor`: the resume point to store once the chunk is committed. Adapters
know nothing about the store; matstore.ingest does parsing, curation and writing.

Opening a source (constructing it) reads enough to fail early and clearly on an unreadable
file, before any ingest is recorded.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import polars as pl

from ..errors import MatstoreError
from ..plugins import Registry

# Property names the store knows, with their units; a file's columns map onto these.
UNITS = {
    "formation_energy_per_atom": "eV/atom",
    "band_gap": "eV",
    "energy_above_hull": "eV/atom",
}
# Column names that mean a known property without being told (lower-cased).
COLUMN_ALIASES = {
    "formation_energy_per_atom": "formation_energy_per_atom",
    "delta_e": "formation_energy_per_atom",
    "e_form": "formation_energy_per_atom",
    "band_gap": "band_gap",
    "bandgap": "band_gap",
    "gap": "band_gap",
    "energy_above_hull": "energy_above_hull",
    "e_above_hull": "energy_above_hull",
    "stability": "energy_above_hull",
}
CHUNK_ROWS = 50_000

# The one list of sources `matstore ingest` can read, with what their property values are (the
# `sources` table): DFT (with its level of theory), experiment, or unknown. A table file names
# its own (--source-name, --kind, --method) and is 'csv' / unknown when it does not. Same rows as
# the property_sources migration seeds. The opener ("module:attribute" in this package) is
# imported only when the source is opened: mp-api etc. are optional.
@dataclass(frozen=True)
class SourceKind:
    opener: str
    kind: str
    method: str | None
    description: str


SOURCES: dict[str, SourceKind] = {
    "oqmd": SourceKind("oqmd:open_oqmd", "dft", "PBE",
                       "Open Quantum Materials Database: DFT (GGA-PBE, +U where applied)"),
    "mp": SourceKind("mp:open_mp", "dft", "PBE",
                     "Materials Project: DFT (GGA-PBE, +U where applied)"),
    "icsd": SourceKind("icsd:open_icsd", "experiment", None,
                       "ICSD: experimentally determined structures (no properties as a rule)"),
    "csv": SourceKind("csv:CsvSource.open", "unknown", None,
                      "a table file ingested without --source-name / --kind"),
    "builtin": SourceKind("builtin:BuiltinSource.open", "experiment", None,
                          "pymatgen exp_compounds experimental formation enthalpies; "
                          "matminer MP formulas (no properties)"),
    "structures": SourceKind("structure_files:open_structures", "unknown", None,
                             "a crystal-structure file (CIF, POSCAR, extended XYZ, pymatgen JSON, a table "
                             "with a CIF column, crystal GAN images) ingested without --source-name / --kind"),
    "optimade": SourceKind("optimade:open_optimade", "unknown", None,
                           "an OPTIMADE database's structures (--url), ingested without --source-name"),
}
KNOWN_SOURCES = {name: (s.kind, s.method, s.description) for name, s in SOURCES.items()}
_SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class SourceError(MatstoreError, ValueError):
    """A source that cannot be read or used as asked; the message names it and says why."""


# the same sources in the one registry shape of the plug-in kinds (matstore.plugins)
SOURCES = Registry("source", SOURCES.items(), error=SourceError,
                   unknown="unknown source {name!r}; expected one of {choices}")


@dataclass(frozen=True)
class PropSpec:
    """`--prop name=column[:unit]`: which column holds which property."""

    name: str
    column: str
    unit: str | None

    @classmethod
    def parse(cls, text: str) -> "PropSpec":
        name, sep, rest = text.partition("=")
        if not sep or not name.strip() or not rest.strip():
            raise SourceError(f"--prop {text!r}: expected name=column[:unit], "
                              f"e.g. formation_energy_per_atom=target:eV/atom")
        column, _, unit = rest.partition(":")
        name = name.strip()
        return cls(name, column.strip(), unit.strip() or UNITS.get(name))


@dataclass
class Chunk:
    rows: pl.DataFrame          # external_id, formula, raw, <property columns>
    cursor: str | None          # resume point once this chunk is committed (None: finished)


@dataclass
class Source:
    """Base adapter. Subclasses set name/uri/params and implement chunks()."""

    name: str
    uri: str
    params: dict = field(default_factory=dict)
    units: dict[str, str | None] = field(default_factory=dict)  # property -> unit
    total: int | None = None    # rows expected, for the progress bar (None: unknown)
    paged: bool = False         # True: chunks arrive over time (API); curation runs at the end
    kind: str | None = None     # dft / experiment / unknown (None: as the store records this name)
    method: str | None = None   # level of theory (PBE, ...) where known

    def chunks(self, cursor: str | None = None) -> Iterator[Chunk]:
        raise NotImplementedError


def check_source_name(name: str) -> str:
    """A --source-name: a short lower-case identifier that is not one of the named sources."""
    if not isinstance(name, str) or not _SOURCE_NAME.match(name):
        raise SourceError(f"--source-name {name!r}: expected a short identifier (a-z first, then a-z, "
                          f"0-9, _ or -, at most 32 characters), e.g. expt_gaps")
    if name in KNOWN_SOURCES and name != "csv":
        raise SourceError(f"--source-name {name!r} is a named source; ingest its files with "
                          f"`matstore ingest {name} --file ...` or choose another name")
    return name


def check_kind(kind: str | None, method: str | None = None) -> tuple[str | None, str | None]:
    """--kind (dft or experiment) and --method (a short free-text level of theory, e.g. PBE)."""
    if kind is not None and kind not in ("dft", "experiment"):
        raise SourceError(f"--kind {kind!r}: expected dft or experiment")
    if method is not None:
        method = method.strip()
        if not method or len(method) > 64 or not method.isprintable():
            raise SourceError(f"--method {method!r}: expected a short level of theory, e.g. PBE or HSE06")
        if kind != "dft":
            raise SourceError("--method names a level of theory: it goes with --kind dft")
    return kind, method


# --- reading tabular files ---------------------------------------------------------------

def _looks_utf16(head: bytes) -> bool:
    """A byte-order mark, or text whose every other byte is zero (BOM-less UTF-16 of ASCII);
    not arbitrary binary that happens to hold a zero byte."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return True
    even, odd = head[0::2], head[1::2]
    return len(head) >= 4 and (odd.count(0) == len(odd) or even.count(0) == len(even)) and head.count(0) < len(head)


def read_table(path: str | Path) -> pl.DataFrame:
    """A CSV/TSV/Parquet/JSON file as a frame of strings (values are checked later, per row)."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"file {p} does not exist")
    if not p.is_file():
        raise SourceError(f"{p} is not a file")
    suffix = "".join(s for s in p.suffixes[-2:] if s != ".gz").lower() or p.suffix.lower()
    try:
        if suffix.endswith(".parquet") or suffix.endswith(".pq"):
            df = pl.read_parquet(p)
            return df.with_columns(pl.all().cast(pl.String))
        if suffix.endswith(".json") or suffix.endswith(".jsonl") or suffix.endswith(".ndjson"):
            return _read_json_rows(p)
        sep = "\t" if suffix.endswith(".tsv") else ","
        with open(p, "rb") as f:
            head = f.read(64)
        if _looks_utf16(head):
            raise SourceError(f"cannot read {p}: it is UTF-16 text (a spreadsheet's 'Unicode text' "
                              f"export); save it as UTF-8 CSV")
        df = pl.read_csv(p, infer_schema=False, separator=sep, truncate_ragged_lines=False)
    except SourceError:
        raise
    except Exception as e:  # polars/arrow raise many kinds; the user needs the file and reason
        raise SourceError(f"cannot read {p}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    if df.width == 0:
        raise SourceError(f"cannot read {p}: no columns")
    return df


def _read_json_rows(p: Path) -> pl.DataFrame:
    """JSON rows: a list of objects, an API page ({'data': [...]}), a list of pages, or JSON lines."""
    text = p.read_text()
    try:
        doc = json.loads(text)
        docs = doc if isinstance(doc, list) else [doc]
    except json.JSONDecodeError:
        try:
            docs = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise SourceError(f"cannot read {p}: not JSON ({e})") from e
    rows: list[dict] = []
    for d in docs:
        if isinstance(d, dict) and isinstance(d.get("data"), list):
            rows.extend(d["data"])
        elif isinstance(d, dict):
            rows.append(d)
        else:
            raise SourceError(f"cannot read {p}: expected JSON objects or API pages, found {type(d).__name__}")
    if not rows:
        raise SourceError(f"cannot read {p}: no rows")
    cols = list(dict.fromkeys(k for r in rows for k in r))
    return pl.DataFrame({c: [None if r.get(c) is None else str(r[c]) for r in rows] for c in cols},
                        schema={c: pl.String for c in cols})


def pick_column(df: pl.DataFrame, wanted: str | None, candidates: tuple[str, ...], what: str,
                path: str) -> str | None:
    """The column the user named, or the first candidate present (case-insensitive)."""
    if wanted:
        if wanted not in df.columns:
            raise SourceError(f"{path}: no column {wanted!r} for the {what} (columns: {', '.join(df.columns)})")
        return wanted
    lower = {c.lower(): c for c in df.columns}
    for c in candidates:
        if c.lower() in lower:
            return lower[c.lower()]
    return None


def resolve_props(df: pl.DataFrame, props: list[PropSpec], path: str,
                  formula_col: str, id_col: str | None) -> list[PropSpec]:
    """--prop mappings, or known property columns found by name when none are given."""
    if props:
        for p in props:
            if p.column not in df.columns:
                raise SourceError(f"{path}: --prop {p.name}={p.column}: no column {p.column!r} "
                                  f"(columns: {', '.join(df.columns)})")
        return props
    found = []
    for c in df.columns:
        name = COLUMN_ALIASES.get(c.lower())
        if name and c not in (formula_col, id_col) and name not in {p.name for p in found}:
            found.append(PropSpec(name, c, UNITS[name]))
    if "target" in df.columns and not found:
        raise SourceError(f"{path}: column 'target' could be any property; say which with e.g. "
                          f"--prop formation_energy_per_atom=target:eV/atom or --prop band_gap=target:eV")
    return found


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (read in blocks): what default row ids are made unique by."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror or e}") from e
    return h.hexdigest()


def default_id_prefix(sha256: str) -> str:
    """Rows of a file without an id column are '<first 16 hex of the file's sha256>#<row>': two
    files with one name never share ids, the same bytes always get the same ones."""
    return sha256[:16]


def table_chunks(df: pl.DataFrame, *, path: str, formula_col: str, id_col: str | None,
                 props: list[PropSpec], cursor: str | None,
                 chunk_rows: int = CHUNK_ROWS, id_prefix: str | None = None) -> Iterator[Chunk]:
    """Cut a frame of strings into chunks in the common shape; cursor = rows committed so far.
    Without id_col, rows are '<id_prefix>#<1-based data row>' (id_prefix: default_id_prefix of
    the file), with the pre-content-hash id '<file name>#<row>' in `legacy_id` so rows stored by
    an older matstore are recognised (matstore.ingest)."""
    start = int(cursor) if cursor else 0
    name = Path(path).name
    n = df.height
    for lo in range(start, n, chunk_rows):
        part = df.slice(lo, chunk_rows)
        legacy = None
        if id_col:
            ext = part[id_col].fill_null("").alias("external_id")
        else:  # no ids in the file: the file's content hash and 1-based data row number
            rows = range(lo + 1, lo + part.height + 1)
            ext = pl.Series("external_id", [f"{id_prefix or name}#{i}" for i in rows])
            legacy = pl.Series("legacy_id", [f"{name}#{i}" for i in rows]) if id_prefix else None
        raw_cols = [formula_col] + ([id_col] if id_col else []) + [p.column for p in props]
        raw_cols = list(dict.fromkeys(raw_cols))
        out = pl.DataFrame({
            "external_id": ext,
            "formula": part[formula_col],
            "raw": part.select(raw_cols).select(
                pl.struct(pl.all()).struct.json_encode().alias("raw"))["raw"],
        })
        out = out.with_columns([part[p.column].alias(f"raw:{p.name}") for p in props])
        if legacy is not None:
            out = out.with_columns(legacy)
        hi = lo + part.height
        yield Chunk(out, str(hi) if hi < n else None)


def open_source(kind: str, /, **opts) -> Source:
    """The adapter for `matstore ingest KIND ...` (imported lazily: mp-api etc. are optional)."""
    import importlib
    import inspect

    kind = kind.lower()
    module, _, attr = SOURCES.lookup(kind).opener.partition(":")
    opener = importlib.import_module(f"{__name__}.{module}")
    for part in attr.split("."):
        opener = getattr(opener, part)
    allowed = inspect.signature(opener).parameters
    extra = [k for k in opts if k not in allowed]
    if extra:
        names = ", ".join("--" + k.replace("_", "-").replace("props", "prop") for k in extra)
        raise SourceError(f"source {kind} does not take {names}")
    return opener(**opts)

"""`structures`: a crystal-structure file (matstore.structures.readers), ingested as known structures."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from . import SourceError, check_kind, check_source_name, default_id_prefix, file_sha256, pick_column, read_table, resolve_props
from .csv import as_specs


def limits_of(allow_partial=None, max_sites=None, min_distance=None):
    from ..structures.checks import Limits  # noqa: PLC0415

    base = Limits()
    if max_sites is not None and (isinstance(max_sites, bool) or not isinstance(max_sites, int) or max_sites < 1):
        raise SourceError(f"--max-sites must be a positive number of sites, got {max_sites!r}")
    if min_distance is not None and not (isinstance(min_distance, (int, float)) and 0 <= min_distance < 10):
        raise SourceError(f"--min-distance must be a distance in Å between 0 and 10, got {min_distance!r}")
    return Limits(max_sites=max_sites or base.max_sites,
                  min_distance=base.min_distance if min_distance is None else float(min_distance),
                  allow_partial=bool(allow_partial))


def open_structures(file=None, format=None, cif_col=None, id_col=None, props=None, limit=None,
                    source_name=None, kind=None, method=None, allow_partial=None, max_sites=None,
                    min_distance=None):
    """A structure file: format by name or --format; a table's CIF column by --cif-col (default:
    cif/structure), its ids by --id-col (default: material_id/id), properties by --prop."""
    from ..structures import readers  # noqa: PLC0415
    from ..structures.ingest import StructureSource, chunked  # noqa: PLC0415

    if not file:
        raise SourceError("source structures needs --file")
    name = "structures" if source_name is None else check_source_name(source_name)
    kind, method = check_kind(kind, method)
    limits = limits_of(allow_partial, max_sites, min_distance)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise SourceError(f"structures: --limit must be a positive number of entries, got {limit!r}")
    fmt = format or readers.detect_format(file)
    if fmt not in readers.FORMATS:
        raise SourceError(f"--format {fmt!r}: expected one of {', '.join(readers.FORMATS)}")
    path = str(Path(file).resolve())
    if not Path(path).is_file():
        raise SourceError(f"file {path} does not exist" if not Path(path).exists() else f"{path} is not a file")
    sha = file_sha256(path)
    prefix = default_id_prefix(sha)
    specs = as_specs(props)
    total = None
    if fmt == "table":
        df = read_table(path)
        ccol = pick_column(df, cif_col, readers.CIF_COLUMNS, "CIF", path)
        if ccol is None:
            raise SourceError(f"{path}: no CIF column (looked for {', '.join(readers.CIF_COLUMNS)}; name it with --cif-col)")
        icol = pick_column(df, id_col, readers.ID_COLUMNS, "id", path)
        fcol = ccol if "formula" not in df.columns else "formula"
        specs = resolve_props(df, specs, path, fcol, icol)
        if limit is not None:
            df = df.head(limit)
        total = df.height
        read = partial(readers.table_entries, df, path, prefix, limits.max_sites, ccol, icol, specs)
        entries = lambda start: read(start=start)  # noqa: E731 - tables skip to the cursor directly
    elif specs and fmt != "extxyz":
        raise SourceError(f"--prop reads columns of a table or extended XYZ frame info, not a {fmt} file")
    else:
        icol = None
        fn = {"cif": readers.cif_entries, "poscar": readers.poscar_entries, "json": readers.json_entries,
              "mgmno": readers.mgmno_entries}.get(fmt)
        reader = partial(readers.extxyz_entries, props=specs) if fmt == "extxyz" else fn
        entries = lambda start: _limited(reader(path, prefix, limits.max_sites), limit)  # noqa: E731
    params = {"format": fmt, "cif_col": cif_col, "id_col": icol, "limit": limit, "sha256": sha,
              "props": [f"{p.name}={p.column}:{p.unit or ''}" for p in specs],
              "limits": {"max_sites": limits.max_sites, "min_distance": limits.min_distance,
                         "allow_partial": limits.allow_partial}}
    if kind is not None:
        params = {**params, "kind": kind, "method": method}

    def chunks(cursor):
        start = int(cursor) if cursor else 0
        if fmt == "table":   # rows before the cursor are not parsed again
            gen = entries(start)
            yield from ((b, str(int(c) + start)) for b, c in chunked(gen, 0))
        else:
            yield from chunked(entries(0), start)

    return StructureSource(name=name, uri=path, params=params, units={p.name: p.unit for p in specs},
                           total=total, kind=kind, method=method, limits=limits,
                           method_name="mgmno-image" if fmt == "mgmno" else fmt, entry_chunks=chunks)


def _limited(entries, limit):
    for i, e in enumerate(entries):
        if limit is not None and i >= limit:
            return
        yield e

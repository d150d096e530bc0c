"""What travels back from a worker: one Arrow IPC stream (bytes), read here with Arrow only and
checked column by column against the schema the client expects before anything else looks at it.
Column types come from the package's schema (merge.validate.expected_schema: the migrations), so
a batch is typed exactly like the table it lands in."""

from __future__ import annotations

import pyarrow as pa

MAX_PAYLOAD_BYTES = 1 << 30      # one batch's bytes; a batch of 262,144 samples is ~20 MB
ARROW_OF = {"BIGINT": pa.int64(), "INTEGER": pa.int32(), "DOUBLE": pa.float64(),
            "VARCHAR": pa.string(), "BOOLEAN": pa.bool_()}


def package_fields(table: str, columns: list[str]) -> list[pa.Field]:
    """Arrow fields of columns of a package table, typed as the migrations declare them."""
    from ..merge.validate import expected_schema  # noqa: PLC0415

    types = dict(expected_schema()[table])
    return [pa.field(c, ARROW_OF[types[c]]) for c in columns]


def encode(table: pa.Table) -> bytes:
    """A table as one Arrow IPC stream (what a worker task returns)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def decode(data, schema: pa.Schema, what: str, error) -> pa.Table:
    """A worker's bytes -> a table of exactly schema's columns and types, or error(one line)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise error(f"{what}: the worker returned {type(data).__name__}, not Arrow IPC bytes")
    if len(data) > MAX_PAYLOAD_BYTES:
        raise error(f"{what}: {len(data):,} bytes from a worker exceed {MAX_PAYLOAD_BYTES:,}")
    try:
        table = pa.ipc.open_stream(pa.py_buffer(bytes(data))).read_all()
    except (pa.ArrowInvalid, pa.ArrowException, OSError, ValueError) as e:
        raise error(f"{what}: not a readable Arrow stream ({' '.join(str(e).split())[:200]})") from None
    got = [(f.name, f.type) for f in table.schema]
    want = [(f.name, f.type) for f in schema]
    if got != want:
        bad = next(((g, w) for g, w in zip(got, want) if g != w), (got[len(want):] or [None], want[len(got):] or [None]))
        raise error(f"{what}: columns {[str(n) for n, _ in got][:12]} do not match the expected "
                    f"{[n for n, _ in want]} (first difference: {str(bad[0])[:80]} vs {str(bad[1])[:80]})")
    return table

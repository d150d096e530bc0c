"""Bad input, everywhere: the formula parser and the file readers never crash with anything but
a clear error naming the input and the reason; rejected rows keep the row and the reason."""

from __future__ import annotations

import hashlib
import json
import re
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matstore import compositions as C
from matstore.sources import SourceError
from _store_data import new_store

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SYMBOLS = [s for s in C.SYMBOLS if s] + ["X", "Xx", "D", "T", "Uuo", "e", "Q"]
AMOUNT = st.one_of(st.just(""), st.integers(0, 10**6).map(str),
                   st.floats(0, 1e4, allow_nan=False, allow_infinity=False).map(lambda x: f"{x:g}"),
                   st.sampled_from(["0.5", ".5", "1e3", "1e-12", "1e400", "0", "00", "-1", "1/2", "2.",
                                    "NaN", "inf", "1e-9", "0.333333333", "٣", "²"]))
TOKEN = st.one_of(
    st.tuples(st.sampled_from(SYMBOLS), AMOUNT).map("".join),
    st.sampled_from(["(", ")", "[", "]", "{", "}", "·", "•", "*", "@", " ", "+", "-", ",", ".", "H2O",
                     "5H2O", "(OH)2", "((", "))", "\x00", "\n", "é", "Fe\u200b", "ｆｅ"]),
)
FORMULA_LIKE = st.lists(TOKEN, min_size=0, max_size=12).map("".join)


def _check_parse(text) -> None:
    try:
        c = C.parse(text)
    except C.FormulaError as e:
        assert repr(text) in str(e) or str(text) in str(e), str(e)
        assert e.reason and e.reason.strip()
        r = C.try_parse(text)
        assert isinstance(r, str) and r.strip()
        return
    # accepted: a canonical, self-consistent composition
    assert c.elements and all(n > 0 for n in c.counts)
    assert len(set(c.elements)) == len(c.elements)
    again = C.parse(c.formula)
    assert again.composition_id == c.composition_id and again.counts == c.counts


@SETTINGS
@given(FORMULA_LIKE)
def test_parse_formula_like_text_never_crashes(text):
    _check_parse(text)


@SETTINGS
@given(st.text(max_size=40))
def test_parse_arbitrary_text_never_crashes(text):
    _check_parse(text)


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.none(), st.integers(), st.floats(), st.binary(max_size=10), st.lists(st.text(max_size=3))))
def test_parse_non_strings_is_a_formula_error(value):
    # unhashable values cannot reach the cache: a plain TypeError; try_parse names the type
    with pytest.raises(TypeError if isinstance(value, list) else C.FormulaError):
        C.parse(value)
    r = C.try_parse(value)
    assert isinstance(r, str) and r.strip()


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(SYMBOLS[:90]), st.integers(1, 40), min_size=1, max_size=6))
def test_accepted_integer_formulas_agree_with_pymatgen(counts):
    from pymatgen.core import Composition

    text = "".join(f"{el}{n}" for el, n in counts.items())
    ours = C.try_parse(text)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = Composition(text).reduced_formula
    except Exception:  # noqa: BLE001 - pymatgen refuses it: so must we
        assert isinstance(ours, str)
        return
    assert not isinstance(ours, str), ours
    assert ours.formula == ref


# --- file readers through the ingest module ----------------------------------------------------

CELL = st.one_of(FORMULA_LIKE, st.text(max_size=8), st.sampled_from(["", "NaN", "1.5", "-3", "1e999",
                                                                    "abc", '"', "'", ",", "\\"]))


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory):
    from matstore.store import Store

    return new_store(tmp_path_factory.mktemp("fuzz") / "fuzz.duckdb")


def _ingest_file(store, path, props):
    from matstore.ingest import run

    try:
        return run(store, "csv", file=str(path), props=props, resume=False)
    except SourceError as e:
        assert str(path.name) in str(e) or "--prop" in str(e), str(e)
        return None


def _check_rejects(store, res) -> None:
    assert res.rows_seen == res.rows_rejected + res.rows_curated + res.rows_duplicate + res.rows_kept
    rej = store.query("SELECT row_ref, raw, reason FROM rejects WHERE ingest_id = ?", [res.ingest_id])
    assert rej.height == res.rows_rejected
    assert all(r and r.strip() for r in rej["reason"].to_list())
    assert rej["raw"].null_count() == 0


NUMBER = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,12})?")
GOOD_ROWS = [("NaCl", "1.5"), ("Fe2O3", "-3"), ("LiCoO2", "")]   # real formulas, plain values


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(CELL, CELL), min_size=0, max_size=15),
       header=st.sampled_from([("formula", "target"), ("formula", "band_gap"), ("composition", "x"),
                               ("a", "b"), ("formula", "formula")]),
       at=st.integers(0, 15))
@pytest.mark.slow
def test_csv_files_with_bad_cells_are_rejected_with_reasons(fuzz_store, tmp_path_factory, rows, header, at):
    """Known-good rows mixed into fuzzed ones: a file with a formula column is read, its good rows
    are stored with their values, every row whose formula does not parse is a reject with a reason;
    a file without a formula column is refused, naming the file."""
    import csv

    rows = rows[:at] + GOOD_ROWS + rows[at:]
    path = tmp_path_factory.mktemp("csv") / "fuzz.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    props = ["band_gap=" + header[1] + ":eV"] if header[1] != "formula" else []
    res = _ingest_file(fuzz_store, path, props)
    if header[0] not in ("formula", "composition"):
        assert res is None, f"{header} has no formula column, yet {path.name} was read"
        return
    if any("\x00" in c or "\r" in c for row in rows for c in row):
        return  # NUL / CR inside a cell: the reader may refuse the whole file (checked by _ingest_file)
    assert res is not None, f"{path.name} with header {header} was refused"
    _check_rejects(fuzz_store, res)
    # this file's rows, whichever ingest stored them (an example may repeat an earlier file)
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:16] + "#"
    stored = fuzz_store.query(
        "SELECT c.formula, p.value FROM materials m JOIN compositions c USING (composition_id) "
        "LEFT JOIN properties p ON p.material_id = m.material_id AND p.name = 'band_gap' "
        "WHERE starts_with(m.external_id, ?)", [prefix])
    got = set(zip(stored["formula"].to_list(), stored["value"].to_list()))
    want = {("NaCl", 1.5), ("Fe2O3", -3.0), ("LiCoO2", None)} if props else \
        {("NaCl", None), ("Fe2O3", None), ("LiCoO2", None)}      # no property column named
    assert want <= got, got
    bad_formula = sum(isinstance(C.try_parse(f), str) for f, _ in rows)
    good = sum(not isinstance(C.try_parse(f), str) and (v == "" or NUMBER.fullmatch(v) is not None)
               for f, v in rows)
    assert res.rows_rejected >= bad_formula, (res, bad_formula)
    assert res.rows_kept + res.rows_duplicate >= good >= len(GOOD_ROWS), (res, good)
    assert res.rows_seen == len(rows)


JSON_VALUE = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                    FORMULA_LIKE),
                          lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                  st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                          max_leaves=6)
JSON_ROW = st.fixed_dictionaries({"formula": st.one_of(FORMULA_LIKE, JSON_VALUE)},
                                 optional={"band_gap": JSON_VALUE, "entry_id": JSON_VALUE})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(doc=st.one_of(st.lists(JSON_ROW, max_size=8), st.fixed_dictionaries({"data": st.lists(JSON_ROW, max_size=8)}),
                     JSON_VALUE))
@pytest.mark.slow
def test_json_files_of_any_shape_are_read_or_refused_clearly(fuzz_store, tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("json") / "fuzz.json"
    path.write_text(json.dumps(doc))
    res = _ingest_file(fuzz_store, path, [])
    if res is not None:
        _check_rejects(fuzz_store, res)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=200), suffix=st.sampled_from([".csv", ".json", ".parquet", ".tsv", ".jsonl"]))
def test_binary_junk_files_are_refused_clearly(fuzz_store, tmp_path_factory, blob, suffix):
    path = tmp_path_factory.mktemp("junk") / f"junk{suffix}"
    path.write_bytes(blob)
    res = _ingest_file(fuzz_store, path, [])
    if res is not None:
        _check_rejects(fuzz_store, res)


BAD_FILES = {
    "empty.csv": b"",
    "header_only.csv": b"formula,target\n",
    "no_formula.csv": b"a,b\n1,2\n",
    "ragged.csv": b"formula,band_gap\nNaCl,1,2,3\nKCl\n",
    "binary.csv": bytes(range(256)),
    "notjson.json": b"{not json",
    "scalar.json": b"42",
    "bad.parquet": b"PAR1garbage",
    "utf16.csv": "formula,band_gap\nNaCl,1\n".encode("utf-16"),
}
BAD_FILE_REASONS = {
    "empty.csv": "empty CSV",
    "header_only.csv": "could be any property",   # 'target' with no --prop saying which
    "no_formula.csv": "no formula column",
    "ragged.csv": "more fields",
    "binary.csv": "invalid utf-8",
    "notjson.json": "not JSON",
    "scalar.json": "expected JSON objects",
    "bad.parquet": "parquet",
    "utf16.csv": "UTF-16",   # issue 22: named as such (was "no formula column")
}


def _cli(args: list[str]):
    """In-process CLI call: exit code and output; an uncaught exception would be a traceback."""
    from click.testing import CliRunner

    from matstore.cli import main

    r = CliRunner().invoke(main, args, catch_exceptions=True)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_cli_ingest_of_bad_files_is_one_clear_line(tmp_path, name):
    from matstore.store import Store

    store = new_store(tmp_path / "s.duckdb")
    path = tmp_path / name
    path.write_bytes(BAD_FILES[name])
    r = _cli(["ingest", "csv", "--file", str(path), "--db", store.path, "--quiet"])
    assert r.exit_code == 1, r.output
    assert name in r.output and BAD_FILE_REASONS[name] in r.output, r.output
    assert r.output.startswith("error: ") and "Traceback" not in r.output
    assert store.query("SELECT count(*) AS n FROM ingests")["n"][0] == 0   # refused before it began


@SETTINGS
@given(FORMULA_LIKE)
def test_try_parse_and_parse_agree(text):
    r = C.try_parse(text)
    if isinstance(r, str):
        with pytest.raises(C.FormulaError):
            C.parse(text)
    else:
        assert C.parse(text) == r


@pytest.mark.parametrize("sql, code, said", [
    ("", 1, "no SQL statement given"),
    (";", 1, "no SQL statement given"),
    ("SELEC 1", 1, 'syntax error at or near "SELEC"'),
    ("SELECT * FROM nope", 1, "no table or view named nope"),
    ("SELECT 'é' || ?", 1, "no value for $1"),
    ("SELECT 1/0", 0, "inf"),                  # DuckDB's answer, not an error
    ("SELECT [1,2][5]", 0, "null"),
    ("SELECT 1; SELEC 2", 1, 'syntax error at or near "SELEC"'),
    ("PRAGMA nope", 1, "nope does not exist"),
])
def test_cli_query_with_bad_sql_is_one_clear_line(tmp_path, sql, code, said):
    from matstore.store import Store

    store = new_store(tmp_path / "s.duckdb")
    r = _cli(["query", "--db", store.path, sql])
    assert r.exit_code == code and said in r.output, r.output
    if code:
        assert r.output.startswith("error: ") and len(r.output.strip().splitlines()) == 1, r.output

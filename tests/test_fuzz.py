"""Bad input, everywhere: the formula parser and the file readers never crash with anything but
a clear error naming the input and the reason; rejected rows keep the row and the reason."""

from __future__ import annotations

import json
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matstore import compositions as C
from matstore.sources import SourceError

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

    return Store.init(tmp_path_factory.mktemp("fuzz") / "fuzz.duckdb")


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


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(CELL, CELL), min_size=0, max_size=15),
       header=st.sampled_from([("formula", "target"), ("formula", "band_gap"), ("composition", "x"),
                               ("a", "b"), ("formula", "formula")]))
def test_csv_files_with_bad_cells_are_rejected_with_reasons(fuzz_store, tmp_path_factory, rows, header):
    import csv

    path = tmp_path_factory.mktemp("csv") / "fuzz.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    res = _ingest_file(fuzz_store, path, ["band_gap=" + header[1] + ":eV"] if header[1] != "formula" else [])
    if res is not None:
        _check_rejects(fuzz_store, res)


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

    store = Store.init(tmp_path / "s.duckdb")
    path = tmp_path / name
    path.write_bytes(BAD_FILES[name])
    r = _cli(["ingest", "csv", "--file", str(path), "--db", store.path, "--quiet"])
    if r.exit_code != 0:
        assert name in r.output or "formula" in r.output, r.output
    else:  # read, with every bad row kept in rejects with a reason
        rej = store.query("SELECT reason FROM rejects")["reason"].to_list()
        assert all(rej)


@SETTINGS
@given(FORMULA_LIKE)
def test_try_parse_and_parse_agree(text):
    r = C.try_parse(text)
    if isinstance(r, str):
        with pytest.raises(C.FormulaError):
            C.parse(text)
    else:
        assert C.parse(text) == r


@pytest.mark.parametrize("sql", ["", ";", "SELEC 1", "SELECT * FROM nope", "SELECT 'é' || ?",
                                 "SELECT 1/0", "SELECT [1,2][5]", "SELECT 1; SELEC 2", "PRAGMA nope"])
def test_cli_query_with_bad_sql_is_one_clear_line(tmp_path, sql):
    from matstore.store import Store

    store = Store.init(tmp_path / "s.duckdb")
    r = _cli(["query", "--db", store.path, sql])
    assert r.exit_code in (0, 1), r.output

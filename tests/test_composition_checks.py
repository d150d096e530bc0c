"""merge.composition_checks.problem_rows (arrays) gives every row the verdict of merge's row-wise
composition_problem: real MP and OQMD compositions (all good) and forged rows of every kind the
row-wise check words (all bad), mixed, in one table and in a sliced one."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from matstore import compositions as C
from matstore.executor import ExecutorError
from matstore.executor.batch_checks import new_compositions
from matstore.merge.composition_checks import problem_rows, problems
from matstore.merge.validate import MAX_ATOMS, MAX_COUNT, composition_problem

SCHEMA = pa.schema([("composition_id", pa.int64()), ("formula", pa.string()),
                    ("elements", pa.list_(pa.string())), ("counts", pa.list_(pa.int32())),
                    ("n_elements", pa.int32()), ("n_atoms", pa.int64())])


@pytest.fixture(scope="module")
def real_rows(read_formulas):
    """compositions rows of 6,000 real formulas (MP and OQMD), with counts past the formula
    kernel's token table (its row-wise path) among them."""
    formulas = (read_formulas("mp/e_form.csv")["formula"].to_list()[:3000]
                + read_formulas("oqmd/bandgap_train.csv")["formula"].to_list()[:3000]
                + ["Fe999Co", "Li0.999999Co0.000001O2", "Na3Al2(PO4)3", "H2O", "O2", "Fe2O3"])
    comps = [c for c in map(C.try_parse, formulas) if isinstance(c, C.Composition)]
    b = C.CompositionBatch.from_compositions(comps)
    return C.composition_rows(b.z, b.counts).cast(SCHEMA).to_pylist()


def _row(els, counts, formula=None, key=None, n_el=None, n_atoms=None):
    good = C.from_arrays(np.array([C.Z_OF.get(e, 1) for e in els]), np.array(counts)) if els else None
    return {"composition_id": good.composition_id if key is None and good else key,
            "formula": formula if formula is not None or not good else good.formula,
            "elements": els, "counts": counts,
            "n_elements": len(els) if n_el is None and els is not None else n_el,
            "n_atoms": sum(c for c in counts if c) if n_atoms is None and counts else n_atoms}


def _forged(real) -> list[dict]:
    fe2o3 = next(r for r in real if r["formula"] == "Fe2O3")
    three = next(r for r in real if r["n_elements"] == 3)
    wide = C.sort_order(C.SYMBOLS[1:41])   # 40 distinct, ordered
    return [
        {**fe2o3, "elements": ["Fe", "Xx"]},                                # unknown element
        {**fe2o3, "elements": ["Fe", None]},                                # NULL element
        {**fe2o3, "counts": [2, 0]},                                        # count 0
        {**fe2o3, "counts": [2, -3]},
        {**fe2o3, "counts": [MAX_COUNT + 1, 3]},                            # count > MAX_COUNT
        {**fe2o3, "counts": [2, None]},
        {**fe2o3, "counts": [4, 6], "n_atoms": 10},                         # not reduced
        {**three, "elements": three["elements"][::-1], "counts": three["counts"][::-1]},  # order
        {**fe2o3, "elements": ["O", "Fe"], "counts": [3, 2]},
        {**fe2o3, "elements": ["Fe", "Fe"]},                                # an element twice
        {**fe2o3, "formula": "Fe3O2"},                                      # wrong formula
        {**fe2o3, "formula": None},
        {**fe2o3, "composition_id": three["composition_id"]},               # another's key
        {**fe2o3, "composition_id": None},
        {**fe2o3, "n_atoms": 6},                                            # wrong n_atoms
        {**fe2o3, "n_elements": 3},
        {**fe2o3, "n_elements": None},
        {**fe2o3, "elements": [], "counts": []},                            # empty / NULL / unpaired
        {**fe2o3, "elements": None},
        {**fe2o3, "counts": None},
        {**fe2o3, "counts": [2, 3, 1]},
        _row(["Fe", "O"], [999_999, 999_998]) if MAX_ATOMS else {**fe2o3, "formula": "x"},  # atoms
        {**_row(wide, [1] * 40), "formula": "Wrong"},                       # wide, bad formula
        _row(wide[:39] + wide[:1] * 81, [1] * 120),                         # > MAX_Z slots
    ]


def _table(rows) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def test_problem_rows_equal_composition_problem_on_real_and_forged_rows(real_rows):
    forged = _forged(real_rows)
    wide_ok = _row(C.sort_order(C.SYMBOLS[1:41]), [1] * 40)
    rows = real_rows[:2500] + forged + [wide_ok] + real_rows[2500:] + forged[:5]
    table = _table(rows)
    want = np.array([composition_problem(r) is not None for r in rows])
    got = np.zeros(len(rows), bool)
    got[problem_rows(table)] = True
    assert (got == want).all(), [(rows[i], composition_problem(rows[i])) for i in np.flatnonzero(got != want)][:3]
    assert want.sum() == len(forged) + 5           # every forged row is bad, every real row good
    assert len(real_rows) > 5000 and not want[:2500].any()
    # a slice keeps the verdicts (list offsets into a shared child array)
    sl = table.slice(2490, 40)
    assert problem_rows(sl).tolist() == (np.flatnonzero(want[2490:2530])).tolist()
    # the words are the row-wise function's, for the first bad rows in row order
    first = problems(table, limit=3)
    assert [i for i, _, _ in first] == np.flatnonzero(want)[:3].tolist()
    assert [w for _, _, w in first] == [composition_problem(rows[i]) for i, _, _ in first]


def test_a_worker_batch_with_a_forged_composition_is_refused_with_merge_words(real_rows):
    good = _table(real_rows[:1000])
    new_compositions(good, "processes:2", 0)     # real rows pass
    bad = _table(real_rows[:700] + [{**real_rows[3], "formula": "Fe3O2"}] + real_rows[700:1000])
    with pytest.raises(ExecutorError, match=r"batch 4: composition 'Fe3O2': formula 'Fe3O2' is not"):
        new_compositions(bad, "processes:2", 4)

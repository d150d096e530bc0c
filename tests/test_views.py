"""novelty_recovery (Table 3.3) and cross_source_confirmation (Table 3.4) against polars recounts."""

from __future__ import annotations

import datetime as dt

import polars as pl

from matstore import runner
from matstore.compositions import parse
from matstore.store import append
from _runner_helpers import ReplayGenerator, load_compositions, mp_formulas


def test_recovery_and_cross_source_match_recount(store, read_formulas):
    formulas, values = mp_formulas(read_formulas, 2000)
    load_compositions(store, formulas, "mp", values)
    ids = list(dict.fromkeys(parse(f).composition_id for f in formulas))
    train, hold = ids[:1500], ids[1500:]
    now = dt.datetime.now()
    with store.transaction() as con:
        append(con, "composition_sets", pl.DataFrame({
            "set_name": ["replay@1/train"] * len(train) + ["replay@1/holdout"] * len(hold),
            "composition_id": train + hold, "model_id": 1,
            "role": ["train"] * len(train) + ["holdout"] * len(hold), "created_at": now}))
        append(con, "composition_sets", pl.DataFrame({   # a plain named list applies to every run
            "set_name": "my-list", "composition_id": ids[::7], "model_id": None, "role": None,
            "created_at": now}, schema_overrides={"model_id": pl.Int32, "role": pl.Utf8}))
        append(con, "composition_sets", pl.DataFrame({   # another model's split must not count
            "set_name": "other@1/train", "composition_id": ids, "model_id": 2, "role": "train",
            "created_at": now}))
    # only the training formulas feed the generator: holdout recovery comes from the replay noise
    res = runner.generate(store, ReplayGenerator([formulas[i] for i in range(len(formulas))
                                                  if parse(formulas[i]).composition_id in set(train)]),
                          6000, batch_size=1500, seed=2, device="cpu", progress=False)
    raw = store.query("SELECT composition_id FROM generated WHERE run_id = ?", [res.run_id])
    gen = set(raw["composition_id"].to_list())
    view = {r["set_name"]: r for r in store.query(
        "SELECT * FROM novelty_recovery WHERE run_id = ?", [res.run_id]).iter_rows(named=True)}
    assert set(view) == {"replay@1/train", "replay@1/holdout", "my-list"}
    for name, members in (("replay@1/train", train), ("replay@1/holdout", hold), ("my-list", ids[::7])):
        hit = len(gen & set(members))
        assert view[name]["set_size"] == len(set(members))
        assert view[name]["n_recovered"] == hit
        assert abs(view[name]["recovery_pct"] - 100 * hit / len(set(members))) < 0.01
    assert view["replay@1/train"]["recovery_pct"] > 50
    in_sets = set(train) | set(hold) | set(ids[::7])
    assert view["replay@1/train"]["new_samples"] == sum(k not in in_sets for k in raw["composition_id"].to_list())
    assert view["replay@1/train"]["samples_drawn"] == raw.height

    new_gen = gen - set(train)
    # another source that knows some of the run's new compositions (and unrelated ones)
    novel = store.query("SELECT formula FROM candidates WHERE novel ORDER BY composition_id LIMIT 40")
    load_compositions(store, novel["formula"].to_list() + mp_formulas(read_formulas, 300, offset=9000)[0],
                      "oqmd", ingest_id=2)
    css = {r["source"]: r for r in store.query(
        "SELECT * FROM cross_source_confirmation WHERE run_id = ?", [res.run_id]).iter_rows(named=True)}
    for src in ("mp", "oqmd"):
        have = set(store.query("SELECT composition_id FROM materials WHERE source = ?", [src])["composition_id"].to_list())
        assert css[src]["n_confirmed"] == len(new_gen & have)
        assert css[src]["n_new_generated"] == len(new_gen)
    assert css["oqmd"]["n_confirmed"] >= 40

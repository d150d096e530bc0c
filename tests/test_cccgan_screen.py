"""The photoanode screen of seed 003 as a SQL view over Mg-Mn-O structures (issue 29, item 5):
real structures, the shipped band-gap and formation-energy predictors, the hull of the OQMD
Mg-Mn-O phases; the view must equal the same filter done independently."""

from __future__ import annotations

import polars as pl
import pytest
import torch

from matstore.compositions import try_parse
from matstore.ingest import run as ingest_run
from matstore.structures import image as im
from matstore.predict import predict
from matstore.pretrained import import_pretrained
from matstore.stability import compute
from matstore.structures import write_structures


@pytest.mark.slow
def test_photoanode_screen_equals_the_filter_it_states(store, shared_data, tmp_path):
    torch.set_num_threads(1)
    df = pl.read_csv(shared_data / "oqmd/formation_enthalpy_train.csv")
    ok = [not isinstance(c := try_parse(f), str) and set(c.elements) <= {"Mg", "Mn", "O"}
          for f in df["formula"].to_list()]
    df.filter(pl.Series(ok)).write_csv(tmp_path / "mgmno.csv")
    ingest_run(store, "csv", file=str(tmp_path / "mgmno.csv"), props=["formation_energy_per_atom=target:eV/atom"])
    x = im.load_images(shared_data / "structures/mgmno/mgmno_structures.npy")
    write_structures(store, [im.decode(v) for v in x[::80]], "known", "mgmno-image")
    for name in ("oqmd-attn-fe", "oqmd-bg-two-stage"):
        import_pretrained(store, name)
        predict(store, name, progress=False)
    compute(store, model="oqmd-attn-fe", progress=False)
    got = store.query("SELECT structure_id, pred_band_gap, e_above_hull, fe_model, band_gap_model "
                      "FROM screen_photoanode_mgmno")
    rows = store.query("""
        SELECT s.structure_id, c.elements, st.e_above_hull, st.model_id,
               (SELECT CASE WHEN p.p_metal >= 0.5 THEN 0.0 ELSE p.value END FROM predictions p
                WHERE p.composition_id = s.composition_id AND p.property = 'band_gap'
                ORDER BY coalesce(p.run_id, 0) DESC, p.model_id DESC LIMIT 1) AS gap,
               (SELECT ip.rarest_ion_share FROM ion_plausibility ip
                WHERE ip.composition_id = s.composition_id) AS ion_share
        FROM structures s JOIN compositions c USING (composition_id)
        JOIN stability st ON st.composition_id = s.composition_id""")
    ternary = rows.filter(pl.col("elements").list.sort() == pl.lit(["Mg", "Mn", "O"]))
    assert ternary.height >= 25 and ternary["gap"].is_not_null().all()   # the joins have rows to judge
    want = ternary.filter((pl.col("model_id") > 0) & pl.col("gap").is_between(1.6, 3.0)
                          & (pl.col("e_above_hull") <= 0.08) & (pl.col("ion_share") >= 0.01))
    assert sorted(got["structure_id"].to_list()) == sorted(want["structure_id"].to_list())
    assert (got["pred_band_gap"].is_between(1.6, 3.0)).all() and (got["e_above_hull"] <= 0.08).all()
    assert set(got["fe_model"]) <= {"oqmd-attn-fe@1"}

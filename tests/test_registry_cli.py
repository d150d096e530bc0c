"""`matstore train` and `matstore models list|show|export|import` end to end on real rows."""

from __future__ import annotations

import json

import torch
from click.testing import CliRunner

from _store_data import fill
from matstore.cli import main

torch.set_num_threads(1)


def test_train_and_models_commands(store, read_formulas, tmp_path):
    fill(store, "oqmd", read_formulas("oqmd/formation_enthalpy_train.csv").head(150),
         "formation_energy_per_atom")
    r = CliRunner()
    db = ["--db", store.path]
    res = r.invoke(main, ["train", *db, "--model", "elemnet-fe", "--epochs", "2", "--max-steps", "4",
                          "--device", "cpu", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "saved elemnet-fe@1" in res.output and '"mae"' in res.output
    res = r.invoke(main, ["train", *db, "--model", "rf-fe", "--on",
                          "SELECT composition_id FROM compositions WHERE n_elements = 3", "--no-progress"])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["models", "list", *db, "--json"])
    rows = json.loads(res.output)
    assert [(x["name"], x["version"]) for x in rows] == [("elemnet-fe", 1), ("rf-fe", 1)]
    show = json.loads(r.invoke(main, ["models", "show", "rf-fe@1", *db]).output)
    assert "n_elements = 3" in show["training_query"] and show["kind"] == "rf"
    out = tmp_path / "m.parquet"
    res = r.invoke(main, ["models", "export", str(out), "elemnet-fe", *db])
    assert res.exit_code == 0 and "exported 1" in res.output
    other = tmp_path / "other.duckdb"
    assert r.invoke(main, ["init", str(other)]).exit_code == 0
    res = r.invoke(main, ["models", "import", str(out), "--db", str(other)])
    assert res.exit_code == 0 and "imported elemnet-fe@1" in res.output
    res = r.invoke(main, ["models", "import", str(out), "--db", str(other)])
    assert "skipped elemnet-fe@1" in res.output
    # errors are one clear line, no traceback
    res = r.invoke(main, ["train", *db, "--model", "nope"])   # a usage error naming the presets
    assert res.exit_code == 2 and "'nope' is not one of" in res.output and "rf-fe" in res.output
    for args in (["models", "show", "zzz", *db],
                 ["train", *db, "--model", "cnn-fe", "--on", "SELECT 1 AS x"]):
        res = r.invoke(main, args)
        assert res.exit_code == 1 and "error" in res.output and "Traceback" not in res.output, res.output

"""Train the predictors that ship with matstore (matstore/pretrained/) on the shared OQMD files.

    python scripts/pretrain_predictors.py                               # attn-fe and attn-bg
    python scripts/pretrain_predictors.py --preset attn-bg --rows 60000 --epochs 40
    python scripts/pretrain_predictors.py --preset attn-fe --epochs 2 --rows 2000 --dry-run

For each preset: ingest the OQMD file of its property into a temporary store (source oqmd, DFT
PBE), train the preset through matstore.training.train on a selection of that store (FE: rows
with |value| <= 5 eV/atom; 13 of the 51,255 reach 43 eV/atom, unphysical), export the version
with registry.export_models to matstore/pretrained/<name>.parquet and record it in MANIFEST.json
(pretrained.record): the data file's sha256, the selection as run, the seeded split, the test
metrics, and a check: predictions of the reloaded version on real test rows, which an import
must reproduce exactly (tests/test_pretrained_shipped.py). The shipped name is ``oqmd-<preset>``
unless --name says otherwise (one name per preset, given in the same order).
Data: $MATSTORE_TEST_DATA, else ../shared/data beside the repository.

The shipped files were made with (1 thread, 2-core box; a shipped file may take 8 MiB since issue
30, before 1 MiB; train_seconds are wall clock under the session's load):
    --preset attn-fe --store out/pretrain/fe.duckdb
                                  # attention d128x3 (the preset), 51,242 rows, 40 epochs (best 39),
                                  # test MAE 0.0573 eV/atom, 2.27 MiB; 3,275 s wall at load ~17
                                  # (~8 min of CPU). Replaced d64x2 (MAE 0.0665, 0.52 MiB).
    --preset bg-two-stage --epochs 60 --ensemble 3 --store out/pretrain/bg3.duckdb
                                  # three seeded members of the preset's 512-256-128-64 two-stage
                                  # network, all 239,125 rows: test MAE 0.0646 eV, R2 0.745, 6.56 MiB;
                                  # 1,521 s wall on a nearly idle box (one core). Two members measured
                                  # 0.0651 (4.38 MiB); it replaced one 256-128-64 (MAE 0.0693, 0.76 MiB).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from matstore import ingest, pretrained, training  # noqa: E402
from matstore.compositions import CompositionBatch  # noqa: E402
from matstore.registry import export_models, load_model  # noqa: E402
from matstore.store import Store  # noqa: E402
from matstore.training import presets  # noqa: E402

DATA = Path(os.environ.get("MATSTORE_TEST_DATA", REPO.parent / "shared" / "data"))
FILES = {  # property -> (shared data file, ingest --prop spec)
    "formation_energy_per_atom": ("oqmd/formation_enthalpy_train.csv",
                                  "formation_energy_per_atom=target:eV/atom"),
    "band_gap": ("oqmd/bandgap_train.csv", "band_gap=target:eV"),
}
# |FE| above this is dropped from the training selection (bound as a literal below: a constant)
MAX_ABS_FE = 5.0
N_CHECK = 32   # test rows whose predictions the manifest keeps for the import check


def selection(prop: str) -> str:
    """The training selection (SQL returning composition_id) for a property of source oqmd."""
    sql = (f"SELECT composition_id FROM composition_properties_by_source "
           f"WHERE source = 'oqmd' AND {prop} IS NOT NULL")
    if prop == "formation_energy_per_atom":
        sql += f" AND abs({prop}) <= {MAX_ABS_FE}"
    return sql


def check_rows(store: Store, ref: str, n: int = N_CHECK) -> dict:
    """The first n test-split compositions (by id) and the version's predictions for them."""
    df = store.query("SELECT c.formula FROM composition_sets s JOIN compositions c USING (composition_id) "
                     "WHERE s.set_name = ? ORDER BY s.composition_id LIMIT ?", [f"{ref}/test", n])
    formulas = df["formula"].to_list()
    pred = load_model(store, ref).predict(CompositionBatch.from_formulas(formulas), device="cpu")
    return {"formulas": formulas, "predictions": [float(v) for v in pred]}


def epochs_of(metrics: dict) -> dict:
    """best / run epochs: the model's, or each member's (classifier and regressor) of a composite."""
    keys = ("best_epoch", "epochs_run")
    if "history" in metrics:
        return {k: metrics["history"][k] for k in keys}
    return {"members": [{part: {k: m[part][k] for k in keys}
                         for part in ("classifier_history", "history") if part in m}
                        for m in metrics.get("members", [])]}


def split_hashes(store: Store, ref: str) -> dict[str, str]:
    """role -> pretrained.ids_sha256 of the version's split (composition_sets)."""
    df = store.query("SELECT role, composition_id FROM composition_sets WHERE set_name LIKE ? || '/%'", [ref])
    return {role: pretrained.ids_sha256(df.filter(df["role"] == role)["composition_id"].to_numpy())
            for role in ("train", "val", "test")}


def pretrain(store: Store, preset: str, name: str, *, rows: int | None, epochs: int | None,
             seed: int, hyper: dict, out_dir: Path, record: bool, ensemble: int | None = None) -> dict:
    p = presets.get(preset)
    if p.property not in FILES:
        raise SystemExit(f"preset {preset}: no shared OQMD file for property {p.property!r}")
    rel, spec = FILES[p.property]
    if not store.query("SELECT 1 FROM properties WHERE name = ? LIMIT 1", [p.property]).height:
        t = time.perf_counter()
        r = ingest.run(store, "oqmd", file=str(DATA / rel), props=[spec])
        print(f"ingest {rel}: {r.rows_kept:,} rows in {time.perf_counter() - t:.1f} s", flush=True)
    sel = selection(p.property)
    hp, cfg = presets.parse_overrides(preset, [f"{k}={v}" for k, v in hyper.items()])
    mv = training.train(store, preset, on=sel, epochs=epochs, seed=seed, max_rows=rows, name=name,
                        config=cfg or None, progress=False, target_source="oqmd", ensemble=ensemble, **hp)
    rec = store.query("SELECT training_query, training_rows, split::VARCHAR split, data_hash, hyperparams::VARCHAR hp "
                      "FROM model_versions WHERE model_id = ?", [mv.model_id]).row(0, named=True)
    test = mv.metrics["test"]
    epochs_run = epochs_of(mv.metrics)
    print(f"{name} ({preset}): {rec['training_rows']:,} rows, test MAE {test['mae']:.4f} RMSE "
          f"{test['rmse']:.4f} R2 {test['r2']:.4f} (n {test['n']}), {mv.metrics['train_seconds']:.0f} s, "
          f"epochs (best/run) {epochs_run}", flush=True)
    out = out_dir / f"{name}.parquet"
    if not record:
        return {"name": name, "metrics": test}
    export_models(store, out, [mv.ref], overwrite=True)   # the new version replaces the file
    import json  # noqa: PLC0415

    entry = pretrained.record(
        name, out, model=mv.ref, script="scripts/pretrain_predictors.py",
        data={rel: pretrained.sha256_file(DATA / rel)}, selection=rec["training_query"],
        metrics={k: mv.metrics[k] for k in ("val", "test", "train_seconds", "std_scale") if k in mv.metrics},
        preset=preset, kind=p.kind, property=p.property, source="oqmd (DFT, PBE)",
        training_rows=rec["training_rows"], split=json.loads(rec["split"]), split_sha256=split_hashes(store, mv.ref),
        epochs=epochs_run,
        hyperparams=json.loads(rec["hp"]), check=check_rows(store, mv.ref))
    print(f"shipped {out.relative_to(REPO) if out.is_relative_to(REPO) else out}: "
          f"{entry['bytes'] / 2**20:.2f} MiB, sha256 {entry['sha256'][:12]}", flush=True)
    return entry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", action="append", help="preset to train (repeat; default attn-fe, attn-bg)")
    ap.add_argument("--name", action="append", help="shipped name per preset (default oqmd-<preset>)")
    ap.add_argument("--rows", type=int, default=None, help="at most this many training compositions "
                    "(seeded subset before the 80/10/10 split; default all)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs (default: the preset's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ensemble", type=int, default=None, metavar="K",
                    help="K members seeded seed..seed+K-1 in one version (its prediction is their mean)")
    ap.add_argument("--hyper", action="append", default=[], metavar="KEY=VALUE",
                    help="preset hyperparameter or config field (as train --hyper)")
    ap.add_argument("--store", default=None, help="store to train in (default: a temporary one)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--dry-run", action="store_true", help="train and print, ship nothing")
    args = ap.parse_args()
    import torch  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    todo = args.preset or ["attn-fe", "attn-bg"]
    names = args.name or [f"oqmd-{p}" for p in todo]
    if len(names) != len(todo):
        ap.error(f"{len(names)} --name for {len(todo)} --preset")
    hyper = {}
    for item in args.hyper:
        k, sep, v = item.partition("=")
        if not sep:
            ap.error(f"--hyper {item!r}: expected KEY=VALUE")
        hyper[k] = v
    with tempfile.TemporaryDirectory(prefix="pretrain-") as tmp:
        path = Path(args.store or Path(tmp) / "pretrain.duckdb")
        store = Store(path) if path.exists() else Store.init(path)
        for preset, name in zip(todo, names):
            pretrain(store, preset, name, rows=args.rows, epochs=args.epochs, seed=args.seed,
                     hyper=hyper, out_dir=pretrained.PACKAGE_DIR, record=not args.dry_run,
                     ensemble=args.ensemble)


if __name__ == "__main__":
    main()

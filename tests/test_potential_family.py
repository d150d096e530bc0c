"""The ML potentials are a model family like every other kind (issue 23): kind 'potential' in the
one KINDS registry, versions without a weights BLOB (the weights stay in the wheel), loaded through
the one resolver only when the installed weights are the version's own."""

from __future__ import annotations

import pytest

from matstore import models, registry
from _store_data import new_store


def test_potential_is_a_kind_of_the_one_registry():
    fam = models.get("potential")
    assert "potential" in models.KINDS and not fam.weights_in_store
    assert not fam.generator and not fam.predictor and "potential" not in models.names(torch=True)
    # every other kind keeps its weights in the store
    assert all(models.get(k).weights_in_store for k in models.KINDS if k != "potential")


def test_a_weightless_version_of_another_kind_is_still_refused(tmp_path):
    rec = {"name": "x", "version": 1, "model_id": 9, "kind": "rf", "weights": None, "config": {}}
    with pytest.raises(registry.ModelError, match="has no weights stored"):
        registry.rebuild(rec)


def test_a_potential_version_whose_weights_differ_from_the_installed_ones_is_refused(tmp_path):
    pytest.importorskip("chgnet")
    from matstore.models import potential
    from matstore.models.potential.registry import register

    store = new_store(tmp_path / "s.duckdb")
    model_id, ref = register(store, "chgnet")
    rec = registry.get_record(store, ref, weights=True)
    assert rec["kind"] == "potential" and rec["weights"] is None
    assert rec["weights_sha256"] == potential.resolve("chgnet").identity()["weights_sha256"]
    forged = {**rec, "weights_sha256": "0" * 64}
    with pytest.raises(registry.ModelError, match="are not this version's"):
        registry.rebuild(forged)


@pytest.mark.slow
def test_a_registered_potential_loads_through_the_one_resolver(tmp_path):
    pytest.importorskip("chgnet")
    from ase.build import bulk

    from matstore.models.potential.registry import register

    store = new_store(tmp_path / "s.duckdb")
    _, ref = register(store, "chgnet")
    loaded = registry.resolve(store, ref)
    assert loaded.kind == "potential" and loaded.ref == ref
    (pred,) = loaded.module.predict([bulk("Si", "diamond", a=5.43)])
    assert -6.0 < pred.energy / 2 < -4.0   # CHGNet's Si: about -5.4 eV/atom (MP-compatible)

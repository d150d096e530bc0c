"""The one registry shape (matstore.plugins.Registry) the plug-in kinds share."""

from __future__ import annotations

import pytest

from matstore import features, models
from matstore.al import ACQUISITIONS, ORACLES, ALError
from matstore.plugins import Registry
from matstore.training import presets


def test_a_registry_registers_looks_up_and_names_its_choices():
    r = Registry("widget", [("a", 1)], error=ValueError)
    assert r.register("b", 2) == 2 and r.choices() == ["a", "b"] and r.lookup("b") == 2
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        r.register("a", 3)
    assert r.register("a", 3, replace=True) == 3 and r["a"] == 3
    with pytest.raises(ValueError, match=r"unknown widget 'z' \(choose one of: a, b\)"):
        r.lookup("z")
    r.unregister("b")
    assert list(r) == ["a"]


def test_every_plug_in_kind_is_a_registry():
    from matstore.validity import OXIDATION_SETS

    from matstore.sources import SOURCES

    for reg in (models.KINDS, presets.PRESETS, features.FEATURIZERS, ORACLES, ACQUISITIONS, OXIDATION_SETS,
                SOURCES):
        assert isinstance(reg, Registry) and reg.choices() == list(reg)
    with pytest.raises(ALError, match="acquisition 'nope': expected one of ucb, ei"):
        ACQUISITIONS.lookup("nope")
    with pytest.raises(presets.PresetError, match="unknown preset 'nope' .*rf-bg"):
        presets.get("nope")

"""One registry per plug-in kind (issue 11, item 2): featurizers (their face checked when the class
is created, as matminer's BaseFeaturizer), sources, model kinds, generators, training presets;
the CLI's choices are read from them."""

from __future__ import annotations

import click
import numpy as np
import pytest

from matstore import features, models
from matstore.cli import main
from matstore.compositions import CompositionBatch
from matstore.features.base import Featurizer
from matstore.sources import KNOWN_SOURCES, SOURCES, SourceError, open_source
from matstore.training.presets import PRESETS
from matstore.validity import OXIDATION_SETS

# (featurizer, first author's family name, year) of the work each one reproduces
CITED = {"magpie": ("Ward", "2016"), "onehot": ("Dan", "2020"), "fractions": ("Jha", "2018")}


def _option(command: tuple[str, ...], name: str) -> click.Parameter:
    cmd = main
    for part in command:
        cmd = cmd.commands[part]
    return next(p for p in cmd.params if p.name == name)


# --- the featurizer face --------------------------------------------------------------------------
def test_a_featurizer_without_citations_fails_at_class_creation():
    before = dict(features.FEATURIZERS)
    with pytest.raises(TypeError, match=r"Uncited does not define citations\(\)"):
        class Uncited(Featurizer):  # noqa: F841 (the class statement itself must fail)
            name, version, labels, shape = "uncited", "1", ["a", "b"], (2,)

            def transform(self, batch):
                return np.zeros((len(batch), 2))

            def implementors(self):
                return ["me"]
    with pytest.raises(TypeError, match=r"Mislabelled: 3 labels for shape \(2,\)"):
        class Mislabelled(Featurizer):  # noqa: F841
            name, version, labels, shape = "mislabelled", "1", ["a", "b", "c"], (2,)

            def transform(self, batch):
                return np.zeros((len(batch), 2))

            def citations(self):
                return ["@misc{x, title={x}, year={2024}}"]

            def implementors(self):
                return ["me"]
    with pytest.raises(TypeError, match="Nameless needs a class attribute name"):
        class Nameless(Featurizer):  # noqa: F841
            version, labels, shape = "1", ["a"], (1,)

            def transform(self, batch):
                return np.zeros((len(batch), 1))

            def citations(self):
                return ["@misc{x, title={x}, year={2024}}"]

            def implementors(self):
                return ["me"]
    with pytest.raises(TypeError, match="name 'magpie' is taken"):
        class Twin(features.FEATURIZERS["magpie"]):  # noqa: F841 (inherits the face, same name)
            pass
    assert features.FEATURIZERS == before      # nothing half-registered


def test_a_new_featurizer_registers_itself_and_is_usable_by_name():
    class Count(Featurizer):
        name, version, labels, shape = "test_n_elements", "1", ["n_elements"], (1,)

        def transform(self, batch):
            return (np.asarray(batch.z) > 0).sum(axis=1, keepdims=True).astype(np.float64)

        def citations(self):
            return ["@misc{count, title={Counting elements}, year={2024}}"]

        def implementors(self):
            return ["matstore tests"]
    try:
        assert features.FEATURIZERS["test_n_elements"] is Count
        x = features.get("test_n_elements+fractions").transform(
            CompositionBatch.from_formulas(["NaCl", "Fe2O3", "BaTiO3"]))
        assert x[:, 0].tolist() == [2, 2, 3] and x.shape == (3, 1 + 86)
    finally:
        del features.FEATURIZERS["test_n_elements"]


@pytest.mark.parametrize("name", sorted(CITED))
def test_registered_featurizers_keep_their_face(name):
    f = features.get(name)
    assert type(f) is features.FEATURIZERS[name] and f.name == name
    assert len(f.labels) == int(np.prod(f.shape)) == f.size and len(set(f.labels)) == f.size
    x = f.transform(CompositionBatch.from_formulas(["NaCl", "Fe2O3"]))
    assert x.shape == (2, *f.shape)
    author, year = CITED[name]
    cites = f.citations()
    assert len(cites) == 1 and cites[0].startswith("@article{")
    for field in ("author", "title", "journal", "year", "doi"):
        assert f"{field} = {{" in cites[0], (name, field)
    assert f"author = {{{author}," in cites[0] and f"year = {{{year}}}" in cites[0]
    assert f.implementors()


def test_every_featurizer_is_registered():
    assert set(features.FEATURIZERS) == set(CITED)
    both = features.get("fractions+magpie")
    assert both.citations() == features.get("fractions").citations() + features.get("magpie").citations()
    with pytest.raises(ValueError, match="choose one of onehot, magpie, fractions"):
        features.get("nope")


# --- model kinds, generators, presets --------------------------------------------------------------
def test_model_kinds_say_what_each_kind_is():
    assert models.PREDICTOR_KINDS == {"cnn", "elemnet", "attention", "rf"}
    assert models.GENERATOR_KINDS == {"wgan", "autoencoder", "transformer"}
    assert models.MAP_GENERATOR_KINDS == {"wgan", "autoencoder"}
    # torch modules trained and stored here; a forest is not torch, a potential is not stored here
    assert models.TORCH_KINDS == set(models.KINDS) - {"rf", "potential"}
    for name, kind in models.KINDS.items():
        # a kind is a composition generator, a predictor, or neither (a structure generator, cccgan;
        # a potential, which reads structures)
        assert kind.name == name and not (kind.predictor and kind.generator)
        assert kind.predictor or kind.generator or kind.inputs in ("image", "structure")
        assert (kind.inputs in ("maps", "tokens")) == kind.generator
    with pytest.raises(ValueError, match="unknown model kind 'svm'"):
        models.build("svm", {})
    x = np.zeros((4, 132))
    assert models.shape_input("cnn", x).shape == (4, 22, 6)
    assert models.shape_input("rf", x).shape == (4, 132)


def test_presets_name_known_kinds_and_fit_them():
    for p in PRESETS.values():
        kind = models.KINDS[p.kind]
        assert (p.property is not None) == kind.predictor, p.name
        assert p.featurizer is None or features.get(p.featurizer).size > 0
        assert isinstance(p.config(), kind.config), p.name


# --- sources ------------------------------------------------------------------------------------
def test_sources_are_one_table(store):
    seeded = {r["name"]: (r["kind"], r["method"], r["description"])
              for r in store.query("SELECT * FROM sources").iter_rows(named=True)}
    assert seeded == KNOWN_SOURCES and set(SOURCES) == set(KNOWN_SOURCES)
    with pytest.raises(SourceError, match="expected one of oqmd, mp, icsd, csv, builtin"):
        open_source("aflow")
    assert type(open_source("builtin")).__name__ == "BuiltinSource"   # opened through the table


# --- the CLI reads the registries ------------------------------------------------------------------
def test_cli_choices_come_from_the_registries():
    assert list(_option(("ingest",), "source").type.choices) == list(SOURCES)
    assert list(_option(("featurize",), "featurizer").type.choices) == list(features.FEATURIZERS)
    assert list(_option(("train",), "preset").type.choices) == list(PRESETS)
    assert list(_option(("validate",), "oxidation_set").type.choices) == list(OXIDATION_SETS)

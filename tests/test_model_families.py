"""Model families (issue 23): one kind of model is one unit (its module's family: config, input
encoding, fit, predict or sample/decode, weights, card), and everything else asks the family."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from matstore import models

PACKAGE = Path(models.__file__).resolve().parents[1]


def _family_modules() -> set[Path]:
    """The modules that define a registered family or one of its bases (they may name kinds)."""
    out = set()
    for fam in models.KINDS.values():
        for cls in type(fam).__mro__:
            if cls.__module__.startswith("matstore."):
                out.add(Path(inspect.getfile(cls)).resolve())
    return out


def _kind_comparisons(tree: ast.AST, kinds: set[str]) -> list[int]:
    """Lines of comparisons (==, !=, in, not in) with a kind's name as a string literal."""
    def names(node) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in kinds
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(names(e) for e in node.elts)
        return False

    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Compare)
            and any(names(x) for x in [n.left, *n.comparators])]


def test_no_module_outside_the_families_compares_a_kind_name():
    kinds = set(models.KINDS)
    skip = _family_modules()
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.resolve() in skip:
            continue
        lines = _kind_comparisons(ast.parse(path.read_text()), kinds)
        if lines:
            found[str(path.relative_to(PACKAGE.parent))] = lines
    assert not found, f"kind names compared outside the families: {found}"


def test_the_ast_check_finds_a_kind_comparison():
    """The check above is not vacuous: it finds the comparisons train() used to make."""
    src = 'if p.kind == "rf":\n    pass\nif p.kind in ("cnn", "elemnet"):\n    pass\nif x == "other":\n    pass\n'
    assert _kind_comparisons(ast.parse(src), set(models.KINDS)) == [1, 3]


def test_the_registry_names_the_choices_and_keeps_one_kind_per_name():
    with pytest.raises(models.ModelConfigError, match="unknown model kind 'svm' .*known: wgan, transformer"):
        models.get("svm")
    with pytest.raises(models.ModelConfigError, match="already registered"):
        class Impostor(models.ModelFamily):
            name, config, module, predictor = "rf", dict, dict, True
        models.register(Impostor())
    with pytest.raises(TypeError, match="a generator or a predictor, not both"):
        class Both(models.ModelFamily):
            name, config, module, predictor, generator = "both", dict, dict, True, True
        models.register(Both())
    assert models.get("rf").predictor and models.get("wgan").generator
    assert models.names(generator=True) == models.GENERATOR_KINDS


def test_train_is_select_split_fit_save():
    """training.train holds no kind's training: it stays short (issue 23: <= 60 lines)."""
    from matstore import training

    src = inspect.getsource(training.train)
    assert len(src.splitlines()) <= 60
    assert "family.fit" in training.train.__doc__ and "fam.fit(" in src

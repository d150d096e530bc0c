"""The package's layout rules (issue 23, item 5): no module over 400 lines, no private name
imported across modules, no import circle at module level, no two modules sharing a name (beyond
the per-package names listed below, which say what they hold inside their package)."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "matstore"
MAX_LINES = 400
# per-package conventions that predate this rule: each says what it is inside its package
SHARED_NAMES = {"base.py", "data.py", "errors.py", "store.py", "write.py"}


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _top_level_imports(tree: ast.Module) -> list:
    """Imports that run when the module is imported (not those inside functions or classes)."""
    out = []

    def visit(body):
        for n in body:
            if isinstance(n, (ast.Import, ast.ImportFrom)):
                out.append(n)
            elif isinstance(n, (ast.If, ast.Try, ast.With)):
                for b in ("body", "orelse", "finalbody"):
                    visit(getattr(n, b, []) or [])
                for h in getattr(n, "handlers", []) or []:
                    visit(h.body)

    visit(tree.body)
    return out


def _import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    graph = {}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rpartition(".")[0]
        edges = set()
        for n in _top_level_imports(ast.parse(p.read_text())):
            if isinstance(n, ast.Import):
                edges |= {a.name for a in n.names if a.name in mods}
                continue
            base = pkg
            for _ in range(max(n.level - 1, 0)):
                base = base.rpartition(".")[0]
            target = (base + ("." + n.module if n.module else "")) if n.level else (n.module or "")
            for a in n.names:   # a submodule imported by name, else the package itself
                if f"{target}.{a.name}" in mods:
                    edges.add(f"{target}.{a.name}")
                elif target in mods:
                    edges.add(target)
        edges.discard(m)
        graph[m] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _private_imports(path: Path) -> list[str]:
    """``from matstore.x import _name`` and ``module._name`` of an imported matstore module."""
    tree = ast.parse(path.read_text())
    found, modules = [], set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and (n.level or (n.module or "").startswith("matstore")):
            for a in n.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"{n.lineno}: import {a.name}")
                else:
                    modules.add(a.asname or a.name)
        elif isinstance(n, ast.Import):
            modules |= {(a.asname or a.name).split(".")[0] for a in n.names if a.name.startswith("matstore")}
    found += [f"{n.lineno}: {n.value.id}.{n.attr}" for n in ast.walk(tree)
              if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in modules
              and n.attr.startswith("_") and not n.attr.startswith("__")]
    return found


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_private_name_crosses_a_module():
    found = {str(p.relative_to(PACKAGE.parent)): f for p in PACKAGE.rglob("*.py") if (f := _private_imports(p))}
    assert not found, f"private names imported across modules: {found}"


def test_no_import_circle():
    assert _cycles(_import_graph(_modules())) == []


def test_no_two_modules_share_a_name():
    names = Counter(p.name for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")
    assert {n for n, k in names.items() if k > 1} <= SHARED_NAMES


def test_the_checks_find_what_they_look_for(tmp_path):
    """The checks are not vacuous: a circle, a private import and a module attribute are found."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    f = tmp_path / "m.py"
    f.write_text("from matstore.training import _init_output_bias\nfrom matstore import hulls\n"
                 "x = hulls._formulas_arrow\n")
    assert _private_imports(f) == ["1: import _init_output_bias", "3: hulls._formulas_arrow"]

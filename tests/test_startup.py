"""Start-up: the CLI loads heavy packages only inside the commands that use them (issue 31).

Checked through sys.modules in a fresh interpreter, not by timing (timings fail on busy machines)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "pymatgen", "sklearn", "umap", "matminer", "elementembeddings", "chgnet", "sevenn",
         "distributed", "pandas", "smact", "ase")


def _loaded_after(code: str) -> list[str]:
    probe = (f"import sys, json\n{code}\n"
             f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_imports_no_heavy_package():
    code = ("import matstore.cli\n"
            "from click.testing import CliRunner\n"
            "r = CliRunner().invoke(matstore.cli.main, ['--help'])\n"
            "assert r.exit_code == 0 and 'generate' in r.output, r.output")
    assert _loaded_after(code) == []


# (featurize --help lists the featurizers, which is their registry's import)
@pytest.mark.parametrize("command", ["generate", "predict", "validate", "ingest", "query", "stability"])
def test_command_help_imports_no_heavy_package(command):
    code = ("import matstore.cli\n"
            "from click.testing import CliRunner\n"
            f"r = CliRunner().invoke(matstore.cli.main, [{command!r}, '--help'])\n"
            "assert r.exit_code == 0 and 'Usage' in r.output, r.output")
    assert _loaded_after(code) == []


def test_query_imports_no_heavy_package(tmp_path):
    from click.testing import CliRunner

    from matstore.cli import main

    db = str(tmp_path / "s.duckdb")
    assert CliRunner().invoke(main, ["init", db]).exit_code == 0   # (init may load more: not timed)
    code = ("import matstore.cli\n"
            "from click.testing import CliRunner\n"
            f"r = CliRunner().invoke(matstore.cli.main, ['query', '--db', {db!r}, '--csv', 'select 41 + 1 AS x'])\n"
            "assert r.exit_code == 0 and '42' in r.output, r.output")
    assert _loaded_after(code) == []


def test_validate_help_names_the_default_set():
    # the default is resolved when the command runs (validity is not imported for --help)
    from click.testing import CliRunner

    from matstore.cli import main
    from matstore.validity import DEFAULT_SET

    out = CliRunner().invoke(main, ["validate", "--help"]).output
    assert DEFAULT_SET in out


def test_loading_an_attention_model_imports_no_umap(tmp_path):
    # its element vectors are stored with the weights: elementembeddings (-> umap -> sklearn) is
    # only needed to build a new one
    from click.testing import CliRunner

    from matstore.cli import main

    db = str(tmp_path / "s.duckdb")
    assert CliRunner().invoke(main, ["init", db]).exit_code == 0
    r = CliRunner().invoke(main, ["models", "import", "--pretrained", "oqmd-attn-fe", "--db", db])
    assert r.exit_code == 0, r.output
    code = ("from matstore.store import Store\n"
            "from matstore.registry import load_model\n"
            f"m = load_model(Store({db!r}), 'oqmd-attn-fe')\n"
            "assert float(m.module.table.abs().sum()) > 0   # the vectors came from the weights")
    loaded = _loaded_after(code)
    assert "torch" in loaded and not {"umap", "sklearn", "elementembeddings"} & set(loaded)


def test_shipped_catalogue_snapshot_is_current_and_equals_the_migrations():
    """catalogue.json spares every process running all migrations in memory; it must be the one
    these migrations and this DuckDB build (after adding a migration: python -m matstore.catalogue)."""
    from matstore import catalogue, migrations

    snap = json.loads(catalogue._SNAPSHOT.read_text())
    assert snap["key"] == catalogue.snapshot_key(), "stale: run python -m matstore.catalogue"
    v = migrations.latest_version()
    tables, columns = catalogue._live(v)
    assert catalogue.expected_tables(v) == tables and len(tables) > 20
    assert catalogue._package_columns(v) == columns
    from matstore.views import normalized_view_sql
    assert catalogue.package_view_sql() == normalized_view_sql() and len(snap["views"]) > 20


def test_counting_a_models_parameters_loads_no_compiler_stack():
    """bounds.model_values builds on the meta device; meta normal_/arange would import sympy and
    torch._dynamo (seconds of generate's start-up). Same count as a real build; bound enforced."""
    code = ("import sys, torch, matstore.models as M\n"
            "from matstore import bounds\n"
            "from matstore.models.transformer import TransformerConfig\n"
            "cfg = TransformerConfig().to_dict()\n"
            "n = bounds.model_values('transformer', cfg, M.build)\n"
            "assert 'sympy' not in sys.modules and 'torch._dynamo' not in sys.modules\n"
            "m = M.build('transformer', cfg)\n"
            "assert n == sum(p.numel() for p in m.parameters()) + sum(b.numel() for b in m.buffers())\n"
            "big = dict(cfg, d_model=4096, d_ff=65536, n_layers=64)\n"
            "try:\n    bounds.model_values('transformer', big, M.build)\nexcept bounds.BoundsError:\n    pass\n"
            "else:\n    raise AssertionError('no BoundsError')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr

"""The installed wheel works outside the repo: sql/ and migrations/ travel inside it."""

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(REPO)], check=True)
    (whl,) = out.glob("matstore-*.whl")
    return whl


def test_wheel_carries_sql_and_migrations(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in (REPO / "sql").glob("*.sql"):
        assert f"matstore/sql/{f.name}" in names
    for f in (REPO / "migrations").glob("*.sql"):
        assert f"matstore/migrations/{f.name}" in names
    assert "matstore/cli/__init__.py" in names and "matstore/cli/__main__.py" in names


def test_wheel_carries_the_shipped_models_within_their_size_limit(wheel):
    """Every pretrained file the manifest lists is in the wheel; all together stay small."""
    import json

    z = zipfile.ZipFile(wheel)
    manifest = json.loads(z.read("matstore/pretrained/MANIFEST.json"))
    assert {"oqmd-attn-fe", "oqmd-bg-two-stage", "transformer-mp"} <= set(manifest)
    sizes = {i.filename: i.file_size for i in z.infolist()}
    for name, entry in manifest.items():
        assert sizes[f"matstore/pretrained/{entry['file']}"] == entry["bytes"], name
    assert sum(e["bytes"] for e in manifest.values()) < 40 * 2**20


@pytest.mark.slow
def test_installed_wheel_runs_from_a_temporary_directory(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    vpy = venv / "bin" / "python"
    # dependencies come from this environment; matstore itself only from the wheel
    site = subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(vpy), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    where = subprocess.run([str(vpy), "-c", "import matstore, sys; print(matstore.__file__)"],
                           cwd=work, env=env, check=True, capture_output=True, text=True).stdout
    assert str(venv) in where and str(REPO) not in where
    run = lambda *a: subprocess.run([str(venv / "bin" / "matstore"), *a], cwd=work, env=env,
                                    check=True, capture_output=True, text=True)
    run("init", "study.duckdb")
    out = run("query", "SELECT count(*) AS n FROM known", "--db", "study.duckdb", "--csv").stdout
    assert out.splitlines() == ["n", "0"]
    info = run("info", "--db", "study.duckdb").stderr + run("info", "--db", "study.duckdb").stdout
    assert "schema" in info
    # a fresh machine generates and predicts with the shipped models, no training
    run("generate", "--model", "transformer-mp", "-n", "300", "--db", "study.duckdb", "--no-progress")
    run("predict", "--model", "oqmd-attn-fe", "--db", "study.duckdb", "--no-progress")
    out = run("query", "SELECT count(DISTINCT p.composition_id) AS n FROM predictions p "
                       "JOIN model_refs m USING (model_id) WHERE m.name = 'oqmd-attn-fe'",
              "--db", "study.duckdb", "--csv").stdout
    assert int(out.splitlines()[1]) > 100

"""Every command of the README's study runs, as written, on a small real store (issue 23, point 6).

The commands come from the README itself (scripts/readme_study.py reads every ```sh block of
"## A study, step by step"), so the test breaks when the README and the command line diverge: an
option renamed or removed, a command that no longer parses, a step that fails on a fresh store
(e.g. a shipped model name that does not import itself).

Substitution rule (the only changes made to the README's commands, to keep this under a minute):
- `$D` is a folder of seeded random samples of the shared files, same paths and columns:
  SAMPLE_ROWS rows of each property CSV, STRUCTURE_ROWS perovskites; the Mg-Mn-O images are the
  real file;
- sizes shrink, never grow: `-n` to at most N_SAMPLES, `--max-rows` to at most MAX_ROWS,
  `--epochs` / `--rounds` to 1, `--base-rows` to at most 150, `al start --batch-size` to at most 10,
  `--per-composition` to 2, `--max-steps` to at most 3;
- everything else (options, names, SQL, the order of the steps) is the README's.
Commands run in one process through click (as the shell would call them, in a fresh folder with
`export`ed variables applied), each checked to exit 0; a few outputs are checked beyond that.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from matstore.cli import main

REPO = Path(__file__).resolve().parents[1]
SAMPLE_ROWS, STRUCTURE_ROWS, N_SAMPLES, MAX_ROWS = 2000, 300, 300, 1500
SHRINK = {"-n": N_SAMPLES, "--max-rows": MAX_ROWS, "--epochs": 1, "--rounds": 1, "--base-rows": 150,
          "--per-composition": 2, "--max-steps": 3}
CSVS = ["oqmd/formation_enthalpy_train.csv", "oqmd/bandgap_train.csv", "mp/e_form.csv", "mp/gap.csv",
        "expt/expt_gap.csv"]


def _study_module():
    spec = importlib.util.spec_from_file_location("readme_study", REPO / "scripts" / "readme_study.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def readme_commands() -> list[str]:
    return _study_module().commands((REPO / "README.md").read_text())


def shrink(words: list[str]) -> list[str]:
    """The substitution rule above, on one command's words."""
    out = list(words)
    for i, w in enumerate(out[:-1]):
        limit = SHRINK.get(w)
        if w == "--batch-size" and out[1:3] == ["al", "start"]:
            limit = 10
        if limit is not None and re.fullmatch(r"\d+", out[i + 1]):
            out[i + 1] = str(min(int(out[i + 1]), limit))
    return out


@pytest.fixture(scope="module")
def small_data(shared_data, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("D")
    for rel in CSVS:
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        df = pl.read_csv(shared_data / rel)
        df.sample(min(SAMPLE_ROWS, df.height), seed=0).write_csv(d / rel)
    perov = d / "structures" / "perov_5"
    perov.mkdir(parents=True)
    pl.read_csv(shared_data / "structures/perov_5/val.csv").sample(STRUCTURE_ROWS, seed=0).write_csv(
        perov / "val.csv")
    (d / "structures" / "mgmno").symlink_to(shared_data / "structures" / "mgmno")
    return d


def test_the_readme_study_is_parsed_into_every_step():
    cmds = readme_commands()
    text = " ".join(cmds)
    # one command per step of the study, each reached by the parser (a block lost = a step untested)
    for needle in ("matstore init", "ingest oqmd", "ingest csv", "matstore info", "matstore train --model",
                   "models show", "generate --model", "matstore predict", "matstore stability",
                   "matstore validate", "matstore bias", "screen_stable_semiconductors", "matstore report",
                   "export parquet", "matstore merge", "al start", "al step", "al finish",
                   "ingest structures", "structures predict", "matstore relax", "enumerate",
                   "train-cccgan", "cccgan-mgmno"):
        assert needle in text, needle
    assert all(c.startswith(("matstore ", "export ")) for c in cmds), [c for c in cmds if not
                                                                       c.startswith(("matstore ", "export "))]
    # the shrink rule only lowers sizes
    assert shrink(["matstore", "generate", "-n", "100000", "--seed", "1"])[3] == str(N_SAMPLES)
    assert shrink(["matstore", "al", "start", "--batch-size", "100"])[4] == "10"
    assert shrink(["matstore", "train", "--epochs", "1"])[3] == "1"


def test_readme_info_output_shows_the_current_schema():
    """The README's `info` output is real: its schema number is today's (issue 23: it showed 7)."""
    from matstore.migrations import latest_version

    readme = (REPO / "README.md").read_text()
    shown = re.findall(r"study\.duckdb\s+schema (\d+) \(code (\d+)\)", readme)
    assert shown, "README's study shows no `info` output"
    assert {int(a) for a, b in shown} | {int(b) for a, b in shown} == {latest_version()}


@pytest.mark.slow
def test_every_readme_study_command_runs_on_a_small_real_store(small_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"D": str(small_data), "COLUMNS": "200"}
    outputs = []
    for cmd in readme_commands():
        words = shlex.split(cmd.replace("\\\n", " "), comments=True)  # bash joins a backslash-newline
        if words[0] == "export":  # export VAR=VALUE: the study's shell variables
            name, value = words[1].split("=", 1)
            env[name] = str(small_data) if name == "D" else value
            continue
        words = [re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), m.group(0)), w)
                 if not w.startswith(("SELECT", "'")) and "$" in w and "/" in w else w for w in words]
        args = shrink(words)[1:]
        res = CliRunner().invoke(main, args, env={**env, "MATSTORE_DB": env.get("MATSTORE_DB", "")})
        assert res.exit_code == 0, f"README command failed: {cmd}\n{res.output[-3000:]}\n{res.exception!r}"
        outputs.append((cmd, res.output))
    out = dict(outputs)
    # a few outputs beyond exit 0: shipped models imported by name on this fresh store, the store's
    # own schema, a campaign that labelled something, structures relaxed
    joined = "\n".join(o for _, o in outputs)
    assert re.search(r"imported the shipped model oqmd-attn-fe@", joined), joined[-2000:]
    assert re.search(r"imported the shipped model gan-mp-small@", joined)
    info = next(o for c, o in outputs if c == "matstore info")
    from matstore.migrations import latest_version
    assert f"schema {latest_version()} (code {latest_version()})" in info
    assert os.path.isfile(tmp_path / "report" / "index.html")
    assert (tmp_path / "export" / "manifest.json").is_file()
    relaxed = next(o for c, o in out.items() if c.startswith("matstore query 'SELECT c.formula, r.status"))
    assert "SrTiO3" in relaxed or "BaSnO3" in relaxed or "CsPbI3" in relaxed, relaxed

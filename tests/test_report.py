"""The run report on a small real store (OQMD formation energies and band gaps, MP band gaps,
ICSD-like compositions; tiny random forests and a tiny WGAN trained here): the page's sections,
tables and images, the numbers behind them, and a headless-Chromium screenshot of the page."""

from __future__ import annotations

import math
import os
import re
import shutil
from decimal import Decimal
from html.parser import HTMLParser

import numpy as np
import polars as pl
import pytest
import torch

from _store_data import fill, new_store
from matstore.report.browser import find_browser, screenshot

SECTIONS = ["summary", "hits", "structures", "accuracy", "fe-bg", "band-gaps", "elements", "quality", "curves"]
WINDOW = (1600, 3000)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def study(tmp_path_factory, read_formulas):
    """A store after ingest -> train (FE, band gap, GAN) -> generate with validate + predict."""
    from matstore import runner
    from matstore.store import Store
    from matstore.training import train

    torch.set_num_threads(1)   # 2 shared cores: contending threads are much slower

    def sample(rel, n):
        return read_formulas(rel).sample(fraction=1.0, shuffle=True, seed=0).head(n)

    store = new_store(tmp_path_factory.mktemp("report") / "r.duckdb")
    fill(store, "oqmd", sample("oqmd/formation_enthalpy_train.csv", 800), "formation_energy_per_atom",
         ingest_id=1)
    fill(store, "oqmd", sample("oqmd/bandgap_train.csv", 800), "band_gap", unit="eV", ingest_id=2)
    fill(store, "mp", sample("mp/gap.csv", 500), "band_gap", unit="eV", ingest_id=3)
    fill(store, "icsd", read_formulas("matgan/gan_icsd_generated_1024.csv").head(300), None, ingest_id=4)
    kw = dict(device="cpu", seed=0, progress=False, target_source="oqmd",
              config={"n_estimators": 20, "n_jobs": 1})
    fe, bg = train(store, "rf-fe", **kw), train(store, "rf-bg", **kw)
    # a few steps from an output bias just under the decode threshold: a real GAN whose samples
    # decode to ~1,000 distinct, mostly novel compositions
    gan = train(store, "gan-icsd", epochs=3, device="cpu", seed=0, max_steps=5, max_rows=200,
                progress=False, n_eval_samples=100, output_bias=-2.0)
    run = runner.generate(store, gan.ref, 3000, batch_size=500, seed=0, device="cpu", progress=False,
                          stages=runner.Stages(validate=True, predict=(fe.ref, bg.ref)))
    return store, run.run_id, {"fe": fe, "bg": bg, "gan": gan}


@pytest.fixture(scope="module")
def report(study, tmp_path_factory):
    from matstore.report import write_report

    store, run_id, _ = study
    index = write_report(store, tmp_path_factory.mktemp("out") / "rep", run_id=run_id)
    return index, _parse(index.read_text())


class _Page(HTMLParser):
    """Sections (id -> heading), tables per section (header + rows), img srcs, text."""

    def __init__(self):
        super().__init__()
        self.sections, self.tables, self.imgs, self.empty = {}, {}, [], {}
        self._sec = self._tag = None
        self._row = self._cls = None
        self.text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self._sec = a.get("id")
            self.sections[self._sec] = ""
            self.tables[self._sec], self.empty[self._sec] = [], []
        elif tag == "table":
            self.tables[self._sec].append([])
        elif tag == "tr":
            self._row = []
            self.tables[self._sec][-1].append(self._row)
        elif tag == "img":
            self.imgs.append(a["src"])
        self._tag, self._cls = tag, a.get("class")

    def handle_data(self, data):
        self.text.append(data)
        if self._tag == "h2" and self._sec:
            self.sections[self._sec] += data
        elif self._tag in ("td", "th") and self._row is not None:
            self._row.append(data)
        elif self._tag == "p" and self._cls == "empty" and self._sec:
            self.empty[self._sec].append(data)

    def handle_endtag(self, tag):
        self._tag = None


def _parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    return p


def test_numbers_are_formatted_for_people():
    from matstore.report.page import fmt

    assert fmt(1516.3832101424118) == "1,516"
    assert fmt(12345) == "12,345" and fmt(Decimal(3000)) == "3,000"
    assert fmt(0.38640424858875005) == "0.386" and fmt(-0.000123456) == "-0.000123"
    assert fmt(97.26) == "97.3" and fmt(2.0) == "2" and fmt(0.0) == "0"
    assert fmt(None) == "–" and fmt(float("nan")) == "–" and fmt(True) == "yes"


@pytest.mark.slow
def test_report_has_every_section_with_tables_and_real_pngs(study, report):
    store, run_id, _ = study
    index, page = report
    assert list(page.sections) == SECTIONS
    assert all(page.sections[s].strip() for s in SECTIONS)
    # run summary: generation_stats as a table, formatted
    stats = store.query("SELECT * FROM generation_stats WHERE run_id = ?", [run_id]).row(0, named=True)
    kv = dict(page.tables["summary"][0][i] for i in range(len(page.tables["summary"][0])))
    assert kv["samples drawn"] == f"{int(stats['n_samples']):,}"
    assert kv["samples / s"] == f"{stats['rows_per_s']:,.0f}" and "." not in kv["samples / s"]
    html = index.read_text()
    assert str(stats["rows_per_s"]) not in html
    long = [m.group(0) for m in re.finditer(r">-?(\d+)\.(\d+)<", html)
            if len((m.group(1) + m.group(2)).lstrip("0")) > 3]   # 0.0205 has 3 significant digits
    assert not long, f"table cells with more than 3 significant digits: {long[:5]}"
    # provenance: the models used and the sources
    models = {r[0] for r in page.tables["summary"][1][1:]}
    assert models == {"rf-fe@1", "rf-bg@1", "gan-icsd@1"}
    sources = {r[0]: r for r in page.tables["summary"][2][1:]}
    assert set(sources) == {"mp", "oqmd"}
    # every image exists next to index.html and is a non-trivial PNG
    assert sorted(page.imgs) == ["band_gaps.png", "element_counts.png", "element_frequency.png",
                                 "fe_vs_band_gap.png", "parity_0.png", "parity_1.png",
                                 "recovery_curve.png", "uniqueness_curve.png"]
    for src in page.imgs:
        f = index.parent / src
        assert f.read_bytes()[:8] == PNG_MAGIC and f.stat().st_size > 5000, src


def test_quality_section_shows_the_runs_generation_quality_row_first(study, tmp_path):
    from matstore import quality
    from matstore.report import write_report
    from matstore.report.page import fmt

    store, run_id, _ = study
    page = _parse(write_report(store, tmp_path / "before", run_id=run_id).read_text())
    assert page.empty["quality"] and f"matstore quality --run {run_id}" in page.empty["quality"][0]
    row = quality.measure(store, run_id)
    page = _parse(write_report(store, tmp_path / "after", run_id=run_id).read_text())
    head, first = page.tables["quality"][0][0], page.tables["quality"][0][1]
    cells = dict(zip(head, first))
    assert cells["run"] == str(run_id) and cells["generator"] == "gan-icsd@1"
    assert cells["samples"] == f"{row['n_samples']:,}"
    for label, key, digits in (("both %", "both_valid_pct", 1), ("unique %", "unique_pct", 1),
                               ("TV element count", "tv_element_count", 4)):
        assert cells[label] == fmt(round(row[key], digits)), label
    assert not page.empty["quality"]


@pytest.mark.slow
def test_top_hits_are_the_screens_rows_with_oxidation_states_and_models(study, report):
    from matstore.report import run_screen

    store, run_id, _ = study
    _, page = report
    header, *rows = page.tables["hits"][0]
    assert rows, "this store's run has screen hits"
    assert {"formula", "oxidation states", "formation-energy model", "band-gap model"} <= set(header)
    col = {h: i for i, h in enumerate(header)}
    expect = run_screen(store, "semiconductors").filter(pl.col("composition_id").is_in(
        store.query("SELECT composition_id FROM generated WHERE run_id = ?", [run_id])["composition_id"]
        .to_list()))
    assert [r[col["formula"]] for r in rows] == expect["formula"].head(20).to_list()
    ions = store.query("SELECT formula, ions FROM candidates WHERE formula IN (SELECT unnest(?))",
                       [expect["formula"].to_list()])
    ions = dict(ions.iter_rows())
    assert all(r[col["oxidation states"]] == ions[r[col["formula"]]] for r in rows)
    assert all(r[col["formation-energy model"]] == "rf-fe@1" and r[col["band-gap model"]] == "rf-bg@1"
               for r in rows)


@pytest.mark.slow
def test_parity_is_recomputed_on_the_registered_test_split(study):
    from matstore.report.data import report_data

    store, run_id, models = study
    d = report_data(store, run_id)
    got = {p.model: p for p in d.parity}
    assert set(got) == {"rf-fe@1", "rf-bg@1"}
    for key in ("fe", "bg"):
        mv, p = models[key], got[models[key].ref]
        assert p.how == "recomputed"
        test = mv.metrics["test"]
        # the same compositions and targets as training's test metric: the same MAE
        assert p.n_test == test["n"] == len(p.y_true)
        assert math.isclose(float(np.mean(np.abs(p.y_pred - p.y_true))), test["mae"], rel_tol=1e-9)
    # band gaps stay per source: the report's rows per source are each source's own values
    per = dict(d.band_gaps.group_by("source").len().iter_rows())
    raw = store.query("SELECT source, count(DISTINCT p.composition_id) AS n FROM properties p "
                      "JOIN materials USING (material_id) WHERE name = 'band_gap' GROUP BY source")
    assert per == dict(raw.iter_rows())
    # the recovery curve ends at novelty_recovery's counts
    last = d.recovery.group_by("set_name").agg(pl.col("recovered").last(), pl.col("samples_drawn").last())
    final = dict(d.recovery_final.select("set_name", "n_recovered").iter_rows())
    assert set(final) == set(last["set_name"]) == {f"gan-icsd@1/{r}" for r in ("train", "val", "test")}
    assert all(final[n] == r for n, r in last.select("set_name", "recovered").iter_rows())
    assert (last["samples_drawn"] == 3000).all()
    # training compositions = the generator's own 'train' split
    assert d.train_label == "training set"
    n_train = d.n_elements.filter(pl.col("set") == "training")["n"].sum()
    assert n_train == store.query("SELECT count(*) AS n FROM composition_sets WHERE model_id = ? AND "
                                  "role = 'train'", [models["gan"].model_id])["n"][0]


def test_sections_without_data_say_so_in_one_line(tmp_path, read_formulas):
    from _runner_helpers import ReplayGenerator
    from matstore import runner
    from matstore.report import write_report
    from matstore.store import Store

    store = new_store(tmp_path / "e.duckdb")
    df = read_formulas("oqmd/formation_enthalpy_train.csv").head(300)
    fill(store, "oqmd", df, "formation_energy_per_atom")
    run = runner.generate(store, ReplayGenerator(df["formula"].to_list()), 500, batch_size=250, seed=1,
                          device="cpu", progress=False)
    index = write_report(store, tmp_path / "rep", run_id=run.run_id)
    page = _parse(index.read_text())
    assert list(page.sections) == SECTIONS
    for sec in ("hits", "structures", "accuracy", "fe-bg", "band-gaps"):
        assert len(page.empty[sec]) == 1 and page.empty[sec][0].strip(), sec
    assert sorted(page.imgs) == ["element_counts.png", "element_frequency.png", "uniqueness_curve.png"]


def test_structures_section_shows_the_candidates_predicted_structures(tmp_path, read_formulas):
    from _runner_helpers import ReplayGenerator
    from pymatgen.core import Composition, Lattice, Structure

    from matstore import runner
    from matstore.report import write_report
    from matstore.store import Store
    from matstore.structures import write_structures

    store = new_store(tmp_path / "s.duckdb")
    df = read_formulas("oqmd/formation_enthalpy_train.csv").head(200)
    fill(store, "oqmd", df, "formation_energy_per_atom")
    run = runner.generate(store, ReplayGenerator(df["formula"].to_list()), 300, batch_size=150, seed=1,
                          device="cpu", progress=False)
    formulas = store.query("SELECT formula FROM candidates WHERE n_elements <= 3 ORDER BY composition_id "
                           "LIMIT 3")["formula"].to_list()
    toy = []
    for f in formulas:   # a toy cell per candidate: atoms on a 3 A grid
        species = [str(el) for el, n in Composition(f).items() for _ in range(int(n))]
        side = int(np.ceil(len(species) ** (1 / 3)))
        toy.append(Structure(Lattice.cubic(3.0 * side), species,
                             [((i % side) / side, (i // side % side) / side, (i // side // side) / side)
                              for i in range(len(species))]))
    write_structures(store, toy, "template", "test-grid", details={"rank": 1, "template_formula": "X"})
    index = write_report(store, tmp_path / "rep", run_id=run.run_id)
    page = _parse(index.read_text())
    rows = page.tables["structures"][0]
    assert len(rows) == 1 + len(formulas) and {r[0] for r in rows[1:]} == set(formulas)
    assert "structures.png" in page.imgs
    for r in rows[1:]:
        assert (index.parent / r[-1]).read_text().startswith("# generated using pymatgen")


@pytest.mark.skipif(find_browser() is None, reason="no chromium binary on PATH (apt-get install chromium): "
                                                 "the report is not rendered in a browser here")
@pytest.mark.slow
def test_report_renders_in_headless_chromium(report, tmp_path):
    import matplotlib.image as mpimg

    index, _ = report
    png = screenshot(index, tmp_path / "report.png", WINDOW)
    if os.environ.get("MATSTORE_REPORT_SCREENSHOT"):   # keep a copy to look at
        shutil.copy(png, os.environ["MATSTORE_REPORT_SCREENSHOT"])
    assert png.read_bytes()[:8] == PNG_MAGIC
    img = mpimg.imread(png)
    assert img.shape[:2] == (WINDOW[1], WINDOW[0])
    grey = img[..., :3].mean(axis=2)
    assert grey.std() > 0.05, "the screenshot is blank"
    # the figures were drawn: a good share of the page is neither background nor white
    _, counts = np.unique((grey * 255).astype(np.uint8), return_counts=True)
    assert counts.max() / grey.size < 0.8
    # the page fills the wide window: ink in the right third, not one narrow column
    assert grey[:, 2 * WINDOW[0] // 3:].std() > 0.05


@pytest.mark.slow
def test_screenshot_without_a_browser_is_a_clear_error(report, tmp_path, monkeypatch):
    from matstore.report import ReportError

    monkeypatch.setenv("PATH", str(tmp_path))   # no chromium anywhere on it
    with pytest.raises(ReportError, match="no Chromium found.*apt-get install chromium"):
        screenshot(report[0], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()

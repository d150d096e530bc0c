"""index.html: a wide-screen page (CSS grid of figures) with formatted numbers and tables."""

from __future__ import annotations

import datetime as dt
import html
import math
from decimal import Decimal
from pathlib import Path

import polars as pl

from ..store import Store
from . import plots
from .data import HIT_SCREENS, UNITS, ReportData, report_data
from .screens import latest_run
from .structures import section as structures_section

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#222}
main{max-width:1600px;margin:0 auto;padding:16px 28px}
.sections{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:16px;align-items:stretch}
.sections>section{grid-column:1/-1}.sections>section.span1{grid-column:span 1}.sections>section.span2{grid-column:span 2}
@media (max-width:1100px){.sections>section.span1,.sections>section.span2{grid-column:1/-1}}
h1{margin:8px 0 2px}h2{margin:0 0 8px;font-size:1.25em;border-bottom:2px solid #1f77b4;padding-bottom:3px}
.sub{color:#666;margin:0 0 14px}
section{background:#fff;border-radius:8px;padding:14px 18px;margin:0;box-shadow:0 1px 3px #0002}
.cols{display:grid;grid-template-columns:minmax(0,2fr) minmax(0,3fr);gap:16px;align-items:start}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:14px}
figure{margin:0}figure img{width:100%;height:auto;display:block}
figure.wide{grid-column:1/-1}figure.wide img{width:auto;max-width:100%}
figcaption{color:#555;font-size:.85em;margin-top:4px}
table{border-collapse:collapse;font-size:.88em;width:100%}
th,td{border-bottom:1px solid #e3e3e3;padding:3px 8px;text-align:left;vertical-align:top}
td{white-space:nowrap}
th{background:#f0f3f7;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.kv th{width:38%}.empty{color:#888;font-style:italic;margin:4px 0}
.scroll{overflow-x:auto}
.g12{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,2fr);gap:14px;align-items:end}
.g111{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:14px;align-items:start}
"""


def fmt(v) -> str:
    """A cell: thousands separators for integers, 3 significant digits for floats."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, Decimal):  # DuckDB's sum() of integers
        v = int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if v != 0 and abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{float(f'{v:.3g}'):g}" if v != 0 else "0"
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt(x) for x in v)
    return str(v)


def _is_num(v) -> bool:
    return isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)


def table(df: pl.DataFrame, headers: dict[str, str] | None = None) -> str:
    headers = headers or {}
    head = "".join(f"<th>{html.escape(headers.get(c, c))}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(f'<td{" class=num" if _is_num(v) else ""}>{html.escape(fmt(v))}</td>'
                                    for v in r) + "</tr>" for r in df.iter_rows())
    return f"<div class=scroll><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"


def kv_table(d: dict, labels: dict[str, str]) -> str:
    rows = "".join(f"<tr><th>{html.escape(labels.get(k, k))}</th>"
                   f'<td{" class=num" if _is_num(v) else ""}>{html.escape(fmt(v))}</td></tr>'
                   for k, v in d.items())
    return f"<table class=kv>{rows}</table>"


def _empty(text: str) -> str:
    return f"<p class=empty>{html.escape(text)}</p>"


STAT_LABELS = {"run_id": "run", "model": "generator", "n_requested": "samples requested",
               "n_batches": "batches", "n_samples": "samples drawn", "n_decodable": "decodable samples",
               "decodable_pct": "decodable (%)", "n_unique": "distinct compositions",
               "unique_pct": "unique (% of decodable)", "n_novel": "novel compositions",
               "novel_pct": "novel (% of distinct)", "n_checked": "validity checked",
               "valid_pct": "valid (% of checked)", "rows_per_s": "samples / s"}
HIT_HEADERS = {"pred_formation_energy_per_atom": "pred. formation energy (eV/atom)",
               "pred_band_gap": "pred. band gap (eV)", "e_above_hull": "E above hull (eV/atom)",
               "ions": "oxidation states", "fe_model": "formation-energy model",
               "band_gap_model": "band-gap model", "times_generated": "times generated",
               "generated_by": "generator", "reference": "hull reference"}


class _Figures:
    def __init__(self, out: Path):
        self.out = out
        self.names: list[str] = []

    def __call__(self, fig, name: str, caption: str, empty: str, wide: bool = False) -> str:
        if fig is None:
            return _empty(empty)
        plt = plots.pyplot()
        fig.tight_layout()
        fig.savefig(self.out / name, dpi=110)
        plt.close(fig)
        self.names.append(name)
        cls = " class=wide" if wide else ""
        return (f'<figure{cls}><img src="{html.escape(name)}" alt="{html.escape(caption)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _sections(store: Store, d: ReportData, fig: _Figures) -> list[tuple[str, str, str]]:
    """(id, heading, html) per section, in page order."""
    s = []
    models = d.models.select("ref", "kind", "property", "target_source", "training_rows", "test_mae",
                             "test_r2", pl.col("created_at").dt.strftime("%Y-%m-%d").alias("created"))
    s.append(("summary", "Run summary and provenance",
              "<div class=cols><div><h3>generation_stats</h3>"
              + kv_table({k: v for k, v in d.stats.items() if k in STAT_LABELS or k in ("seed", "device", "status")},
                         STAT_LABELS)
              + "</div><div><h3>Models used</h3>"
              + table(models, {"ref": "model", "target_source": "trained on source",
                               "training_rows": "training rows", "test_mae": "test MAE",
                               "test_r2": "test R²"})
              + "<h3>Data sources</h3>"
              + (table(d.sources, {"with_formation_energy": "with formation energy",
                                   "with_band_gap": "with band gap"}) if d.sources.height
                 else _empty("no source values stored"))
              + "</div></div>"))
    if d.hits_screen:
        tried = HIT_SCREENS[:HIT_SCREENS.index(d.hits_screen)]
        body = (f"<p class=sub>screen_{d.hits_screen} over this run's compositions, top {d.hits.height:,}"
                + (f" ({', '.join('screen_' + t for t in tried)}: no hits in this run)" if tried else "")
                + "</p>" + table(d.hits, HIT_HEADERS))
    else:
        body = _empty("No composition of this run passes screen_stable_semiconductors, "
                      "screen_semiconductors or screen_stable_novel.")
    s.append(("hits", "Screen: top hits", body))
    s.append(("structures", "Predicted structures of the candidates",
              structures_section(store, d.run_id, fig.out, fig, table, _empty)))

    figs = []
    for i, p in enumerate(d.parity):
        figs.append(fig(plots.parity(p), f"parity_{i}.png",
                        f"{p.model}: predicted vs true {p.prop} ({UNITS.get(p.prop, '')}) on its registered "
                        f"test split ({p.n_test:,} compositions, {p.target_source}); predictions {p.how}.",
                        f"{p.model} ({p.prop}): no parity plot: {p.how}."))
    s.append(("accuracy", "Predictor accuracy on the test split",
              f"<div class=grid>{''.join(figs)}</div>" if figs
              else _empty("No property predictor with a registered test split predicted this run.")))

    s.append(("fe-bg", "Formation energy vs band gap of the candidates",
              "<div class=grid>" + fig(plots.fe_vs_bg(d), "fe_vs_band_gap.png",
                                       "Predicted values of the run's distinct compositions; green: the "
                                       "screening window (FE < 0 eV/atom, 1.0 ≤ band gap ≤ 2.0 eV).",
                                       "No candidate of this run has both a predicted formation energy "
                                       "and a predicted band gap.") + "</div>"))
    s.append(("band-gaps", "Band gaps per source",
              "<div class=grid>" + fig(plots.band_gap_histograms(d), "band_gaps.png",
                                       "Band-gap histograms, one per source (values of different sources "
                                       "are never pooled), log-scale counts; green: 1–2 eV.",
                                       "No band gaps stored or predicted.", wide=True) + "</div>"))
    s.append(("elements", "Generated vs training compositions",
              "<div class=g12>"
              + fig(plots.element_counts(d), "element_counts.png",
                    f"Elements per composition: the run's distinct compositions vs the {d.train_label}.",
                    "No compositions to count.")
              + fig(plots.element_frequency(d), "element_frequency.png",
                    f"Share of compositions containing each element (the {plots.TOP_ELEMENTS} most frequent in "
                    f"either set): generated vs {d.train_label}.",
                    "No compositions to count.")
              + "</div>"))
    s.append(("quality", "Generation quality", _quality(d)))
    final = d.recovery_final.select("set_name", "role", "set_size", "n_recovered", "recovery_pct",
                                    "new_samples") if d.recovery_final.height else None
    s.append(("curves", "Uniqueness and recovery",
              "<div class=g111>"
              + fig(plots.uniqueness(d), "uniqueness_curve.png",
                    "Distinct compositions / decodable samples as the run draws more samples.",
                    "No batches recorded for this run.")
              + fig(plots.recovery(d), "recovery_curve.png",
                    "Share of each composition set (the generator's train / held-out split, named "
                    "lists) regenerated as the run draws more samples.",
                    "No composition sets stored for this run's generator.")
              + "<div><h3>novelty_recovery</h3>"
              + (table(final, {"set_name": "set", "set_size": "size", "n_recovered": "recovered",
                               "recovery_pct": "%", "new_samples": "new samples"})
                 + "<p class=sub>new samples: the run's samples outside every set</p>" if final is not None
                 else _empty("No composition sets stored for this run's generator."))
              + "</div></div>"))
    return s


QUALITY_HEADERS = {"run_id": "run", "model": "generator", "n_samples": "samples",
                   "both_valid_samples_pct": "both % of samples",
                   "charge_neutral_pct": "CN %", "electronegativity_balanced_pct": "EB %",
                   "both_valid_pct": "both %", "unique_pct": "unique %", "novel_pct": "novel %",
                   "train_recovery_pct": "train recovery %",
                   "leave_out_recovery_pct": "leave-out recovery %",
                   "tv_element_count_samples": "TV element count (samples)",
                   "tv_element_count": "TV element count", "tv_element_frequency": "TV elements",
                   "frechet_magpie": "Fréchet (Magpie)", "reference": "vs"}


def _quality(d: ReportData) -> str:
    """generation_quality (matstore.quality): this run first, then every other measured run."""
    q = d.quality
    note = ("<p class=sub>generation_quality (<code>matstore quality</code>): validity of the "
            "samples as drawn and of the distinct compositions, uniqueness of the decodable samples, novelty against the known "
            "compositions, recovery of the generator's training and left-out sets, total variation "
            "distances of the element-count (samples as drawn, and distinct compositions) and "
            "per-element histograms and the Fréchet distance of "
            "Magpie vectors, against the generator's training set. The element-count histograms are "
            "plotted in the section above.</p>")
    if q.height == 0 or q["run_id"][0] != d.run_id:
        note += _empty(f"Run {d.run_id} has no generation_quality row yet: "
                       f"matstore quality --run {d.run_id}")
    if q.height == 0:
        return note
    cols = [c for c in QUALITY_HEADERS if c in q.columns]
    shown = q.select(cols).with_columns(
        [pl.col(c).round(1) for c in cols if c.endswith("_pct")]
        + [pl.col(c).round(4) for c in ("tv_element_count_samples", "tv_element_count",
                                         "tv_element_frequency") if c in cols]
        + ([pl.col("frechet_magpie").round(3)] if "frechet_magpie" in cols else []))
    return note + table(shown, QUALITY_HEADERS)


def write_report(store: Store, out: str | Path, run_id: int | None = None) -> Path:
    """index.html + PNGs about one generation run (default: the latest) in folder out."""
    run_id = latest_run(store) if run_id is None else int(run_id)
    d = report_data(store, run_id)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig = _Figures(out)
    sections = _sections(store, d, fig)
    # up to two parity plots share a row with the FE-vs-gap scatter; more take the full width
    width = {"accuracy": "span2", "fe-bg": "span1"} if len(d.parity) <= 2 else {}
    nav = " · ".join(f'<a href="#{sid}">{html.escape(title)}</a>' for sid, title, _ in sections)
    body = "".join(f'<section id="{sid}" class="{width.get(sid, "full")}"><h2>{html.escape(title)}</h2>'
                   f"{content}</section>" for sid, title, content in sections)
    st = d.stats
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>matstore: generation run {run_id}</title><style>{CSS}</style></head><body><main>"
            f"<h1>Generation run {run_id}: {html.escape(fmt(st.get('model')))}</h1>"
            f"<p class=sub>{fmt(st.get('n_samples'))} samples, {fmt(st.get('n_unique'))} distinct "
            f"compositions, {fmt(st.get('n_novel'))} novel · store {html.escape(str(store.path))} · "
            f"written {dt.datetime.now():%Y-%m-%d %H:%M}</p><p class=sub>{nav}</p>"
            f"<div class=sections>{body}</div></main></body></html>")
    (out / "index.html").write_text(page, encoding="utf-8")
    return out / "index.html"

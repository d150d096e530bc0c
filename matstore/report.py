"""Screens and the run report: named screen views, matplotlib PNGs and one index.html.

Everything here reads through the SQL views (generation_stats, uniqueness_curve, candidates,
composition_properties), so the report shows exactly what `matstore query` would.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import polars as pl

from .store import Store, frame, view_definitions
from .errors import MatstoreError

_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")


class ReportError(MatstoreError, RuntimeError):
    """A screen or report that cannot be made; the message says why."""


def screens() -> pl.DataFrame:
    """The shipped screen_* views and the question each answers (its leading comment)."""
    rows = []
    for name, body in view_definitions().items():
        if name.startswith("screen_"):
            comment = " ".join(l.lstrip("- ").strip() for l in body.splitlines() if l.startswith("--"))
            rows.append((name.removeprefix("screen_"), comment))
    return pl.DataFrame(rows, schema=["screen", "question"], orient="row")


def run_screen(store: Store, name: str | None) -> pl.DataFrame:
    """Rows of view screen_<name>; no name: the list of screens."""
    if not name:
        return screens()
    name = name.removeprefix("screen_")
    if not _NAME_RE.match(name):
        raise ReportError(f"screen {name!r}: a screen name is letters, digits and _")
    # only the package's screens: a view stored in the file is a received file's SQL, not ours
    shipped = sorted(v.removeprefix("screen_") for v in view_definitions() if v.startswith("screen_"))
    if name not in shipped:
        raise ReportError(f"no screen {name!r} (screens: {', '.join(shipped) or 'none'}); "
                          f"a view of the file itself runs with `matstore query`")
    with store.connect(guarded=True) as con:  # the read connection's views are the package's
        return frame(con, f'SELECT * FROM "screen_{name}"')


def latest_run(store: Store) -> int:
    df = store.query("SELECT max(run_id) AS r FROM runs WHERE kind = 'generate'")
    if df["r"][0] is None:
        raise ReportError(f"no generation runs in {store.path}; run `matstore generate` first")
    return int(df["r"][0])


def report_data(store: Store, run_id: int) -> dict[str, pl.DataFrame]:
    """The frames the report plots, each from one query."""
    with store.connect(guarded=True) as con:
        stats = frame(con, "SELECT * FROM generation_stats WHERE run_id = ?", [run_id])
        if stats.height == 0:
            raise ReportError(f"run {run_id} is not a generation run in {store.path}")
        model_id = con.execute("SELECT model_id FROM runs WHERE run_id = ?", [run_id]).fetchall()[0][0]
        curve = frame(con, "SELECT * FROM uniqueness_curve WHERE run_id = ? ORDER BY batch_no", [run_id])
        gen = frame(con, """SELECT c.n_elements, count(*) AS n FROM (SELECT DISTINCT composition_id
                            FROM generated WHERE run_id = ?) g JOIN compositions c USING (composition_id)
                            GROUP BY 1 ORDER BY 1""", [run_id])
        has_train = con.execute("SELECT count(*) FROM composition_sets WHERE model_id = ? AND role = 'train'",
                                [model_id]).fetchall()[0][0] > 0
        train_sql = ("SELECT DISTINCT composition_id FROM composition_sets WHERE model_id = ? AND role = 'train'"
                     if has_train else "SELECT composition_id FROM known WHERE ? IS NOT NULL")
        train = frame(con, f"""SELECT c.n_elements, count(*) AS n FROM ({train_sql}) t
                               JOIN compositions c USING (composition_id) GROUP BY 1 ORDER BY 1""",
                      [model_id])
        cand = frame(con, """SELECT pred_formation_energy_per_atom, pred_band_gap, novel, valid
                             FROM candidates WHERE composition_id IN
                             (SELECT composition_id FROM generated WHERE run_id = ?)""", [run_id])
        known = frame(con, "SELECT formation_energy_per_atom, formation_energy_kind, band_gap, band_gap_kind, "
                           "formation_energy_experiment, band_gap_experiment FROM composition_properties")
    return {"stats": stats, "curve": curve, "gen_elements": gen, "train_elements": train,
            "candidates": cand, "known": known,
            "train_label": pl.DataFrame({"label": ["training set" if has_train else "known"]})}


def write_report(store: Store, out: str | Path, run_id: int | None = None) -> Path:
    """PNGs + index.html for one generation run (default: the latest) in folder out."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    run_id = latest_run(store) if run_id is None else int(run_id)
    d = report_data(store, run_id)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stats = d["stats"].row(0, named=True)
    images = []

    def save(fig, name, caption):
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        images.append((name, caption))

    fig, ax = plt.subplots(figsize=(6, 4))
    c = d["curve"]
    if c.height:
        ax.plot(c["samples_drawn"], 100 * c["unique_fraction"].fill_null(0), marker="o", ms=3)
    ax.set_xlabel("samples drawn")
    ax.set_ylabel("unique compositions / decodable samples (%)")
    ax.set_title(f"uniqueness, run {run_id} ({stats['model']})")
    ax.set_ylim(0, 105)
    save(fig, "uniqueness_curve.png", "Unique fraction of decodable samples vs samples drawn.")

    fig, ax = plt.subplots(figsize=(6, 4))
    label = d["train_label"]["label"][0]
    for df, name, off in ((d["gen_elements"], f"generated (run {run_id})", -0.2), (d["train_elements"], label, 0.2)):
        if df.height:
            ax.bar(df["n_elements"].to_numpy() + off, 100 * df["n"] / df["n"].sum(), width=0.4, label=name)
    ax.set_xlabel("elements per composition")
    ax.set_ylabel("% of distinct compositions")
    ax.legend()
    ax.set_title("element-count distribution")
    save(fig, "element_counts.png", f"Elements per composition: generated vs {label}.")

    for prop, unit in (("formation_energy_per_atom", "eV/atom"), ("band_gap", "eV")):
        pred = d["candidates"][f"pred_{prop}"].drop_nulls().drop_nans()
        base = "formation_energy" if prop.startswith("formation") else "band_gap"
        real = d["known"][prop].drop_nulls().drop_nans()
        kind = next(iter(d["known"][f"{base}_kind"].drop_nulls()), "")
        if real.len() == 0:  # no DFT values (e.g. the builtin demo): the experimental ones, so labelled
            real, kind = d["known"][f"{base}_experiment"].drop_nulls().drop_nans(), "experiment"
        if pred.len() == 0 and real.len() == 0:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        if real.len():
            ax.hist(real.to_numpy(), bins=60, alpha=0.6, density=True, label=f"known, {kind} ({real.len():,})")
        if pred.len():
            ax.hist(pred.to_numpy(), bins=60, alpha=0.6, density=True,
                    label=f"candidates, predicted ({pred.len():,})")
        ax.set_xlabel(f"{prop} ({unit})")
        ax.set_ylabel("density")
        ax.legend()
        save(fig, f"{prop}.png", f"{prop}: predicted for the run's candidates vs known values.")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    keys = ["decodable_pct", "unique_pct", "novel_pct", "valid_pct"]
    vals = [stats[k] if stats[k] is not None else 0.0 for k in keys]
    ax.barh([k.removesuffix("_pct") for k in keys], vals)
    for i, v in enumerate(vals):
        ax.text(v + 1, i, f"{v:.1f}%", va="center")
    ax.set_xlim(0, 110)
    ax.set_title(f"run {run_id}: {stats['n_samples']:,} samples")
    save(fig, "generation_stats.png", "generation_stats for the run.")

    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in stats.items())
    figs = "".join(f'<figure><img src="{n}" alt="{html.escape(cap)}"><figcaption>{html.escape(cap)}'
                   f"</figcaption></figure>" for n, cap in images)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>matstore run {run_id}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left}"
            "figure{display:inline-block;margin:1em}</style></head><body>"
            f"<h1>Generation run {run_id}</h1><p>store: {html.escape(store.path)}</p>"
            f"<h2>generation_stats</h2><table>{rows}</table>{figs}</body></html>")
    (out / "index.html").write_text(page)
    return out / "index.html"

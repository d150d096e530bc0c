"""The report's figures (matplotlib, Agg). Each function returns a Figure, or None when its
section has no data (the page then says so in one line)."""

from __future__ import annotations

import numpy as np
import polars as pl

from .data import UNITS, Parity, ReportData

FE_MAX, BG_MIN, BG_MAX = 0.0, 1.0, 2.0   # the screening window (eV/atom, eV, eV)
GEN, TRAIN = "#1f77b4", "#ff7f0e"


def pyplot():
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def parity(p: Parity):
    ok = np.isfinite(p.y_pred) & np.isfinite(p.y_true)
    if not ok.any():
        return None
    plt = pyplot()
    y, f = p.y_true[ok], p.y_pred[ok]
    mae = float(np.mean(np.abs(f - y)))
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1 - float(np.sum((f - y) ** 2)) / ss if ss > 0 else float("nan")
    unit = UNITS.get(p.prop, "")
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.scatter(y, f, s=6 if len(y) > 1000 else 16, alpha=0.5, color=GEN, edgecolors="none")
    lo, hi = float(min(y.min(), f.min())), float(max(y.max(), f.max()))
    pad = 0.03 * (hi - lo or 1)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="k", lw=1, ls="--", label="y = x")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    ax.text(0.04, 0.96, f"MAE {mae:.3g} {unit}\nR² {r2:.3f}\nn = {ok.sum():,} (test split)",
            transform=ax.transAxes, va="top", bbox={"facecolor": "white", "alpha": 0.85, "lw": 0})
    ax.set_xlabel(f"true {p.prop}, {p.target_source} ({unit})")
    ax.set_ylabel(f"predicted ({unit})")
    ax.set_title(f"{p.model}: {p.prop}")
    return fig


def fe_vs_bg(d: ReportData):
    c = d.candidates.drop_nulls(["pred_formation_energy_per_atom", "pred_band_gap"])
    if c.height == 0:
        return None
    plt = pyplot()
    fe = c["pred_formation_energy_per_atom"].to_numpy()
    bg = c["pred_band_gap"].to_numpy()
    inside = (fe < FE_MAX) & (bg >= BG_MIN) & (bg <= BG_MAX)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.scatter(fe[~inside], bg[~inside], s=5, alpha=0.35, color="#888888", edgecolors="none",
               label=f"outside ({(~inside).sum():,})")
    ax.scatter(fe[inside], bg[inside], s=9, alpha=0.8, color="#d62728", edgecolors="none",
               label=f"in window ({inside.sum():,})")
    x0 = min(float(fe.min()), -0.5) - 0.1
    ax.fill_between([x0, FE_MAX], BG_MIN, BG_MAX, color="#2ca02c", alpha=0.15, lw=0,
                    label="window: FE < 0, 1 ≤ gap ≤ 2 eV")
    ax.axvline(FE_MAX, color="#2ca02c", lw=1)
    ax.set_xlabel("predicted formation energy (eV/atom)")
    ax.set_ylabel("predicted band gap (eV)")
    ax.set_title(f"candidates of run {d.run_id}: {c.height:,} compositions")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def band_gap_histograms(d: ReportData):
    """One panel per source (never pooled) and one for the run's predicted gaps; log y so the
    metals' spike at 0 eV does not hide the semiconductors."""
    panels = [(f"{s} ({k})", d.band_gaps.filter(pl.col("source") == s)["band_gap"].to_numpy())
              for s, k in d.band_gaps.select("source", "kind").unique().sort("source").iter_rows()]
    pred = d.candidates["pred_band_gap"].drop_nulls().drop_nans().to_numpy()
    if len(pred):
        panels.append((f"run {d.run_id} candidates (predicted)", pred))
    panels = [(t, v[np.isfinite(v)]) for t, v in panels if np.isfinite(v).any()]
    if not panels:
        return None
    plt = pyplot()
    hi = max(float(v.max()) for _, v in panels)
    bins = np.linspace(0, max(hi, 1.0), 41)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False,
                             sharex=True)
    for ax, (title, v), color in zip(axes[0], panels, ["#1f77b4", "#9467bd", "#8c564b", "#e377c2", GEN]):
        ax.hist(v, bins=bins, color=color if "predicted" not in title else "#d62728")
        ax.set_yscale("log")
        ax.axvspan(BG_MIN, BG_MAX, color="#2ca02c", alpha=0.12, lw=0)
        zero = (v < 1e-3).mean() * 100
        ax.set_title(f"{title}\n{len(v):,} compositions, {zero:.0f}% at 0 eV", fontsize=10)
        ax.set_xlabel("band gap (eV)")
    axes[0][0].set_ylabel("compositions (log scale)")
    return fig


def element_counts(d: ReportData):
    df = d.n_elements
    if df.height == 0:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    for name, label, off, color in (("generated", f"generated, run {d.run_id}", -0.2, GEN),
                                    ("training", d.train_label, 0.2, TRAIN)):
        s = df.filter(pl.col("set") == name)
        if s.height:
            ax.bar(s["n_elements"].to_numpy() + off, 100 * s["n"] / s["n"].sum(), width=0.4,
                   label=f"{label} ({s['n'].sum():,})", color=color)
    ax.set_xlabel("elements per composition")
    ax.set_ylabel("% of distinct compositions")
    ax.set_title("element count: generated vs training")
    ax.legend(fontsize=8)
    return fig


TOP_ELEMENTS = 40   # more bars than this are unreadable at a talk's resolution


def element_frequency(d: ReportData):
    """Share of compositions containing each element, for the TOP_ELEMENTS most frequent in
    either set, in atomic-number order."""
    from ..compositions import SYMBOLS  # noqa: PLC0415

    df = d.element_freq
    if df.height == 0:
        return None
    plt = pyplot()
    df = df.with_columns(pct=100 * pl.col("n") / pl.col("n_set"))
    share = {name: dict(zip(g["element"].to_list(), g["pct"].to_list()))
             for (name,), g in df.group_by("set")}
    gen, train = share.get("generated", {}), share.get("training", {})
    top = sorted(set(gen) | set(train), key=lambda e: -max(gen.get(e, 0.0), train.get(e, 0.0)))
    top = top[:TOP_ELEMENTS]
    order = {s: i for i, s in enumerate(SYMBOLS)}   # periodic-table order (Z)
    elements = sorted(top, key=lambda e: order.get(e, 999))
    x = np.arange(len(elements))
    fig, ax = plt.subplots(figsize=(10.4, 4.0))
    for pct, label, off, color in ((gen, f"generated, run {d.run_id}", -0.2, GEN),
                                   (train, d.train_label, 0.2, TRAIN)):
        if pct:
            ax.bar(x + off, [pct.get(e, 0.0) for e in elements], width=0.4, label=label, color=color)
    ax.set_xticks(x, elements, fontsize=8)
    ax.set_xlim(-1, len(elements))
    ax.set_xlabel(f"element (the {len(elements)} most frequent, by atomic number)")
    ax.set_ylabel("% of compositions containing it")
    ax.set_title("element frequency: generated vs training")
    ax.legend(fontsize=8)
    return fig


def uniqueness(d: ReportData):
    c = d.curve
    if c.height == 0:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    ax.plot(c["samples_drawn"].cast(pl.Float64), 100 * c["unique_fraction"].cast(pl.Float64).fill_null(0),
            marker="o", ms=3, color=GEN)
    ax.set_xlabel("samples drawn")
    ax.set_ylabel("unique / decodable samples (%)")
    ax.set_xlim(left=0)
    ax.set_ylim(0, 105)
    ax.set_title(f"uniqueness, run {d.run_id}")
    return fig


def recovery(d: ReportData):
    r = d.recovery
    if r.height == 0:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    for name in r["set_name"].unique(maintain_order=True).to_list():
        s = r.filter(pl.col("set_name") == name)
        role = s["role"][0]
        pct = 100 * s["recovered"].cast(pl.Float64) / s["set_size"].cast(pl.Float64)
        ax.plot(s["samples_drawn"].cast(pl.Float64), pct, marker="o", ms=3,
                label=f"{name} ({role}, {s['set_size'][0]:,})")
    ax.set_xlabel("samples drawn")
    ax.set_ylabel("% of the set regenerated")
    ax.set_xlim(left=0)
    top = float((100 * r["recovered"].cast(pl.Float64) / r["set_size"]).max() or 0)
    ax.set_ylim(0, max(top * 1.1, 1.0))
    if top == 0:
        ax.text(0.5, 0.5, "no member of any set regenerated", transform=ax.transAxes, ha="center",
                color="#666")
    ax.set_title(f"recovery of training / held-out sets, run {d.run_id}")
    ax.legend(fontsize=8)
    return fig

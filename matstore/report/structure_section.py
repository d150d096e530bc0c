"""The report's section on predicted structures: the run's candidates that hold template or
generated structures (the view candidate_structures), best rank first, with a projected picture
of the first few and the path of each one's CIF written beside the page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

MAX_ROWS = 12
MAX_PICTURES = 6
HEADERS = {"formula": "composition", "method": "method", "spacegroup_symbol": "space group",
           "template_formula": "template", "rank": "rank", "cif": "CIF"}


def structures_table(store, run_id: int, limit: int = MAX_ROWS) -> pl.DataFrame:
    """The run's candidates' predicted structures, rank 1 first (then lowest predicted FE)."""
    with store.connect() as con:
        return pl.from_arrow(con.sql(
            "SELECT k.structure_id, k.formula, k.method, k.spacegroup_symbol, k.template_formula, k.rank, "
            "k.pred_formation_energy_per_atom FROM candidate_structures k "
            "WHERE k.composition_id IN (SELECT composition_id FROM generated WHERE run_id = ?) "
            "ORDER BY coalesce(k.rank, 99), k.pred_formation_energy_per_atom NULLS LAST, k.structure_id "
            "LIMIT ?", params=[int(run_id), int(limit)]).to_arrow_table())


def projections(structures: list, titles: list[str]):
    """One panel per structure: sites projected on the a-b plane, cell outline, one colour per element."""
    from .plots import pyplot

    plt = pyplot()
    n = max(len(structures), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), squeeze=False)
    for ax, s, title in zip(axes[0], structures, titles):
        a, b = s.lattice.matrix[0][:2], s.lattice.matrix[1][:2]
        corners = np.array([[0, 0], a, a + b, b, [0, 0]])
        ax.plot(corners[:, 0], corners[:, 1], color="#888", lw=1)
        for k, el in enumerate(sorted({site.specie.symbol for site in s})):
            xy = np.array([site.coords[:2] for site in s if site.specie.symbol == el])
            ax.scatter(xy[:, 0], xy[:, 1], s=60, label=el, color=f"C{k}", edgecolor="k", lw=.4)
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.legend(fontsize=7, loc="upper right", frameon=False)
    fig.tight_layout()
    return fig


def csp_parity(df: pl.DataFrame, title: str):
    """Predicted vs DFT volume per atom (matched / not matched by StructureMatcher) and the RMSD
    histogram of the matches; None without rows."""
    from ..structures.parity import summary
    from .plots import pyplot

    if df.height == 0:
        return None
    plt = pyplot()
    s = summary(df)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.4))
    for ok, colour, label in ((False, "#999", "no match"), (True, "#2ca02c", "match")):
        d = df.filter(pl.col("matched") == ok)
        ax.scatter(d["ref_volume_per_atom"], d["pred_volume_per_atom"], s=8 if df.height > 500 else 18,
                   alpha=0.6, color=colour, edgecolors="none", label=f"{label} ({d.height:,})")
    v = np.concatenate([df["ref_volume_per_atom"].to_numpy(), df["pred_volume_per_atom"].to_numpy()])
    lo, hi = float(v.min()), float(v.max())
    ax.plot([lo, hi], [lo, hi], color="k", lw=1, ls="--", label="y = x")
    ax.set_xlabel("DFT volume per atom (Å³)")
    ax.set_ylabel("predicted volume per atom (Å³)")
    ax.set_title(f"{title}: match {s['match_rate']:.1f} %, volume MAE {s['volume_mae']:.2f} Å³/atom")
    ax.legend(fontsize=8, loc="upper left")
    rms = df.filter(pl.col("matched"))["rmsd"].to_numpy()
    bx.hist(rms, bins=30, color="#2ca02c", alpha=0.8)
    bx.set_xlabel("RMSD / (V/N)^(1/3) of the matches")
    bx.set_ylabel("predictions")
    bx.set_title(f"mean RMSD {s['rmsd']:.4f} over {len(rms):,} matches")
    fig.tight_layout()
    return fig


def parity_html(store, fig) -> str:
    """The store's CSP parity (structures.parity.store_parity) as a figure; "" without any (it needs
    rank-1 template predictions of compositions that hold known structures, e.g. from
    `matstore structures predict --where ... --exclude-same -k 1`)."""
    from ..structures.parity import MAX_PAIRS, store_parity

    df = store_parity(store)
    if df.height == 0:     # nothing to compare (the usual case: candidates are new compositions)
        return ""
    return fig(csp_parity(df, "CSP parity"), "csp_parity.png",
               f"CSP parity: rank-1 template predictions against the known structures of the same "
               f"composition (first {MAX_PAIRS} compositions, templates of other compositions only); "
               f"StructureMatcher stol 0.5, angle_tol 10, ltol 0.3.", "No parity to draw.", wide=True)


def section(store, run_id: int, out: Path, fig, table, empty) -> str:
    """HTML of the section (fig, table, empty: the page's own helpers)."""
    from ..structures import read_structures
    from ..structures.show import write_file

    parity = parity_html(store, fig)
    df = structures_table(store, run_id)
    if df.height == 0:
        return (f"<div class=grid>{parity}</div>" if parity else "") + empty(f"No candidate of run {run_id} has a predicted structure yet: "
                     f"matstore structures predict --where \"c.composition_id IN (SELECT composition_id "
                     f"FROM generated WHERE run_id = {run_id})\" -k 5")
    folder = out / "structures"
    folder.mkdir(exist_ok=True)
    paths = []
    for sid in df["structure_id"]:
        path = folder / f"{sid}.cif"
        write_file(store, sid, str(path), "cif", overwrite=True)
        paths.append(f"structures/{path.name}")
    df = df.with_columns(pl.Series("cif", paths))
    top = df.head(MAX_PICTURES)
    picture = fig(projections(read_structures(store, top["structure_id"].to_list()),
                              [f"{f} ({sg or '-'})" for f, sg in zip(top["formula"], top["spacegroup_symbol"])]),
                  "structures.png", "Predicted structures of the top candidates, sites projected on the a-b "
                  "plane (cell outline in grey).", "No structure to draw.", wide=True)
    return f"<div class=grid>{picture}{parity}</div>" + table(df.drop("structure_id", "pred_formation_energy_per_atom"), HEADERS)

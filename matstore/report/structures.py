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


def section(store, run_id: int, out: Path, fig, table, empty) -> str:
    """HTML of the section (fig, table, empty: the page's own helpers)."""
    from ..structures import read_structures
    from ..structures.show import write_file

    df = structures_table(store, run_id)
    if df.height == 0:
        return empty(f"No candidate of run {run_id} has a predicted structure yet: "
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
    return f"<div class=grid>{picture}</div>" + table(df.drop("structure_id", "pred_formation_energy_per_atom"), HEADERS)

"""Potentials and the batched relaxation engine on real perovskites (perov_5/val.csv)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from matstore.models import potential
from matstore.relax import RelaxError, RelaxSettings, relax_batch, relax_sequential
from matstore.relax.hull import Hull, Phase


@pytest.fixture(scope="module")
def perovskites(shared_data):
    from pymatgen.core import Structure

    df = pl.read_csv(shared_data / "structures/perov_5/val.csv", n_rows=6)
    return [Structure.from_str(c, fmt="cif") for c in df["cif"]]


@pytest.fixture(scope="module")
def chgnet():
    return potential.load("chgnet")


def disturbed(s, strain=0.02, shift=0.04):
    """The DFT structure moved off its minimum, deterministically (strained cell, one site shifted)."""
    s = s.copy()
    s.apply_strain(strain)
    s.translate_sites([0], [shift, -shift / 2, shift / 3], frac_coords=False)
    return s


def test_identity_is_the_wheels_file():
    ident = potential.resolve("chgnet").identity()
    assert ident["potential"] == "chgnet-0.3.0" and ident["package_version"] == "0.4.2"
    assert ident["sha256_in_wheel_record"] and len(ident["weights_sha256"]) == 64
    assert "MP2020" in ident["convention"]
    s7 = potential.resolve("7net-0")
    assert s7.name == "sevennet-0" and s7.identity()["sha256_in_wheel_record"]
    with pytest.raises(potential.PotentialError, match="unknown potential"):
        potential.resolve("mace")


def test_missing_package_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sevenn" else real(name, *a))
    with pytest.raises(potential.PotentialError, match=r"pip install 'matstore\[potentials\]'"):
        potential.load("sevennet-0")


def test_settings_are_checked():
    with pytest.raises(RelaxError, match="--fmax"):
        RelaxSettings(fmax=0).check()
    with pytest.raises(RelaxError, match="--time-limit"):
        RelaxSettings(time_limit=-1).check()


def test_hull_formation_energy_and_distance():
    # A at -1, B at -3 eV/atom; AB at -2.5 (formation -0.5) is the hull; A3B at -1.7 (formation
    # -0.2) lies 0.05 above the A--AB line (-0.25 at x_B = 0.25); A2B at -2.1 (formation -0.433)
    # lies 0.1 below it (-0.333 at x_B = 1/3)
    hull = Hull([Phase("ab", "AlNi", -2.5)], {"Al": -1.0, "Ni": -3.0})
    ab = hull.place(Phase("ab", "AlNi", -2.5))
    assert ab.formation_energy_per_atom == pytest.approx(-0.5) and ab.e_above_hull == pytest.approx(0)
    a3b = hull.place(Phase("x", "Al3Ni", -1.7))
    assert a3b.formation_energy_per_atom == pytest.approx(-0.2)
    assert a3b.e_above_hull == pytest.approx(0.05)
    assert a3b.hull_energy_per_atom == pytest.approx(-0.25)
    assert {f for _, f, _ in a3b.decomposition} == {"Al", "AlNi"}
    below = hull.place(Phase("y", "Al2Ni", -2.1))
    assert below.e_above_hull == pytest.approx(-0.1)
    with pytest.raises(KeyError, match="O"):
        hull.place(Phase("z", "Al2O3", -7))


def test_no_network_when_loading(monkeypatch):
    import socket

    def refuse(*a, **k):
        raise AssertionError("a potential tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    pot = potential.load("chgnet")
    assert pot.spec.name == "chgnet-0.3.0"


@pytest.mark.slow
def test_batched_equals_one_at_a_time_ase(chgnet, perovskites):
    inputs = [disturbed(s) for s in perovskites[:2]]
    settings = RelaxSettings(fmax=0.05, max_steps=60)
    batched = relax_batch(chgnet, inputs, settings)
    direct = relax_sequential(chgnet.calculator(), inputs, settings)   # chgnet's CHGNetCalculator
    for b, d in zip(batched, direct):
        assert b.status == d.status == "converged"
        assert abs(b.energy_per_atom - d.energy_per_atom) < 1e-3        # 1 meV/atom
        assert b.steps > 0 and abs(b.steps - d.steps) <= 2
        assert b.energy_per_atom < b.initial_energy_per_atom
        assert b.fmax <= 0.05


@pytest.mark.slow
def test_statuses_end_a_relaxation(chgnet, perovskites):
    s = disturbed(perovskites[2], strain=0.06, shift=0.15)
    capped, = relax_batch(chgnet, [s], RelaxSettings(max_steps=2, fmax=1e-4))
    assert capped.status == "step_cap" and capped.steps == 2 and capped.fmax > 1e-4
    timed, = relax_batch(chgnet, [s], RelaxSettings(time_limit=1e-6, fmax=1e-4))
    assert timed.status == "time_limit" and timed.steps <= 1
    hot, = relax_batch(chgnet, [s], RelaxSettings(max_abs_energy_per_atom=0.5))
    assert hot.status == "exploded" and hot.energy_per_atom is None and "energy" in hot.message
    big, = relax_batch(chgnet, [s], RelaxSettings(max_sites=3))
    assert big.status == "error" and "--max-sites" in big.message
    apart = s.copy()
    apart.scale_lattice(s.volume * 40)   # atoms 3.4x further apart: isolated, no graph
    alone, = relax_batch(chgnet, [apart], RelaxSettings())
    assert alone.status == "error" and alone.steps == 0

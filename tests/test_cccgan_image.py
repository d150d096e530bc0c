"""The CCCGAN's 30x3 image (issue 29, item 2): the exact inverse on every shared Mg-Mn-O
structure, judged by StructureMatcher on the structure moved into another setting, and the
seed's augmentation giving images of the same crystal."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from matstore.models.cccgan import augment as aug
from matstore.structures import image as im


@pytest.fixture(scope="module")
def images(shared_data):
    return im.load_images(shared_data / "structures/mgmno/mgmno_structures.npy")


def moved(s: Structure, rng) -> Structure:
    """The same crystal in another setting: lattice rotated, sites shuffled, coordinates shifted by
    whole lattice vectors (outside [0, 1): encode must wrap them)."""
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    order = rng.permutation(len(s))
    frac = s.frac_coords[order] + rng.integers(-2, 3, size=(len(s), 3))
    return Structure(Lattice(s.lattice.matrix @ q.T), [s.species[i] for i in order], frac)


def check(images, idx):
    rng = np.random.default_rng(0)
    sm = StructureMatcher(primitive_cell=False, scale=False)   # same cell: no reduction needed
    for i in idx:
        s = im.decode(images[i])
        assert np.abs(im.encode(s) - images[i]).max() < 1e-12     # encode(decode(img)) == img
        back = im.decode(im.encode(moved(s, rng)))
        assert sm.fit(s, back), i
        assert back.composition == s.composition and abs(back.volume - s.volume) < 1e-6 * s.volume


def test_image_round_trips_a_sample_of_structures(images):
    assert images.shape == (2627, 30, 3)
    check(images, range(0, len(images), 97))


@pytest.mark.slow
def test_image_round_trips_every_shared_structure(images):
    check(images, range(len(images)))


def test_image_refuses_what_it_cannot_hold(images):
    s = im.decode(images[0])
    with pytest.raises(im.ImageError, match="outside"):
        im.encode(Structure(s.lattice, ["Fe"] * len(s), s.frac_coords))
    with pytest.raises(im.ImageError, match="image holds 12"):
        im.encode(s * (2, 2, 2))
    bad = images[0].copy()
    bad[1] = [170 / 180, 170 / 180, 170 / 180]
    with pytest.raises(im.ImageError, match="not a cell"):
        im.decode(bad)
    with pytest.raises(im.ImageError, match="shape"):
        im.decode(images[0][:29])


def test_generated_rows_are_chosen_by_counts_and_atom_probability(images):
    x = images[:4]
    prob = np.random.default_rng(1).random((4, 28))
    counts = np.array([[2, 1, 4]] * 4)
    sel = im.select_rows(counts, atom_prob=prob)
    assert (im.MGMNO.counts(sel) == counts).all()
    # in each block, the chosen rows are the most probable ones
    for b, c in zip((slice(0, 8), slice(8, 16), slice(16, 28)), counts[0]):
        assert (np.sort(prob[0, b][sel[0, b]]) == np.sort(prob[0, b])[-c:]).all()
    s = im.decode(x[0], sites=sel[0])
    assert s.composition.reduced_formula == "Mg2MnO4"
    with pytest.raises(im.ImageError, match="beyond"):
        im.select_rows(np.array([[9, 1, 1]]))


def test_augmentation_gives_images_of_the_same_crystal(images):
    sm = StructureMatcher(attempt_supercell=True)
    rng = np.random.default_rng(0)
    fits = (im.MGMNO.counts(im.occupied(images)) * 4 <= np.array(im.MGMNO.rows)).all(1)
    small = np.flatnonzero(fits)[:3]
    assert len(small) == 3
    for i in small:
        s = im.decode(images[i])
        grown = [aug.supercell(images[i], r) for r in aug.SUPERCELLS]
        assert all(g is not None for g in grown)
        for g in grown:
            t = im.decode(g)
            assert len(t) == 4 * len(s) and abs(t.volume - 4 * s.volume) < 1e-6 * t.volume
            assert sm.fit(s, t)
        t = im.decode(aug.translate(images[i:i + 1], rng.random(1))[0])
        assert sm.fit(s, t)
        for a, b in aug.SWAPS:
            t = im.decode(aug.swap_axes(images[i:i + 1], a, b)[0])
            assert abs(t.volume - s.volume) < 1e-6 * s.volume and sm.fit(s, t)
    # a supercell that would overflow the image is refused
    big = int(np.argmax(im.occupied(images).sum(1)))
    assert aug.supercell(images[big], (2, 2, 1)) is None
    out = aug.augment(images[:300], 50, np.random.default_rng(0))
    counts = im.MGMNO.counts(im.occupied(out))
    _, n = np.unique(counts, axis=0, return_counts=True)
    assert n.min() >= 50 and len(out) > 300
    assert (out[:300] == images[:300]).all()
    again = aug.augment(images[:300], 50, np.random.default_rng(0))
    assert (again == out).all()

"""The shipped 85-element MatGAN table equals the one in the shared data."""

from matstore.compositions import Z_OF
from matstore.elements85 import ELEMENTS_85


def test_elements85_matches_shared_table(shared_data):
    listed = (shared_data / "matgan" / "periodic_table_85.csv").read_text().split()
    assert list(ELEMENTS_85) == listed


def test_elements85_are_real_and_unique():
    assert len(set(ELEMENTS_85)) == 85
    assert all(s in Z_OF for s in ELEMENTS_85)

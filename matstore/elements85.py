"""The 85 elements of the MatGAN 8x85 one-hot encoding, in the encoding's column order.

Shipped as a constant so the package works without ../shared/data (matgan/periodic_table_85.csv
holds the same list; a test checks they agree). Curation and the one-hot featurizer both use it.
"""

ELEMENTS_85: tuple[str, ...] = (
    "H", "Li", "Be", "B", "C", "N", "O", "F", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "K", "Ca",
    "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br",
    "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb",
    "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy",
    "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl",
    "Pb", "Bi", "Ac", "Th", "Pa", "U", "Np", "Pu",
)
MAX_COUNT = 8  # largest per-element count the 8-row one-hot can hold

assert len(ELEMENTS_85) == 85

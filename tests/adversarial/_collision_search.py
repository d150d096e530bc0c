"""How the within-bounds key collision in test_ingest_bounds.py was found (not a test; ~1 min).

composition_id = mix(sum over elements of mix(Z << 32 | count)) (compositions.composition_key), so
two maps collide iff their per-element hash sums are equal mod 2^64. Wagner's 4-list generalized
birthday search: lists L1, L2 of (element pair, counts) sums for composition A and L3, L4 negated
for composition B; join L1+L2 and L3+L4 on their low 21 bits being zero, then match the rest.
With 2^22 entries per list (counts 1..2048) it expects ~8 solutions; counts stay <= 2048, far
inside compositions.MAX_COUNT / MAX_ATOMS, so the bounds cannot be what stops such a payload.

    python tests/adversarial/_collision_search.py
"""

from __future__ import annotations

import math

import numpy as np

from matstore import compositions as C

N = 2048
A_ELEMENTS = (("Li", "Na"), ("K", "Rb"))
B_ELEMENTS = (("Mg", "Ca"), ("Sr", "Ba"))
LOW = 21


def per_element(symbol: str, counts: np.ndarray) -> np.ndarray:
    z = np.uint64(C.Z_OF[symbol])
    return C.mix64((z << np.uint64(32)) | counts.astype(np.uint64))


def pair_list(e1: str, e2: str, negate: bool) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(1, N + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        s = (per_element(e1, c)[:, None] + per_element(e2, c)[None, :]).ravel()
        if negate:
            s = (~s) + np.uint64(1)
    return s, np.arange(N * N, dtype=np.int64)  # index i -> counts (i // N + 1, i % N + 1)


def join_low(x: np.ndarray, y: np.ndarray):
    """Pairs (i, j) with low LOW bits of x[i] + y[j] == 0; returns their sums and indices."""
    mask = np.uint64((1 << LOW) - 1)
    want = ((~x) + np.uint64(1)) & mask          # y[j] must have these low bits
    order = np.argsort(y & mask, kind="stable")
    ys = (y & mask)[order]
    lo = np.searchsorted(ys, want, "left")
    hi = np.searchsorted(ys, want, "right")
    n = hi - lo
    i = np.repeat(np.arange(len(x)), n)
    j = order[np.repeat(lo, n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))]
    with np.errstate(over="ignore"):
        return x[i] + y[j], i, j


def search() -> list[tuple[dict, dict]]:
    (a1, _), (a2, _) = pair_list(*A_ELEMENTS[0], False), pair_list(*A_ELEMENTS[1], False)
    (b1, _), (b2, _) = pair_list(*B_ELEMENTS[0], True), pair_list(*B_ELEMENTS[1], True)
    sa, ia, ja = join_low(a1, a2)
    sb, ib, jb = join_low(b1, b2)
    nb = (~sb) + np.uint64(1)                     # sa == -sb  <=>  sum(A) == sum(B)
    order = np.argsort(nb)
    pos = np.searchsorted(nb[order], sa)
    pos[pos >= len(nb)] = 0
    hit = np.flatnonzero(nb[order][pos] == sa)
    out = []
    for h in hit:
        k = order[pos[h]]
        ca = [int(ia[h]) // N + 1, int(ia[h]) % N + 1, int(ja[h]) // N + 1, int(ja[h]) % N + 1]
        cb = [int(ib[k]) // N + 1, int(ib[k]) % N + 1, int(jb[k]) // N + 1, int(jb[k]) % N + 1]
        if math.gcd(*ca) == 1 and math.gcd(*cb) == 1:  # keys are of the reduced map
            els_a = [e for p in A_ELEMENTS for e in p]
            els_b = [e for p in B_ELEMENTS for e in p]
            out.append((dict(zip(els_a, ca)), dict(zip(els_b, cb))))
    return out


if __name__ == "__main__":
    for a, b in search():
        fa = "".join(f"{e}{n}" for e, n in a.items())
        fb = "".join(f"{e}{n}" for e, n in b.items())
        print(fa, fb, C.parse(fa).composition_id, C.parse(fb).composition_id)

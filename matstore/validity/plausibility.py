"""Oxidation-state plausibility: how often the ICSD reports each ion of an assignment.

An assignment that is charge-neutral and electronegativity-balanced can still need N5-, Dy4+ or
Ga4+: states smact's sets list but the ICSD reports a handful of times. Each ion's *share* is its
state's fraction of the element's non-zero-state ICSD 2024 reports (smact's
oxidation_states_icsd24_counts.json); an assignment is as plausible as its rarest ion.
The store keeps the shares in the table `ion_reports` (migration 0012, written from this file's
`shares()`; tests check the two still agree) so the views can score the stored assignments.
Screens drop assignments whose rarest ion has a share below MIN_ION_SHARE.
"""

from __future__ import annotations

from functools import lru_cache

MIN_ION_SHARE = 0.01   # N5- 0.06 %, Dy4+ 0.4 %, Ga4+ 0.3 % fall below; Sn4- (stannides) 1.2 % passes
SOURCE = "smact oxidation_states_icsd24_counts.json (ICSD 2024)"


@lru_cache(maxsize=1)
def shares() -> dict[tuple[str, int], tuple[int, float]]:
    """(symbol, state) -> (ICSD reports, share of the element's non-zero-state reports);
    states with no report are absent (share 0)."""
    from .sets import icsd24_report_counts  # noqa: PLC0415

    counts, total = icsd24_report_counts()
    return {k: (n, n / total[k[0]]) for k, n in counts.items() if n > 0}


def rarest_share(elements: list[str], states: list[int]) -> float | None:
    """The lowest share among an assignment's ions (0.0 for an ion the ICSD never reports);
    None without an assignment."""
    if not states or not any(states):
        return None
    table = shares()
    return min(table.get((e, int(s)), (0, 0.0))[1] for e, s in zip(elements, states))


def migration_values() -> str:
    """The VALUES rows of ion_reports as migration 0012 holds them (how that file was written)."""
    return ",\n".join(f"('{e}', {s}, {n}, {share!r})" for (e, s), (n, share) in sorted(shares().items()))

"""Checks of the numeric knobs the library's entry points take (counts, sizes, tolerances), so
that a zero, negative or out-of-range value is refused with its name instead of doing nothing.
The CLI declares the same ranges (click.IntRange / FloatRange); these cover Python callers."""

from __future__ import annotations

import math
import numbers

from .errors import MatstoreError


class OptionError(MatstoreError, ValueError):
    """A numeric option outside its range; the message names it and the range."""


def at_least_one(name: str, value, allow_none: bool = False, error: type = OptionError):
    """value as an int >= 1 (None passes where allow_none: 'use the default'); error: the
    caller's own error class, for callers that have one."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise error(f"{name} must be a positive whole number (>= 1), got {value!r}")
    return int(value)


def decode_tolerance(value, error: type = OptionError):
    """A onehot decoding tolerance: a cell counts as set at >= 1 - tolerance, so only 0 < t < 1
    means anything (t >= 1 sets every cell, t <= 0 almost none). None: the default."""
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or not 0 < value < 1):
        raise error(f"tolerance must be a number with 0 < tolerance < 1 (a cell counts as "
                          f"set at >= 1 - tolerance), got {value!r}")
    return float(value)


def sampling_overrides(temperature=None, top_p=None, error: type = OptionError) -> dict:
    """A transformer's sampling settings for one run: temperature > 0 (finite) and top_p in
    (0, 1]; the ones given (None: the version's own)."""
    out = {}
    for name, v, ok in (("temperature", temperature, lambda x: x > 0),
                        ("top_p", top_p, lambda x: 0 < x <= 1)):
        if v is None:
            continue
        if (isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v)
                or not ok(v)):
            raise error(f"{name} must be a number with "
                        f"{'temperature > 0' if name == 'temperature' else '0 < top_p <= 1'}, got {v!r}")
        out[name] = float(v)
    return out


MAX_SYSTEM_ELEMENTS = 8   # a chemical system to sample within (the one-hot encoding's width)


def chemical_system(elements, error: type = OptionError) -> list[str] | None:
    """Element symbols of a chemical system ('Mg,Mn,O', 'Mg-Mn-O' or a list) as a sorted list of
    distinct known symbols; None or empty: no system."""
    if elements is None or elements == "" or elements == ():
        return None
    from .compositions.elements import Z_OF  # noqa: PLC0415

    parts = elements.replace("-", ",").split(",") if isinstance(elements, str) else list(elements)
    syms = [str(p).strip() for p in parts if str(p).strip()]
    bad = [s for s in syms if s not in Z_OF]
    if bad or not syms or len(set(syms)) != len(syms) or len(syms) > MAX_SYSTEM_ELEMENTS:
        raise error(f"chemical system {elements!r}: needs 1 to {MAX_SYSTEM_ELEMENTS} distinct element "
                    f"symbols (unknown: {bad[:5]})")
    return sorted(syms, key=lambda s: Z_OF[s])

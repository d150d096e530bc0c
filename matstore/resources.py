"""Where the shipped SQL lives: inside the package in a wheel, at the repo root in a checkout."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """`sql` or `migrations`: the wheel puts them in matstore/, a checkout has them beside it."""
    for candidate in (_PKG / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"matstore resource folder {name!r} is missing from {_PKG}")

"""One registry shape for every plug-in kind (model kinds, training presets, featurizers, oracles,
acquisition functions): a ``Registry`` is a dict name -> item with ``register`` (a new name, or
``replace=True``), ``unregister``, ``lookup`` (the item, or the registry's error naming the
choices) and ``choices()`` (what the CLI offers). Being a dict, ``name in R``, ``R[name]`` and
iteration work as before."""

from __future__ import annotations

from typing import Generic, Iterable, TypeVar

T = TypeVar("T")


class Registry(dict, Generic[T]):
    """name -> item of one plug-in kind. ``unknown`` formats the lookup error from ``name`` and
    ``choices`` (the registered names, comma-separated)."""

    def __init__(self, what: str, items: Iterable[tuple[str, T]] = (), *, error: type = LookupError,
                 unknown: str = "unknown {what} {name!r} (choose one of: {choices})"):
        super().__init__(items)
        self.what, self.error, self.unknown = what, error, unknown

    def register(self, name: str, item: T, *, replace: bool = False) -> T:
        if name in self and not replace:
            raise self.error(f"{self.what} {name!r} is already registered")
        self[name] = item
        return item

    def unregister(self, name: str) -> None:
        self.pop(name, None)

    def lookup(self, name: str) -> T:
        try:
            return self[name]
        except (KeyError, TypeError):
            raise self.error(self.unknown.format(what=self.what, name=name,
                                                 choices=", ".join(self.choices()))) from None

    def choices(self) -> list[str]:
        return list(self)

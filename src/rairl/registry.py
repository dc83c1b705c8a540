"""One registry type for everything chosen by name: tasks, granularities, aggregations, step reductions,
perturbations, labelled-trace sources and commands.

    GRANULARITIES = Registry("granularity")

    @GRANULARITIES.register("dense")
    def _dense(...): ...

    GRANULARITIES.lookup("dnese")   # ValueError: unknown granularity 'dnese'; known: [...]. Did you mean 'dense'?

A `Registry` is a dict (name -> object), so `name in R`, `sorted(R)` and `R[name]` work as for any mapping.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`" Did you mean 'x'?"` for the closest known name, or `""` when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


class Registry(dict[str, T]):
    def __init__(self, kind: str, items: dict[str, T] | None = None) -> None:
        super().__init__(items or {})
        self.kind = kind

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that files its object under `name` (a second object under one name is an error)."""

        def wrap(obj: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self[name] = obj
            return obj

        return wrap

    def lookup(self, name: str) -> T:
        """The object filed under `name`; an unknown name raises ValueError listing the known ones."""
        if name not in self:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {sorted(self)}.{did_you_mean(name, self)}")
        return self[name]

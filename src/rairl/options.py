"""The base of every options dataclass (`TaskArgs`, `ModelArgs`, `TrainArgs`, ...).

A command's config is composed of several of them (`class Config(TaskArgs, ModelArgs, TrainArgs)`); each part that
checks its values defines `__post_init__` and calls `super().__post_init__()` first, so the dataclass `__init__` of
the composed config runs every part's checks once, in MRO order, with no parent chained by hand.
"""

from __future__ import annotations


class Options:
    def __post_init__(self) -> None:
        """The end of the chain: nothing left to check."""

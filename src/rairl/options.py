"""The base of every options dataclass (`TaskArgs`, `ModelArgs`, `RunArgs`, ...).

A command's config is composed of several of them (`class Config(TaskArgs, ModelArgs, SFTConfig)`); each part that
checks its values defines `__post_init__` and calls `super().__post_init__()`, so the dataclass `__init__` of
the composed config runs every part's checks once, in MRO order, with no parent chained by hand. When a TRL config
(`TrainingArguments`) comes after the parts in the MRO, the chain ends in its `__post_init__`.

An option that was renamed stays refused under its old name, with the new one in the message: a class lists
`RENAMED = {old: new}` and `renamed_options` gathers them over the MRO (`rairl.config.parse_config` checks flags and
YAML keys against them).

`check_number` is the one check of a numeric option or setting: its type (an int is not a bool), a finite value and
its range, with one line naming it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

MAX_INT = 2**31 - 1  # no count, length or size here comes near it: a larger value is a typo (or an attack)


def renamed_options(config_cls: type) -> dict[str, str]:
    """{old name: new name} of every part of `config_cls`."""
    return {old: new for c in reversed(config_cls.__mro__) for old, new in vars(c).get("RENAMED", {}).items()}


class Options:
    RENAMED: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        """Refuse a float option that is NaN or infinite (whatever its range, `float("nan") < 0` is False: it
        would pass every bound) and a seed numpy cannot take, then hand over to the next class in the MRO that
        checks values (a TRL config)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name, None)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"--{f.name} must be a finite number, got {value}")
            if (f.name == "seed" or f.name.endswith("_seed")) and isinstance(value, int) and not 0 <= value < 2**32:
                raise ValueError(f"--{f.name} must lie in [0, 2**32 - 1] (numpy's seeds), got {value}")
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()


def check_number(
    name: str,
    value: Any,
    *,
    rule: str,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
) -> None:
    """`value` must be a finite number (an int up to `MAX_INT` when `integer`; never a bool) in [`low`, `high`];
    anything else raises ValueError naming `name`, with `rule` (e.g. "must be >= 1") as the fix."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ValueError(f"{name} must be {kind}, got {value!r} ({type(value).__name__}); it {rule}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite (it {rule}), got {value!r}")
    if abs(value) > MAX_INT:
        raise ValueError(f"{name} must lie within ±{MAX_INT} (it {rule}), got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} {rule}, got {value!r}")

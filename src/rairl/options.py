"""The base of every options dataclass (`TaskArgs`, `ModelArgs`, `RunArgs`, ...).

A command's config is composed of several of them (`class Config(TaskArgs, ModelArgs, SFTConfig)`); each part that
checks its values defines `__post_init__` and calls `super().__post_init__()`, so the dataclass `__init__` of
the composed config runs every part's checks once, in MRO order, with no parent chained by hand. When a TRL config
(`TrainingArguments`) comes after the parts in the MRO, the chain ends in its `__post_init__`.

An option that was renamed stays refused under its old name, with the new one in the message: a class lists
`RENAMED = {old: new}` and `renamed_options` gathers them over the MRO (`rairl.config.parse_config` checks flags and
YAML keys against them).
"""

from __future__ import annotations

from typing import ClassVar


def renamed_options(config_cls: type) -> dict[str, str]:
    """{old name: new name} of every part of `config_cls`."""
    return {old: new for c in reversed(config_cls.__mro__) for old, new in vars(c).get("RENAMED", {}).items()}


class Options:
    RENAMED: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        """Hand over to the next class in the MRO that checks values (a TRL config), if any."""
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()

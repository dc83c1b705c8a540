"""`rairl recipes`: check every recipe of `recipes/index.yaml` without weights (library: `rairl.recipes`) and print
each one's memory estimate per GPU under each launch; a recipe that does not parse, whose LoRA targets do not exist
or whose estimate exceeds its GPU is an error."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rairl.io import write_json
from rairl.recipes import check_all, format_checks


@dataclass
class Config:
    index: str = field(default="recipes/index.yaml", metadata={"help": "the recipes' index file"})
    output: str | None = field(default=None, metadata={"help": "also write the checks as JSON here"})


def run(config: Config) -> list[dict[str, Any]]:
    rows = check_all(Path(config.index))
    print(format_checks(rows))
    if config.output:
        write_json(Path(config.output), rows)
    too_big = [
        f"{r['recipe']} ({r['launch']}: {r['memory_gib']['total']} GiB > {r['gpu']})" for r in rows if not r["fits"]
    ]
    if too_big:
        raise ValueError(f"recipes estimated not to fit their GPU: {', '.join(too_big)}")
    return rows

"""Configs as dataclasses: `--config FILE.yaml` gives the values, command-line flags override them.

Every sub-command has one config dataclass (TRL style: each field documented once in `metadata["help"]`,
which becomes `--help`). `parse_config` reads the YAML file first, rejects unknown keys with the file name,
then lets flags override.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from transformers import HfArgumentParser

from rairl.io import MAX_DEPTH, DataError, read_text, too_deep
from rairl.options import renamed_options

T = TypeVar("T")
logger = logging.getLogger(__name__)


def load_yaml(path: str | Path, known: set[str]) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"error: config file {path} not found")
    try:
        text = read_text(path)
        if (line := too_deep(text)) is not None:
            raise DataError(path, line, None, f"nested deeper than {MAX_DEPTH} levels")
        values = yaml.safe_load(text) or {}
    except DataError as err:
        raise SystemExit(f"error: {err}") from None
    except RecursionError:  # nesting the bracket count above cannot see (block indentation)
        raise SystemExit(f"error: {path}: nested too deeply to read") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f", line {where.line + 1}" if where is not None else ""
        raise SystemExit(f"error: {path}{line}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    if not isinstance(values, dict):
        raise SystemExit(f"error: {path}: expected a mapping of option: value, got {type(values).__name__}")
    unknown = sorted(set(values) - known)
    if unknown:
        raise SystemExit(f"error: {path}: unknown option(s) {unknown}; known options: {sorted(known)}")
    return values


def refuse_renamed(config_cls: type, names: list[str], where: str) -> None:
    """A renamed option given under its old name ends the run, naming the new one."""
    renamed = renamed_options(config_cls)
    for name in names:
        if name in renamed:
            raise SystemExit(f"error: {where}{name} was renamed {renamed[name]}; use that name")


def parse_config(config_cls: type[T], argv: Sequence[str], prog: str | None = None) -> T:
    """Parse `argv` into `config_cls`, with values from `--config FILE.yaml` under the flags."""
    refuse_renamed(config_cls, [a.split("=", 1)[0].removeprefix("--") for a in argv if a.startswith("--")], "flag --")
    parser = HfArgumentParser(config_cls, prog=prog)
    parser.add_argument("--config", default=None, help="YAML file of option: value; flags override it")
    pre, _ = parser.parse_known_args(argv)
    if pre.config:
        known = {f.name for f in dataclasses.fields(config_cls)}
        values = load_yaml(pre.config, known | set(renamed_options(config_cls)))
        refuse_renamed(config_cls, list(values), f"{pre.config}: option ")
        parser.set_defaults(**values)
    (config,) = parser.parse_args_into_dataclasses(args=list(argv))[:1]
    return config


SECRETS = ("api_key", "hub_token")  # options whose values are never logged or saved


def config_dict(config: Any) -> dict[str, Any]:
    """The config as a plain dict (for logging the full config at the start of a run and saving it), secrets
    masked."""
    return {
        k: "***" if k in SECRETS and v else str(v) if isinstance(v, Path) else v
        for k, v in dataclasses.asdict(config).items()
    }

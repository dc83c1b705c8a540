"""`rairl convert`: write a GGUF model (a file, or a bundled short name such as `smollm2-135m`) as a standard
safetensors folder with its tokenizer and chat template, which `from_pretrained` (and every rairl `--model`) loads.

    rairl convert --model smollm2-135m --output_dir models/smollm2-135m
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rairl.models.gguf import BUNDLED, bundled_file, convert_gguf

logger = logging.getLogger(__name__)


@dataclass
class Config:
    model: str = field(default="", metadata={"help": "a .gguf file or a bundled name: " + ", ".join(BUNDLED)})
    output_dir: str = field(default="", metadata={"help": "folder to write (safetensors, config, tokenizer)"})

    def __post_init__(self) -> None:
        if not self.model or not self.output_dir:
            raise ValueError(
                "rairl convert needs --model (a .gguf file or " + ", ".join(BUNDLED) + ") and --output_dir"
            )
        if self.model not in BUNDLED and not self.model.endswith(".gguf"):
            raise ValueError(f"--model {self.model}: expected a .gguf file or one of {sorted(BUNDLED)}")


def run(config: Config) -> dict[str, Any]:
    gguf = bundled_file(config.model) if config.model in BUNDLED else Path(config.model)
    if not gguf.is_file():
        raise FileNotFoundError(f"--model {config.model}: no such GGUF file")
    out = convert_gguf(gguf, config.output_dir)
    logger.info("wrote %s", out)
    return {"output_dir": str(out)}

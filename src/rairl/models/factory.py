"""Load a policy: `tiny` builds a Llama-architecture model from a config with the character tokenizer;
anything else is a Hugging Face model id or local path, loaded through the same `from_pretrained` calls (a GGUF
file or a bundled short name such as `smollm2-135m` is first converted to such a folder: `rairl.models.gguf`).

Weights load from safetensors only, and remote code runs only when the user asks (`trust_remote_code`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from rairl.chat import check_template
from rairl.io import DataError, read_json
from rairl.models.gguf import resolve_model
from rairl.models.tokenizer import build_char_tokenizer
from rairl.options import Options, check_number

logger = logging.getLogger(__name__)

TINY = "tiny"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ModelArgs(Options):
    model: str = field(default=TINY, metadata={"help": "'tiny' (built from config), a local path or a Hugging Face id"})
    hidden_size: int = field(default=128, metadata={"help": "tiny only: width of the Llama model"})
    num_layers: int = field(default=4, metadata={"help": "tiny only: number of decoder layers"})
    num_heads: int = field(default=4, metadata={"help": "tiny only: attention heads"})
    max_position_embeddings: int = field(default=512, metadata={"help": "tiny only: context length (positions)"})
    dtype: str = field(default="float32", metadata={"help": "float32 | bfloat16 | float16"})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank through peft; 0 trains all weights"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "module names LoRA adapts (TRL's ModelConfig name); 'all-linear': every linear layer"},
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "run a checkpoint's own code (off unless asked)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")
        check_number("--lora_r", self.lora_r, integer=True, low=0, rule="must be >= 0 (0: no LoRA)")
        if self.model == TINY:
            for name in ("hidden_size", "num_layers", "num_heads", "max_position_embeddings"):
                check_number(f"--{name}", getattr(self, name), integer=True, low=1, rule="must be >= 1")
        if self.model == TINY and self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads}); "
                "change one of them"
            )


def tiny_config(tokenizer, hidden_size: int, num_layers: int, num_heads: int, max_length: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_length,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )


def build_tiny(args: ModelArgs, seed: int = 0) -> tuple[PreTrainedModel, object]:
    tokenizer = build_char_tokenizer(model_max_length=args.max_position_embeddings)
    torch.manual_seed(seed)
    config = tiny_config(tokenizer, args.hidden_size, args.num_layers, args.num_heads, args.max_position_embeddings)
    model = LlamaForCausalLM(config).to(_DTYPES[args.dtype])
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def check_model_folder(path: str | os.PathLike, what: str = "model") -> None:
    """Refuse, in one line naming the path, what `from_pretrained` would fail on deep inside: a local path that does
    not exist, a file where a folder belongs, a folder without a config.json, or a config.json that is not JSON.
    A name that is not a local path is left to the Hugging Face hub (an `owner/name` id)."""
    text = str(path)
    p = Path(text).expanduser()
    expected = "expected a saved model folder (config.json and *.safetensors) or a Hugging Face id"
    if not p.exists():
        if text.startswith(("/", ".", "~")) or text.count("/") != 1 or p.suffix:
            raise FileNotFoundError(f"{what} {text}: no such folder; {expected}")
        return
    if not p.is_dir():
        raise FileNotFoundError(f"{what} {text}: is a file; {expected}")
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"{what} {text}: no config.json in this folder; {expected}")
    for config in sorted(p.glob("*.json")):  # config, generation config, tokenizer files, rairl's settings
        read_json(config)
    for weights in sorted(p.glob("*.safetensors")):
        check_safetensors(weights)


def check_safetensors(path: Path) -> None:
    """A safetensors file whose header parses and whose tensors fit in the file (a truncated copy does not)."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or 8 + n > size:
                raise ValueError(f"header length {n} does not fit in {size} bytes")
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise DataError(path, None, None, f"not a valid safetensors file ({err})") from None
    if 8 + n + end > size:
        raise DataError(path, None, None, f"truncated: its tensors need {8 + n + end} bytes, the file has {size}")
    if 8 + n + end < size:
        raise DataError(path, None, None, f"corrupt: its tensors end at byte {8 + n + end}, the file has {size}")


def load_tokenizer(path: str, trust_remote_code: bool = False):
    path = resolve_model(path)
    check_model_folder(path, "tokenizer of")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as err:  # noqa: BLE001 - transformers and tokenizers raise many kinds; one line for the user
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"tokenizer of {path}: cannot be loaded ({first}); expected tokenizer.json and "
            "tokenizer_config.json as `save_pretrained` writes them"
        ) from err
    check_template(tokenizer, path)
    if tokenizer.pad_token is None:  # many causal LMs ship without one; generation pads with EOS then
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_policy(args: ModelArgs, seed: int = 0) -> tuple[PreTrainedModel, object]:
    """`(model, tokenizer)` for `args.model`; LoRA adapters are added when `args.lora_r > 0`."""
    if args.model == TINY:
        model, tokenizer = build_tiny(args, seed)
    else:
        path = resolve_model(args.model)
        check_model_folder(path, "--model")
        tokenizer = load_tokenizer(path, args.trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=_DTYPES[args.dtype], use_safetensors=True, trust_remote_code=args.trust_remote_code
        )
        if model.generation_config.pad_token_id is None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    if args.lora_r > 0:
        model = add_lora(model, args.lora_r, args.lora_alpha, args.lora_target_modules)
    n = sum(p.numel() for p in model.parameters())
    logger.info("policy %s: %.2fM parameters", args.model, n / 1e6)
    return model, tokenizer


def lora_targets(names: list[str] | str) -> list[str] | str:
    """peft's `target_modules`: the string 'all-linear' alone, else the list of module names."""
    names = [names] if isinstance(names, str) else list(names)
    return "all-linear" if names == ["all-linear"] else names


def add_lora(
    model: PreTrainedModel, r: int, alpha: int, target_modules: list[str] | str = "all-linear"
) -> PreTrainedModel:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=lora_targets(target_modules), task_type="CAUSAL_LM")
    return get_peft_model(model, config)

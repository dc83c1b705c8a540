"""Model loading: the tiny Llama factory, Hugging Face ids or paths, LoRA."""

from rairl.models.factory import ModelArgs, build_tiny, load_policy, load_tokenizer
from rairl.models.tokenizer import build_char_tokenizer

__all__ = ["ModelArgs", "build_char_tokenizer", "build_tiny", "load_policy", "load_tokenizer"]

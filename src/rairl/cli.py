"""`rairl SUBCOMMAND [--config FILE.yaml] [--flags]`: parse a config, log it, run.

Each sub-command lives in one module of `rairl.commands` exposing `Config` (a dataclass) and `run(config)`, a thin
layer over the library (`rairl.trainers.sft.train`, `rairl.inference.rerank.rerank`, ...), which tests and
notebooks call directly. Only this module imports `rairl.commands`.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence

from safetensors import SafetensorError

from rairl.config import config_dict, parse_config
from rairl.registry import Registry, did_you_mean

COMMANDS: Registry[tuple[str, str]] = Registry(
    "command",
    {
        # name: (module, one-line description)
        "demo": ("rairl.commands.demo", "the paper's three claims end to end on the embedded default"),
        "sft": ("rairl.commands.sft", "supervised fine-tuning on the demonstrations (TRL SFTTrainer)"),
        "grpo": ("rairl.commands.grpo", "GRPO with the task's verifier reward (TRL GRPOTrainer)"),
        "airl": ("rairl.commands.airl", "adversarial IRL: learn the reward and train the policy on it"),
        "prm": ("rairl.commands.prm", "a process reward model trained from step labels (the labelled reference)"),
        "sample": ("rairl.commands.sample", "N samples per question, written as JSONL"),
        "score": ("rairl.commands.score", "score traces with a reward model"),
        "rerank": ("rairl.commands.rerank", "best-of-N reranking by the learned reward"),
        "localize": ("rairl.commands.localize", "first-error-step localisation"),
        "search": ("rairl.commands.search", "reward-guided search: best-of-N, step-level beam search, DVTS"),
        "eval": ("rairl.commands.eval", "greedy accuracy and pass@k with confidence intervals"),
        "report": ("rairl.commands.report", "HTML report with token heat maps and plots"),
        "convert": ("rairl.commands.convert", "a GGUF model (or smollm2-135m) as a safetensors folder"),
        "serve": ("rairl.commands.serve", "the learned reward as an HTTP server (OpenRLHF /get_reward, /score)"),
        "recipes": ("rairl.commands.recipes", "check the recipes without weights: parse, meta-device build, memory"),
    },
)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    return "usage: rairl COMMAND [--config FILE.yaml] [--option value ...]\n\ncommands:\n" + "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}.{did_you_mean(name, COMMANDS)}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    positional = getattr(module, "POSITIONAL", None)  # a module may name the field its one bare argument fills
    if positional and rest and not rest[0].startswith("-"):
        rest = [f"--{positional}", *rest]
    setup_logging()
    try:
        config = parse_config(module.Config, rest, prog=f"rairl {name}")
        logging.getLogger("rairl").info("rairl %s config: %s", name, json.dumps(config_dict(config), sort_keys=True))
        module.run(config)
    except (ValueError, OSError, SafetensorError, FloatingPointError) as err:
        # User errors (bad data, bad options, missing or broken files) and a run stopped for diverging end with
        # their message, not a stack trace; RAIRL_DEBUG=1 shows it.
        if os.environ.get("RAIRL_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

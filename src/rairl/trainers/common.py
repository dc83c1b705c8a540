"""What every trainer shares (SFT, GRPO, AIRL): training options, the demonstration dataset, a JSONL log, CPU
threads, resuming, and the final save.

The demonstrations are prompt/completion pairs `(x, τ_E)`: `x = task.prompt(ex)`, `τ_E = ex.expert`.
The final model and tokenizer are written at the root of `output_dir` (safetensors), so `--model OUTPUT_DIR`
loads them with `load_policy`; Trainer checkpoints stay in `output_dir/checkpoint-STEP/`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import PreTrainedModel, TrainerCallback

from rairl.chat import render_prompt
from rairl.io import atomic_dir
from rairl.options import Options
from rairl.tasks import Task
from rairl.trainers.monitor import SpikeCallback

logger = logging.getLogger(__name__)

LOG_FILE = "log.jsonl"
_LR_SCHEDULERS = ("linear", "cosine", "cosine_with_min_lr", "constant", "constant_with_warmup")
_PRECISIONS = ("no", "bf16", "fp16")


@dataclass
class TrainArgs(Options):
    # `train_steps`, not `max_steps`: TaskArgs already owns `--max_steps` (arith: most operations per problem).
    output_dir: str = field(default="runs/sft", metadata={"help": "run folder: checkpoints, logs, final model"})
    seed: int = field(default=0, metadata={"help": "seed of model initialisation, data order and dropout"})
    train_steps: int = field(default=1000, metadata={"help": "optimizer steps to train for"})
    per_device_batch_size: int = field(default=32, metadata={"help": "sequences per step on each device"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    learning_rate: float = field(default=1e-3, metadata={"help": "peak learning rate (AdamW)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    adam_beta2: float = field(default=0.999, metadata={"help": "AdamW second-moment decay β2"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "fraction of train_steps of linear warm-up, in [0, 1)"})
    lr_scheduler: str = field(default="cosine", metadata={"help": "schedule: " + ", ".join(_LR_SCHEDULERS)})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    logging_steps: int = field(default=10, metadata={"help": "log (log.jsonl, TensorBoard, console) every N steps"})
    save_steps: int = field(default=500, metadata={"help": "write a checkpoint every N steps"})
    save_total_limit: int | None = field(default=2, metadata={"help": "keep at most this many checkpoints"})
    resume: str | None = field(
        default=None,
        metadata={
            "help": "continue from a checkpoint: a checkpoint folder, 'last' (the newest in output_dir, error if "
            "none) or 'auto' (the newest if there is one, else start fresh)"
        },
    )
    report_to: str = field(default="tensorboard", metadata={"help": "'tensorboard' (under output_dir/runs) or 'none'"})
    threads: int = field(
        default=0, metadata={"help": "CPU threads for torch; 0 = $OMP_NUM_THREADS if set, else every usable core"}
    )
    mixed_precision: str = field(default="no", metadata={"help": "autocast on GPUs: 'no', 'bf16' or 'fp16'"})
    activation_checkpointing: bool = field(default=False, metadata={"help": "recompute activations to save memory"})

    def __post_init__(self) -> None:
        super().__post_init__()
        rules = [
            ("train_steps", self.train_steps >= 1, ">= 1"),
            ("per_device_batch_size", self.per_device_batch_size >= 1, ">= 1"),
            ("gradient_accumulation_steps", self.gradient_accumulation_steps >= 1, ">= 1"),
            ("learning_rate", self.learning_rate > 0, "> 0"),
            ("adam_beta2", 0 < self.adam_beta2 < 1, "in (0, 1)"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "in [0, 1)"),
            ("logging_steps", self.logging_steps >= 1, ">= 1"),
            ("save_steps", self.save_steps >= 1, ">= 1"),
            ("threads", self.threads >= 0, ">= 0 (0 = automatic)"),
            ("lr_scheduler", self.lr_scheduler in _LR_SCHEDULERS, f"one of {list(_LR_SCHEDULERS)}"),
            ("mixed_precision", self.mixed_precision in _PRECISIONS, f"one of {list(_PRECISIONS)}"),
            ("report_to", self.report_to in ("tensorboard", "none"), "'tensorboard' or 'none'"),
        ]
        for name, ok, rule in rules:
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {getattr(self, name)!r}")

    def trainer_kwargs(self) -> dict[str, Any]:
        """The `transformers.TrainingArguments` fields these options set (TRL configs subclass it)."""
        return dict(
            output_dir=self.output_dir,
            seed=self.seed,
            data_seed=self.seed,
            max_steps=self.train_steps,
            per_device_train_batch_size=self.per_device_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            adam_beta2=self.adam_beta2,
            warmup_steps=self.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps in transformers 5
            lr_scheduler_type=self.lr_scheduler,
            max_grad_norm=self.max_grad_norm,
            logging_steps=self.logging_steps,
            save_steps=self.save_steps,
            save_total_limit=self.save_total_limit,
            report_to=[] if self.report_to == "none" else [self.report_to],
            # TRL's configs default to bf16 autocast and activation checkpointing; both slow a small CPU model down.
            bf16=self.mixed_precision == "bf16",
            fp16=self.mixed_precision == "fp16",
            activation_checkpointing=self.activation_checkpointing,
            dataloader_pin_memory=torch.cuda.is_available(),
            dataloader_num_workers=0,  # the data is a few MB of token ids; worker processes only cost start-up time
        )


def set_threads(threads: int) -> int:
    """Set torch's intra-op threads and return the number set.

    0 means `OMP_NUM_THREADS` when it is set (a shared machine's budget), else every core this process may use.
    """
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    from_env = os.environ.get("OMP_NUM_THREADS", "")
    n = threads or (int(from_env) if from_env.isdigit() and int(from_env) > 0 else usable)
    torch.set_num_threads(n)
    return n


def demonstrations(task: Task, split: str = "train", tokenizer=None) -> Dataset:
    """`Dataset` of `{"prompt": x, "completion": τ_E}` from the expert traces of `task`'s `split`; with a
    `tokenizer`, x is rendered with its chat template (`rairl.chat.render_prompt`), so TRL's SFT trains on exactly
    the tokens that scoring and sampling condition on.

    Examples without an expert trace are skipped (and counted in the log); none left is an error.
    """
    examples = task.examples(split)
    rows = [
        {"prompt": render_prompt(tokenizer, task.prompt(ex)), "completion": ex.expert} for ex in examples if ex.expert
    ]
    skipped = len(examples) - len(rows)
    if skipped:
        logger.warning(
            "%s/%s: skipped %d of %d examples without an expert trace", task.name, split, skipped, len(examples)
        )
    if not rows:
        raise ValueError(
            f"{task.name}/{split}: none of the {len(examples)} examples has an expert trace to learn from; "
            "give a split with expert responses (for a jsonl task, see --trace_field)"
        )
    logger.info("%s/%s: %d demonstrations", task.name, split, len(rows))
    return Dataset.from_list(rows)


def log_callbacks() -> list[TrainerCallback]:
    """What every trainer logs through: loss/grad-norm spike warnings (they add `monitor/spikes` to the log dict,
    so they run first), then the JSONL log."""
    return [SpikeCallback(), JsonlLogCallback()]


class JsonlLogCallback(TrainerCallback):
    """Append every log dict (loss, learning rate, ...) with its step as one JSON line to `output_dir/log.jsonl`."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        path = Path(args.output_dir, LOG_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"step": state.global_step, **logs}) + "\n")


def save_final(model: PreTrainedModel, tokenizer, output_dir: str | os.PathLike) -> Path:
    """Write `model` (LoRA adapters merged) and `tokenizer` in safetensors at the root of `output_dir`.

    The files are first written whole into a staging folder (`atomic_dir`), then moved into `output_dir` one by
    one with atomic renames, `config.json` last: a crash never leaves a half-written file, and a `config.json`
    at the root means the weights beside it are complete. Checkpoints and logs in `output_dir` are kept.
    """
    output_dir = Path(output_dir)
    if hasattr(model, "merge_and_unload"):  # a peft model: merge the adapters so the folder loads on its own
        model = model.merge_and_unload()
    staging = output_dir / ".final"
    with atomic_dir(staging) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    names = sorted(os.listdir(staging), key=lambda name: name == "config.json")
    for name in names:
        os.replace(staging / name, output_dir / name)
    staging.rmdir()
    logger.info("final model and tokenizer saved in %s", output_dir)
    return output_dir


def finish(trainer, output_dir: str | os.PathLike, write_more: Callable[[], None]) -> None:
    """End of a run: the main process writes the final model and tokenizer (`save_final`) and whatever `write_more`
    adds; the other processes wait for it, so the outputs are complete when this returns on any process."""
    if trainer.accelerator.is_main_process:
        save_final(trainer.model, trainer.processing_class, output_dir)
        write_more()
    trainer.accelerator.wait_for_everyone()

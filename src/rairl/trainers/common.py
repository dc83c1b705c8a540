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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from transformers import PreTrainedModel, TrainerCallback

from rairl.chat import render_prompt
from rairl.io import atomic_dir, write_json
from rairl.options import Options
from rairl.tasks import Task
from rairl.trainers.monitor import SpikeCallback

logger = logging.getLogger(__name__)

LOG_FILE = "log.jsonl"
SUMMARY_FILE = "train_summary.json"  # written last by `finish`: steps, wall time, the command's config
FINAL_STAGING = ".final"  # `save_final` writes here first (a kill can leave it, or its temporaries, behind)


@dataclass
class RunArgs(Options):
    """What rairl adds to a TRL trainer config (`trl.SFTConfig`, `trl.GRPOConfig`) and the TRL defaults it changes.

    A trainer's config is TRL's class with this mixed in first (`class SFTConfig(RunArgs, trl.SFTConfig)`), so every
    TRL and `TrainingArguments` option keeps its TRL name, is accepted on the command line and in `--config` YAML,
    and reaches the trainer unchanged: the config object *is* the trainer's `args`. The fields below re-declare a
    TRL field only to change its default for small CPU runs; each help says what TRL's default is.
    """

    train_split: str = field(default="train", metadata={"help": "split of the task trained on"})
    threads: int = field(
        default=0, metadata={"help": "CPU threads for torch; 0 = $OMP_NUM_THREADS if set, else every usable core"}
    )
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "continue from a checkpoint: a checkpoint folder, 'last' (the newest complete one in output_dir, "
            "error if none) or 'auto' (the newest if there is one, else start fresh); unset, an output_dir that "
            "holds a checkpoint or a finished run is refused"
        },
    )
    validation_every: int = field(
        default=0,
        metadata={
            "help": "greedy accuracy on the validation split every N updates and at the last, the best step kept as "
            "the final model (as load_best_model_at_end; 0: off, the last step is final)"
        },
    )
    validation_stop_at: float = field(
        default=0.0,
        metadata={
            "help": "with --validation_every: stop once greedy validation accuracy reaches this, that step the final "
            "model (a base that lands where verifier RL still has room, whatever its seed; 0: off)"
        },
    )
    # TRL defaults changed (TRL's in the help):
    seed: int = field(
        default=0, metadata={"help": "seed of model initialisation, data order, dropout and sampling (TRL: 42)"}
    )
    bf16: bool | None = field(
        default=False, metadata={"help": "bf16 mixed precision (TRL: on unless fp16; off here: it slows CPUs)"}
    )
    activation_checkpointing: bool | None = field(
        default=False, metadata={"help": "recompute activations to save memory (TRL: on; off here: small models)"}
    )
    warmup_steps: float = field(
        default=0.05, metadata={"help": "linear warm-up: steps, or a fraction of max_steps when < 1 (TRL: 0)"}
    )
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "learning-rate schedule (TRL: linear)"})
    save_total_limit: int | None = field(default=2, metadata={"help": "keep at most this many checkpoints"})
    dataloader_num_workers: int = field(
        default=0, metadata={"help": "data-loader worker processes (0: the data is a few MB of token ids)"}
    )

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0 = automatic), got {self.threads}")
        if self.validation_every < 0:
            raise ValueError(f"validation_every must be >= 0 (0: off), got {self.validation_every}")
        if not 0 <= self.validation_stop_at <= 1 or (self.validation_stop_at and not self.validation_every):
            raise ValueError(f"validation_stop_at must be in [0, 1] and needs --validation_every, got "
                             f"{self.validation_stop_at} with validation_every {self.validation_every}")  # fmt: skip
        if self.data_seed is None:
            self.data_seed = self.seed
        if not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # pinning needs an accelerator; on CPU it only warns
        super().__post_init__()  # TRL's and TrainingArguments' own checks


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
    """Append every log dict (loss, learning rate, ...) with its step and `time_s` (seconds since this process began
    training: seconds per step without a timer of its own) as one JSON line to `output_dir/log.jsonl`."""

    start = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        path = Path(args.output_dir, LOG_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        row = {"step": state.global_step, **logs, "time_s": round(time.perf_counter() - self.start, 3)}
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def save_final(model: PreTrainedModel, tokenizer, output_dir: str | os.PathLike) -> Path:
    """Write `model` (LoRA adapters merged) and `tokenizer` in safetensors at the root of `output_dir`.

    The files are first written whole into a staging folder (`atomic_dir`), then moved into `output_dir` one by
    one with atomic renames, `config.json` last: a crash never leaves a half-written file, and a `config.json`
    at the root means the weights beside it are complete. Checkpoints and logs in `output_dir` are kept.
    """
    output_dir = Path(output_dir)
    if hasattr(model, "merge_and_unload"):  # a peft model: merge the adapters so the folder loads on its own
        model = model.merge_and_unload()
    staging = output_dir / FINAL_STAGING
    with atomic_dir(staging) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    names = sorted(os.listdir(staging), key=lambda name: name == "config.json")
    for name in names:
        os.replace(staging / name, output_dir / name)
    staging.rmdir()
    logger.info("final model and tokenizer saved in %s", output_dir)
    return output_dir


def finish(trainer, output_dir: str | os.PathLike, summary: dict, write_more: Callable[[], None] | None = None) -> None:
    """End of a run: the main process writes whatever `write_more` adds (first: the policy's save merges its LoRA
    adapters in place, and a shared base's discriminator lives in the same model), the final model and tokenizer
    (`save_final`), and last `summary` as `SUMMARY_FILE` (so a run folder holding it is finished, `finished`); the
    other processes wait for it, so the outputs are complete when this returns on any process."""
    if trainer.accelerator.is_main_process:
        if write_more is not None:
            write_more()
        save_final(trainer.model, trainer.processing_class, output_dir)
        write_json(Path(output_dir, SUMMARY_FILE), summary)
    trainer.accelerator.wait_for_everyone()


def finished(output_dir: str | os.PathLike) -> bool:
    """Whether a trainer's run in `output_dir` ran to its end and wrote everything (`finish`)."""
    return Path(output_dir, SUMMARY_FILE).is_file()

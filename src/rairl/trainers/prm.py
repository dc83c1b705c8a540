r"""A process reward model (PRM) trained from step labels: the labelled reward a learned one is read against
(DESIGN §2.7), and the home TRL's `PRMTrainer` left (removed in TRL PR #7133). The command is `rairl prm`.

A causal LM backbone with a scalar head on every position (`AutoModelForTokenClassification`, `num_labels = 1`), so
the score s_t sees only x, y_{\le t}. Each labelled step k is read at its last token t_k (the `step` granularity's
supervision points, `rairl.rewards.granularity`) and the trace at its last token T; M = those positions of a trace
that carry a label y ∈ [0, 1] (`rairl.trainers.prm_data`: hard or soft labels, ignored steps absent from M):

    bce   L = mean_traces (1/|M|) Σ_{t∈M} −[y_t log σ(s_t) + (1 − y_t) log(1 − σ(s_t))]      (s_t a logit)
    mse   L = mean_traces (1/|M|) Σ_{t∈M} (s_t − (y_t − ½))²                               (s_t a regression value)

Each trace's loss is averaged over its own labelled positions, so long and short traces weigh the same (as the
discriminator's, DESIGN §1.2). The regression head is fitted to y − ½ so that 0 is the boundary between a right and
a wrong step for both heads: `rairl localize`'s default τ = 0 (σ(s) = ½ for BCE) applies unchanged.

Backbones as the discriminator's: `--model tiny` (a fresh Llama of the given size, with the character tokenizer), a
saved causal LM folder such as a policy checkpoint (its decoder, a fresh head), a GGUF file or `smollm2-135m`
(converted once, `rairl.models.gguf`); `--lora_r` trains LoRA adapters (peft, `TOKEN_CLS`: the head trains in
full). Training is transformers' `Trainer` with a `compute_loss` of the equations above and crash-safe checkpoints
(`rairl.trainers.checkpoints`). The output folder holds the model (LoRA merged), its tokenizer and
`rairl_reward.json` (granularity `step`, score form `logit`: it reads no ℓ_t, no clipping), so
`RewardModel.from_pretrained` loads it and `rairl score / rerank / localize / search / serve` take it as they take a
learned reward.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import (
    AutoModelForTokenClassification,
    LlamaForTokenClassification,
    PreTrainedModel,
    Trainer,
    TrainingArguments,
)

from rairl.config import config_dict
from rairl.io import write_json
from rairl.models import ModelArgs, build_char_tokenizer, load_tokenizer
from rairl.models.factory import TINY, check_model_folder, lora_targets, tiny_config
from rairl.models.gguf import resolve_model
from rairl.registry import Registry
from rairl.reward_settings import SETTINGS_FILE, RewardSettings
from rairl.rewards.granularity import check_token_tensors
from rairl.tasks import TaskArgs, get_task
from rairl.traces import pad_rows
from rairl.trainers.checkpoints import AtomicCheckpoints, resolve_resume
from rairl.trainers.common import RunArgs, finish, log_callbacks, set_threads
from rairl.trainers.prm_data import FORMATS, encode_step_examples, read_step_examples, shuffle_labels

logger = logging.getLogger(__name__)

_DEFAULT_SEQ_LENGTH = 1024  # longest trace of a checkpoint other than the tiny model

# ---------------------------------------------------------------- the losses: (s, y, mask) (B, T) -> scalar

StepLoss = Callable[[Tensor, Tensor, Tensor], Tensor]
PRM_LOSSES: Registry[StepLoss] = Registry("loss")


def per_trace_mean(losses: Tensor, mask: Tensor) -> Tensor:
    """mean over traces holding a label of (1/|M_b|) Σ_{t∈M_b} losses_bt. (B, T), bool (B, T) -> scalar."""
    check_token_tensors(mask, losses=losses)
    counts = mask.sum(1)  # (B,)
    rows = counts > 0
    if not rows.any():  # a batch without labels: a zero that still reaches every parameter
        return (losses * 0).sum()
    per_row = torch.where(mask, losses, torch.zeros_like(losses)).sum(1)[rows] / counts[rows]  # (B',)
    return per_row.mean()


@PRM_LOSSES.register("bce")
def step_bce(scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """BCE of σ(s_t) against y_t ∈ [0, 1] on the labelled positions (hard or soft labels)."""
    losses = F.binary_cross_entropy_with_logits(scores, labels.to(scores.dtype), reduction="none")
    return per_trace_mean(losses, mask)


@PRM_LOSSES.register("mse")
def step_mse(scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """(s_t − (y_t − ½))² on the labelled positions: a regression head whose 0 is the decision boundary."""
    return per_trace_mean((scores - (labels.to(scores.dtype) - 0.5)) ** 2, mask)


# ---------------------------------------------------------------- config


@dataclass
class PRMArgs(TaskArgs, ModelArgs):
    """What the PRM is trained on and with: the labelled files, their format, the loss."""

    train_file: str = field(
        default="", metadata={"help": "comma-separated JSONL files of step-labelled traces (see --data_format)"}
    )
    data_format: str = field(
        default="auto",
        metadata={"help": "auto (from each file's first row) | " + " | ".join(sorted(FORMATS))},
    )
    loss: str = field(default="bce", metadata={"help": "bce (a logit head, hard or soft labels) | mse (regression)"})
    shuffle_labels: bool = field(
        default=False, metadata={"help": "control: permute label lists across traces of equal step count"}
    )
    max_length: int | None = field(
        default=None,
        metadata={
            "help": f"longest trace in tokens (prompts cut from the left); default: tiny's positions, else "
            f"{_DEFAULT_SEQ_LENGTH}"
        },  # fmt: skip
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.train_files:
            raise ValueError("--train_file is required: JSONL of step-labelled traces (stepwise, processbench rows "
                             "of your own, or `rairl sample` rows)")  # fmt: skip
        if self.data_format != "auto":
            FORMATS.lookup(self.data_format)
        PRM_LOSSES.lookup(self.loss)
        if self.max_length is None:
            self.max_length = self.max_position_embeddings if self.model == TINY else _DEFAULT_SEQ_LENGTH
        if self.max_length < 2:
            raise ValueError(f"max_length must be >= 2 tokens, got {self.max_length}")
        if self.model == TINY and self.max_length > self.max_position_embeddings:
            raise ValueError(f"max_length ({self.max_length}) exceeds the tiny model's --max_position_embeddings "
                             f"({self.max_position_embeddings}); lower one or raise the other")  # fmt: skip

    @property
    def train_files(self) -> list[str]:
        return [p.strip() for p in self.train_file.split(",") if p.strip()]


@dataclass
class PRMConfig(PRMArgs, RunArgs, TrainingArguments):
    """`TrainingArguments` (every option, transformers' names) with rairl's defaults for small CPU runs."""

    max_steps: int = field(default=300, metadata={"help": "optimizer steps to train for"})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "traces per step on each device"})
    learning_rate: float = field(
        default=1e-3, metadata={"help": "peak learning rate (AdamW; a fresh tiny model; ~1e-5 for a pretrained one)"}
    )
    adam_beta2: float = field(default=0.95, metadata={"help": "AdamW second-moment decay β2 (transformers: 0.999)"})
    logging_steps: float = field(default=10, metadata={"help": "log every this many steps"})
    output_dir: str | None = field(default="runs/prm", metadata={"help": "run folder: checkpoints, logs, final PRM"})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "keep the label columns the collator reads (transformers: True)"}
    )


# ---------------------------------------------------------------- model, batches, trainer


def build_prm(args: ModelArgs, seed: int = 0) -> tuple[PreTrainedModel, Any]:
    """`(token-classification model with num_labels = 1, tokenizer)` for `args.model` (module docstring)."""
    if args.model == TINY:
        tokenizer = build_char_tokenizer(model_max_length=args.max_position_embeddings)
        config = tiny_config(tokenizer, args.hidden_size, args.num_layers, args.num_heads,
                             args.max_position_embeddings)  # fmt: skip
        config.num_labels = 1
        torch.manual_seed(seed)
        model = LlamaForTokenClassification(config).to(getattr(torch, args.dtype))
    else:
        path = resolve_model(args.model)
        check_model_folder(path, "--model")
        tokenizer = load_tokenizer(path, args.trust_remote_code)
        torch.manual_seed(seed)  # the fresh head's draw
        model = AutoModelForTokenClassification.from_pretrained(
            path, num_labels=1, dtype=getattr(torch, args.dtype), use_safetensors=True,
            trust_remote_code=args.trust_remote_code,
        )  # fmt: skip
    if args.lora_r > 0:
        from peft import LoraConfig, TaskType, get_peft_model

        # the head is trained in full (TOKEN_CLS's modules_to_save), so LoRA must not target it too
        lora = LoraConfig(task_type=TaskType.TOKEN_CLS, r=args.lora_r, lora_alpha=args.lora_alpha,
                          target_modules=lora_targets(args.lora_target_modules), exclude_modules=["score"])  # fmt: skip
        model = get_peft_model(model, lora)
    n = sum(p.numel() for p in model.parameters())
    logger.info("prm backbone %s: %.2fM parameters", args.model, n / 1e6)
    return model, tokenizer


@dataclass
class StepLabelCollator:
    """Right-padded `input_ids`, `attention_mask`, and (B, T) `step_labels` (float32) with `step_mask` (bool): True
    exactly at a row's `label_positions`."""

    pad_token_id: int

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Tensor]:
        ids = pad_rows([list(f["input_ids"]) for f in features], self.pad_token_id)  # (B, T)
        attention = torch.zeros_like(ids)
        labels = torch.zeros(ids.shape, dtype=torch.float32)
        mask = torch.zeros(ids.shape, dtype=torch.bool)
        for b, f in enumerate(features):
            attention[b, : len(f["input_ids"])] = 1
            pos = torch.as_tensor(list(f["label_positions"]), dtype=torch.long)
            labels[b, pos] = torch.as_tensor(list(f["labels"]), dtype=torch.float32)
            mask[b, pos] = True
        return {"input_ids": ids, "attention_mask": attention, "step_labels": labels, "step_mask": mask}


class PRMTrainer(AtomicCheckpoints, Trainer):
    """transformers' `Trainer` with the step loss of the module docstring and crash-safe checkpoints."""

    def __init__(self, *args, loss: str = "bce", **kwargs):
        super().__init__(*args, **kwargs)
        self.step_loss = PRM_LOSSES.lookup(loss)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels, mask = inputs["step_labels"], inputs["step_mask"]
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        scores = outputs.logits.squeeze(-1).float()  # (B, T)
        loss = self.step_loss(scores, labels, mask)
        return (loss, outputs) if return_outputs else loss


def reward_settings(config: PRMArgs) -> RewardSettings:
    """What `RewardModel.from_pretrained` reads of a PRM: a value per step, the raw score (no ℓ_t), unclipped."""
    return RewardSettings(granularity="step", clip_beta=0.0, score_form="logit", step_reduce="last",
                          max_length=config.max_length)  # fmt: skip


def build_trainer(config: PRMConfig) -> PRMTrainer:
    """The task, data, model and trainer of a run, before any training (tests use it)."""
    task = get_task(config)
    examples = read_step_examples(config.train_files, task, config.data_format)
    if config.shuffle_labels:
        examples = shuffle_labels(examples, config.seed)
    model, tokenizer = build_prm(config, seed=config.seed)
    dataset = encode_step_examples(tokenizer, examples, config.max_length)
    n_labels = sum(len(y) for y in dataset["labels"])
    logger.info("prm: %d traces, %d labelled positions (steps and trace ends)", len(dataset), n_labels)
    if n_labels == 0:
        raise ValueError(f"{config.train_file}: no step carries a label; nothing to train on")
    return PRMTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                      data_collator=StepLabelCollator(tokenizer.pad_token_id), callbacks=log_callbacks(),
                      loss=config.loss)  # fmt: skip


def train(config: PRMConfig) -> dict[str, Any]:
    """Train a PRM on step labels; the final model, tokenizer and `rairl_reward.json` land in `output_dir`."""
    threads = set_threads(config.threads)
    resume_from = resolve_resume(config.resume_from_checkpoint, config.output_dir)
    trainer = build_trainer(config)
    logger.info("prm: %d steps of %d traces, loss %s, %d threads%s", config.max_steps,
                config.per_device_train_batch_size * config.gradient_accumulation_steps, config.loss, threads,
                f", resuming from {resume_from}" if resume_from else "")  # fmt: skip
    start = time.perf_counter()
    trainer.train_to_end(resume_from)
    wall_time_s = time.perf_counter() - start
    result = {"output_dir": config.output_dir, "steps": trainer.state.global_step, "wall_time_s": wall_time_s}
    settings = reward_settings(config)

    def write_settings() -> None:  # atomic, before config.json: a folder with config.json is complete
        write_json(Path(config.output_dir, SETTINGS_FILE), asdict(settings))

    finish(trainer, config.output_dir, {"command": "prm", "config": config_dict(config), **result}, write_settings)
    return result

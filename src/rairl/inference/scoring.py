"""Token, step and trace scores of traces under a saved reward model (DESIGN §2.1); the command is
`rairl.commands.score`.

Input JSONL: one trace per line, `prompt` (or `question`, turned into the task's prompt) and `response`; any other
field (a `rairl sample` file's id, answer, correct, ...) is copied to the output. Each output line adds

    tokens         the response's pieces under the reward model's tokenizer (EOS last)
    token_rewards  r_t per piece (backfilled with the reward model's granularity, clipped when it clips), or
                   f_t = r_t + ℓ_t unclipped with `--score_form f`
    step_scores    one value per step (`step_reduce`: r at the step's last token, or the step's minimum)
    trace_scores   {aggregation: value}

`RewardArgs` and `load_reward_model` are shared by `rairl rerank` and `rairl localize`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from rairl.io import DataError, read_jsonl, require
from rairl.reward_model import RewardModel
from rairl.reward_settings import RewardOverrides, RewardSettings, settings_values
from rairl.scores import AGGREGATIONS, NonFiniteScore, TraceScores, check_names
from rairl.tasks import Example, Task


def parse_aggregates(text: str) -> list[str]:
    """`"mean,min"` -> `["mean", "min"]`; an unknown name raises with the known ones."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError(f"aggregates must name at least one of {sorted(AGGREGATIONS)}, got {text!r}")
    check_names(names)
    return names


@dataclass
class RewardArgs(RewardOverrides):
    """The saved reward model and the settings to override (`RewardOverrides`, made from `RewardSettings`' fields;
    unset: as saved with it)."""

    RENAMED = {"gamma": "aggregate_discount"}  # `advantage_discount` is the other discount (R-AIRL training)

    reward_model: str = field(default="", metadata={"help": "saved discriminator directory (holds its tokenizer)"})
    aggregates: str = field(
        default=",".join(AGGREGATIONS), metadata={"help": "comma-separated aggregations of " + ", ".join(AGGREGATIONS)}
    )
    batch_size: int = field(default=32, metadata={"help": "traces per forward pass"})
    device: str = field(default="auto", metadata={"help": "'auto' (cuda when there is one), 'cpu', 'cuda', ..."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.reward_model:
            raise ValueError("--reward_model is required: a saved discriminator folder, e.g. runs/airl/discriminator")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        resolve_device(self.device)
        RewardSettings().override(**self.overrides())  # checks every setting given
        parse_aggregates(self.aggregates)

    def overrides(self) -> dict[str, Any]:
        """The `RewardSettings` fields these options set (None: keep the saved value)."""
        return settings_values(self)

    @property
    def aggregate_names(self) -> list[str]:
        return parse_aggregates(self.aggregates)


DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(device: str) -> str:
    """`auto`: cuda when there is one, else cpu; any other name must be a device of `DEVICE_TYPES` this machine has
    (`cuda:1` with one GPU, `tpu9`, `cuda` without CUDA are one-line errors, not a failure inside torch)."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        parsed = None
    if parsed is None or parsed.type not in DEVICE_TYPES:
        raise ValueError(f"--device {device!r}: not a device rairl runs on; use auto, cpu, cuda, cuda:N or mps")
    if parsed.type == "cuda" and (parsed.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s); use auto or cpu"
        )
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: MPS is not available here; use auto or cpu")
    return device


def load_reward_model(args: RewardArgs, task: Task) -> RewardModel:
    """The saved reward model with the task's step splitter and the settings `args` override, on `args.device`.
    Traces may use every position the discriminator has (longer prompts are cut from the left, never the
    response)."""
    model = RewardModel.from_pretrained(
        args.reward_model, step_spans=task.step_spans, batch_size=args.batch_size, **args.overrides()
    )
    if model.max_length is None:
        positions = getattr(model.discriminator.config, "max_position_embeddings", None)
        model.settings = model.settings.override(max_length=positions)
    return model.to(resolve_device(args.device))


def load_reference_model(path: str, args: RewardArgs, task: Task) -> RewardModel:
    """A labelled reference reward (a PRM folder, `rairl prm`) with its own saved settings (the learned reward's
    overrides do not apply to it), the task's step splitter, on `args.device`."""
    model = RewardModel.from_pretrained(path, step_spans=task.step_spans, batch_size=args.batch_size)
    if model.max_length is None:
        positions = getattr(model.discriminator.config, "max_position_embeddings", None)
        model.settings = model.settings.override(max_length=positions)
    return model.to(resolve_device(args.device))


def read_traces(path: str | os.PathLike, task: Task) -> list[tuple[int, dict[str, Any], str]]:
    """`(line, row, prompt)` per trace: the row's `prompt`, or the task's prompt for its `question`."""
    traces = []
    for line, row in read_jsonl(path):
        if "prompt" in row:
            prompt = require(row, "prompt", path, line, str)
        elif "question" in row:
            question = require(row, "question", path, line, str)
            prompt = task.prompt(Example(str(row.get("id", line)), question, str(row.get("answer", ""))))
        else:
            raise DataError(path, line, "prompt", f"missing: give 'prompt' or 'question' (fields: {sorted(row)})")
        response = row.get("response")
        if not isinstance(response, str):
            raise DataError(path, line, "response", f"expected str, got {type(response).__name__}")
        traces.append((line, row, prompt))
    if not traces:
        raise DataError(path, None, None, "no traces (the file is empty)")
    return traces


def score_rows(
    score: Callable[..., Any],
    prompts: list[str],
    responses: list[str],
    lines: list[int],
    path: str | os.PathLike,
    **options: Any,
) -> Any:
    """`score(prompts, responses, **options)` (a scorer's `score` or `score_parts`), a non-finite score reported at
    the file line of its trace."""
    try:
        return score(prompts, responses, **options)
    except NonFiniteScore as err:
        raise DataError(path, lines[err.index], "response", str(err)) from None


DISPLAY_DIGITS = 4  # significant digits of the token rewards `rairl rerank`/`localize` save for the report to show


def token_fields(response: str, scores: TraceScores, b: int, eos: str, digits: int | None = None) -> dict[str, list]:
    """`tokens` (trace b's response pieces, `eos` for a zero-width piece: EOS, last) and `token_rewards` (its token
    values), as `rairl score`, `rairl rerank` and `rairl localize` save them; `digits`: significant digits kept
    (None: all), for copies only shown (the report's heat maps)."""
    values = scores.tokens[b].tolist()
    return {
        "tokens": [response[s:e] if e > s else eos for s, e in scores.token_spans[b]],
        "token_rewards": values if digits is None else [float(f"{v:.{digits}g}") for v in values],
    }


def scored_row(row: dict[str, Any], scores: TraceScores, b: int, eos: str) -> dict[str, Any]:
    return {
        **row,
        **token_fields(row["response"], scores, b, eos),
        "step_scores": scores.steps[b],
        "trace_scores": {name: values[b] for name, values in scores.traces.items()},
    }

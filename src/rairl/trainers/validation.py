"""Each run at its best on validation, chosen inside the run (as `load_best_model_at_end` does for a loss).

Every `every` updates the policy answers the validation questions greedily; the accuracy is logged (`eval/greedy_
accuracy` in `log.jsonl`) and the weights of the best step so far are kept in `output_dir/best/` (a tie keeps the
earlier step: fewer updates for the same accuracy); with a stop accuracy, training ends at the first step that
reaches it (a stopping rule on validation). When training ends the best weights are loaded back into the
model, so the run's final save is its best checkpoint on validation, never on test. Greedy decoding draws no random
numbers, so a run with this callback follows the same trajectory as one without it.

The choice is per run: a budget tuned on another base can no longer leave one method below its base while another
"wins" (issue 38). The discriminator of an R-AIRL run is its last one (the reward model is not chosen by the
policy's accuracy).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetensors.torch import load_model, save_model
from transformers import TrainerCallback

from rairl.io import atomic_path, write_json
from rairl.tasks import Example, Task
from rairl.trainers.common import LOG_FILE

logger = logging.getLogger(__name__)

BEST_DIR = "best"
BEST_FILE = "best.json"  # {"step", "accuracy", "curve": [{"step", "accuracy"}]}, written after the weights


def greedy_accuracy(model, tokenizer, task: Task, examples: Sequence[Example]) -> float:
    """The share of `examples` the model answers right, greedily."""
    from rairl.inference.sampling import sample_rows

    rows = sample_rows(model, tokenizer, task, examples, greedy=True, batch_size=128, progress=False)
    return sum(bool(r["correct"]) for r in rows) / max(1, len(rows))


def read_best(output_dir: str | os.PathLike) -> dict[str, Any] | None:
    """What `BestOnValidation` recorded in `output_dir` (None before its first evaluation)."""
    path = Path(output_dir, BEST_DIR, BEST_FILE)
    return json.loads(path.read_text()) if path.is_file() else None


class BestOnValidation(TrainerCallback):
    """Greedy validation accuracy every `every` updates and at the last; the best step's weights kept and restored
    at the end (see the module docstring). Resumes from what an interrupted run recorded."""

    def __init__(self, task: Task, tokenizer, examples: Sequence[Example], every: int, stop_at: float = 0.0) -> None:
        if every < 1:
            raise ValueError(f"validation every {every} updates: give at least 1")
        self.task, self.tokenizer, self.examples, self.every = task, tokenizer, list(examples), every
        self.stop_at = stop_at  # stop once the accuracy reaches it (0: never); that step is then the best

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if not (step % self.every == 0 or step == state.max_steps) or not state.is_world_process_zero:
            return
        best = read_best(args.output_dir) or {"step": None, "accuracy": -1.0, "curve": []}
        if any(point["step"] == step for point in best["curve"]):
            return  # evaluated before an interruption
        if self.stop_at and best["accuracy"] >= self.stop_at:
            control.should_training_stop = True  # reached before an interruption
            return
        accuracy = greedy_accuracy(model, self.tokenizer, self.task, self.examples)
        best["curve"].append({"step": step, "accuracy": accuracy})
        folder = Path(args.output_dir, BEST_DIR)
        if accuracy > best["accuracy"]:
            best.update(step=step, accuracy=accuracy)
            with atomic_path(folder / "model.safetensors") as tmp:
                save_model(model, str(tmp))
        write_json(folder / BEST_FILE, best)
        logger.info("validation greedy accuracy %.3f at step %d (best %.3f at %d)", accuracy, step,
                    best["accuracy"], best["step"])  # fmt: skip
        state.log_history.append({"step": step, "eval/greedy_accuracy": accuracy})
        with Path(args.output_dir, LOG_FILE).open("a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "eval/greedy_accuracy": accuracy}) + "\n")
        if self.stop_at and accuracy >= self.stop_at:
            logger.info(
                "validation accuracy %.3f reached %.3f at step %d: training stops", accuracy, self.stop_at, step
            )
            control.should_training_stop = True

    def on_train_end(self, args, state, control, model=None, **kwargs):
        best = read_best(args.output_dir)
        if best is None or model is None:
            return
        load_model(model, str(Path(args.output_dir, BEST_DIR, "model.safetensors")))
        logger.info("kept the best step on validation: %d (greedy accuracy %.3f)", best["step"], best["accuracy"])


def validation_callbacks(config: Any, task: Task, tokenizer) -> list[TrainerCallback]:
    """`[BestOnValidation]` on the task's validation split when `config.validation_every` is set, else none."""
    if not config.validation_every:
        return []
    examples = task.examples("validation")
    return [BestOnValidation(task, tokenizer, examples, config.validation_every, config.validation_stop_at)]

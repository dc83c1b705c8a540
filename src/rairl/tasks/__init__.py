"""Task registry: `get_task(TaskArgs)` builds a task by name; an unknown name lists the known ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rairl.options import Options
from rairl.registry import Registry
from rairl.tasks.arith import ArithTask
from rairl.tasks.base import Example, Task
from rairl.tasks.countdown import CountdownTask
from rairl.tasks.countdown_gen import CountdownGenTask
from rairl.tasks.gsm8k import GSM8KTask
from rairl.tasks.jsonl import JsonlTask
from rairl.tasks.medreason import MedReasonTask
from rairl.tasks.mmlu_pro import MMLUProTask

TASKS: Registry[Callable[[TaskArgs], Task]] = Registry("task")


register = TASKS.register


@dataclass
class TaskArgs(Options):
    task: str = field(
        default="arith",
        metadata={"help": "task name: arith, countdown_gen, gsm8k, countdown, mmlu_pro, medreason, jsonl"},
    )
    data: str | None = field(
        default=None,
        metadata={"help": "file-based tasks: a .jsonl file (its stem names the split) or a folder of <split>.jsonl"},
    )
    question_field: str = field(default="question", metadata={"help": "jsonl task: field holding the question"})
    trace_field: str = field(
        default="trace", metadata={"help": "jsonl task: field holding the expert response (optional per row)"}
    )
    answer_field: str = field(default="answer", metadata={"help": "jsonl task: field holding the final answer"})
    min_ops: int = field(default=2, metadata={"help": "arith, countdown_gen: fewest operations in train/test problems"})
    max_ops: int = field(default=4, metadata={"help": "arith, countdown_gen: most operations in train/test problems"})
    ood_min_ops: int = field(default=5, metadata={"help": "arith, countdown_gen: fewest operations in the OOD split"})
    ood_max_ops: int = field(default=6, metadata={"help": "arith, countdown_gen: most operations in the OOD split"})
    max_operand: int = field(
        default=9, metadata={"help": "arith, countdown_gen: operands are drawn from 1..max_operand"}
    )
    ops: str = field(
        default="+-*", metadata={"help": "arith, countdown_gen: operations to draw from, a subset of '+-*/'"}
    )
    max_value: int = field(
        default=20, metadata={"help": "arith, countdown_gen: every running value stays in 0..max_value"}
    )
    n_train: int = field(default=5000, metadata={"help": "arith, countdown_gen: training problems"})
    n_eval: int = field(default=300, metadata={"help": "arith, countdown_gen: problems in each evaluation split"})
    task_seed: int = field(default=0, metadata={"help": "arith, countdown_gen: seed of the problem generator"})


def _generated(task: type[ArithTask], args: TaskArgs) -> Task:
    return task(
        min_ops=args.min_ops,
        max_ops=args.max_ops,
        ood_min_ops=args.ood_min_ops,
        ood_max_ops=args.ood_max_ops,
        max_operand=args.max_operand,
        ops=args.ops,
        max_value=args.max_value,
        n_train=args.n_train,
        n_eval=args.n_eval,
        seed=args.task_seed,
    )


@register("arith")
def _arith(args: TaskArgs) -> Task:
    return _generated(ArithTask, args)


@register("countdown_gen")
def _countdown_gen(args: TaskArgs) -> Task:
    return _generated(CountdownGenTask, args)


@register("gsm8k")
def _gsm8k(args: TaskArgs) -> Task:
    return GSM8KTask(args.data)


@register("countdown")
def _countdown(args: TaskArgs) -> Task:
    return CountdownTask(args.data)


@register("mmlu_pro")
def _mmlu_pro(args: TaskArgs) -> Task:
    return MMLUProTask(args.data)


@register("medreason")
def _medreason(args: TaskArgs) -> Task:
    return MedReasonTask(args.data)


@register("jsonl")
def _jsonl(args: TaskArgs) -> Task:
    return JsonlTask(
        args.data, question_field=args.question_field, trace_field=args.trace_field, answer_field=args.answer_field
    )


def get_task(args: TaskArgs) -> Task:
    return TASKS.lookup(args.task)(args)


__all__ = ["TASKS", "Example", "Task", "TaskArgs", "get_task", "register"]

"""The learned reward as a process reward model (PRM) in the shape outside search loops call, HuggingFace
`search-and-learn`'s:

    prm.score(questions: list[str], outputs: list[list[str]]) -> list[list[list[float]]]

`outputs[i]` are the candidate (partial) solutions of `questions[i]`; the result holds, for each question, for each
candidate, one score per reasoning step (the scorer's step view: a step is a line of the solution, so steps joined
by blank lines, as search-and-learn writes them, score one each). Candidates are scored as partial traces (no EOS
appended) unless `finished=True`. Any rairl scorer works: the learned reward (`RewardModel`) or a policy's
likelihood (`LikelihoodScorer`).
"""

from __future__ import annotations

from collections.abc import Callable

from rairl.tasks import Example, Task


class ProcessRewardModel:
    """`score(questions, outputs)` over a rairl scorer; `prompt` turns a question into the scorer's prompt."""

    def __init__(self, scorer, prompt: Callable[[str], str], *, step_reduce: str | None = None, finished=False):
        self.scorer, self.prompt, self.finished = scorer, prompt, finished
        self.step_reduce = step_reduce  # None: the scorer's own

    @classmethod
    def for_task(cls, scorer, task: Task, **kwargs) -> ProcessRewardModel:
        """Prompts as `task` writes them (`Task.prompt`) for a bare question."""
        return cls(scorer, lambda q: task.prompt(Example(id="", question=q, answer="")), **kwargs)

    def score(self, questions: list[str], outputs: list[list[str]]) -> list[list[list[float]]]:
        if len(questions) != len(outputs):
            raise ValueError(f"got {len(questions)} questions for {len(outputs)} lists of outputs")
        prompts = [self.prompt(q) for q, outs in zip(questions, outputs) for _ in outs]
        flat = [o for outs in outputs for o in outs]
        if not flat:
            return [[] for _ in outputs]
        views = self.scorer.score(prompts, flat, aggregates=(), step_reduce=self.step_reduce, partial=not self.finished)
        out, at = [], 0
        for outs in outputs:
            out.append([list(s) for s in views.steps[at : at + len(outs)]])
            at += len(outs)
        return out

r"""How a learned reward turns discriminator scores into the values people read, declared once (DESIGN §1.3, §2.1).

With v_t = s_t / temperature the discriminator's values and m_t the granularity mask (`rairl.rewards.granularity`):

    r_t = clip(backfill(v, m)_t, -β, β)          the reward R-AIRL trains on (score form `logit`)
    f_t = backfill(v, m)_t + ℓ_t                  the reward with the policy's log-likelihood added back (`f`)

AIRL's logit s_t holds a -log π entropy term, so a score that ranks traces by quality reads f_t (it needs a
likelihood-aware discriminator, which knows ℓ_t); training always uses r_t. The settings:

    granularity         which tokens carry a value: outcome | step | interval | dense
    interval            k of granularity `interval` (a value every k tokens)
    clip_beta           β of r_t (0: no clipping); f_t is never clipped
    score_form          what the scoring API reads, `logit` (r_t) or `f` (f_t); None: `f` when the discriminator
                        reads ℓ_t, else `logit`
    step_reduce         a step's score from its tokens' values, `last` or `min`; None: the score form's own (`min`
                        for f, whose ℓ_t at a step's last token, usually a newline, says little; `last` for logit,
                        whose running minimum remembers)
    aggregate_discount  γ of the `discounted` trace aggregation Σ_t γ^{n−t} r_t (not the advantage discount)
    max_length          longest trace in tokens (longer prompts are cut from the left); None: no limit

Training builds one from its options and saves it beside the discriminator (`rairl_reward.json`); inference loads
it and overrides only what the user sets (`RewardSettings.override`). Names are checked against the registries
(`GRANULARITIES`, `SCORE_FORMS`, `STEP_REDUCTIONS`); each entry carries its behaviour. The command-line options are
made from these fields (`settings_options`): one declaration of each setting, its default and its help.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, make_dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rairl.io import DataError, read_json
from rairl.options import Options, check_number
from rairl.registry import Registry
from rairl.rewards.backfill import backfill, clip
from rairl.rewards.granularity import GRANULARITIES, INTERVAL, Granularity
from rairl.scores import AGGREGATE_DISCOUNT, STEP_REDUCTIONS

SETTINGS_FILE = "rairl_reward.json"

# (v, ℓ or None, m, response mask, β) -> (B, T) token values
TokenValues = Callable[[Tensor, Tensor | None, Tensor, Tensor, float], Tensor]


@dataclass(frozen=True)
class ScoreForm:
    """A score form: what it computes from v_t (and ℓ_t), whether it needs ℓ_t, and the step reduction that suits
    it."""

    values: TokenValues
    needs_likelihood: bool
    step_reduce: str


SCORE_FORMS: Registry[ScoreForm] = Registry("score_form")


def token_rewards(v: Tensor, label_mask: Tensor, response_mask: Tensor, clip_beta: float) -> Tensor:
    """r_t = clip(backfill(v, m)_t, -β, β) on response tokens, 0 elsewhere (unclipped when β is 0)."""
    return clip(backfill(v, label_mask, response_mask), clip_beta)


def _logit(v: Tensor, ell: Tensor | None, label_mask: Tensor, response_mask: Tensor, clip_beta: float) -> Tensor:
    return token_rewards(v, label_mask, response_mask, clip_beta)


def _f(v: Tensor, ell: Tensor | None, label_mask: Tensor, response_mask: Tensor, clip_beta: float) -> Tensor:
    values = backfill(v, label_mask, response_mask)
    return torch.where(response_mask, values + ell, torch.zeros_like(values))


SCORE_FORMS.register("logit")(ScoreForm(_logit, needs_likelihood=False, step_reduce="last"))
SCORE_FORMS.register("f")(ScoreForm(_f, needs_likelihood=True, step_reduce="min"))


@dataclass(frozen=True)
class RewardSettings:
    """The reward's settings (module docstring); every value's type and range is checked when one is made."""

    granularity: str = field(default="dense", metadata={"help": "outcome | step | interval | dense"})
    interval: int = field(default=INTERVAL, metadata={"help": "granularity interval: a label every k tokens"})
    clip_beta: float = field(
        default=5.0, metadata={"help": "β: token rewards r_t are clipped to [-β, β] (0: unclipped)"}
    )
    score_form: str | None = field(
        default=None,
        metadata={
            "help": "what rerank/localise/score read: 'f' (s_t + ℓ_t, the reward with the likelihood added back) or "
            "'logit' (s_t, AIRL's reward; training always uses it); unset: f for a discriminator that reads ℓ_t"
        },
    )
    step_reduce: str | None = field(
        default=None,
        metadata={
            "help": "a step's score: 'last' (its last token's value) or 'min' (its worst token); unset: 'min' for "
            "score form f (ℓ_t of a step's last token says little), 'last' for logit"
        },
    )
    aggregate_discount: float = field(
        default=AGGREGATE_DISCOUNT, metadata={"help": "γ of the trace aggregation 'discounted', Σ γ^(n-t) r_t"}
    )
    max_length: int | None = field(default=None, metadata={"help": "longest trace in tokens (None: no limit)"})

    def __post_init__(self) -> None:
        for name, registry in (
            ("granularity", GRANULARITIES),
            ("score_form", SCORE_FORMS),
            ("step_reduce", STEP_REDUCTIONS),
        ):
            value = getattr(self, name)
            if value is None and name != "granularity":
                continue
            if not isinstance(value, str):
                raise ValueError(f"{name} must be a name, one of {sorted(registry)}; got {value!r}")
            registry.lookup(value)
        check_number("interval", self.interval, integer=True, low=1, rule="must be >= 1")
        check_number("clip_beta (--reward_clip)", self.clip_beta, low=0, rule="must be >= 0 (0: no clipping)")
        check_number("aggregate_discount", self.aggregate_discount, low=0, high=1, rule="must lie in [0, 1]")
        if self.max_length is not None:
            check_number("max_length", self.max_length, integer=True, low=2, rule="must be >= 2 (None: no limit)")

    @property
    def granularity_entry(self) -> Granularity:
        return GRANULARITIES[self.granularity]

    @property
    def form(self) -> ScoreForm:
        """The score form's entry (after `for_discriminator` has settled an unset one)."""
        if self.score_form is None:
            raise ValueError("score_form is not settled yet: call for_discriminator(uses_likelihood) first")
        return SCORE_FORMS[self.score_form]

    @property
    def step_reduction(self) -> str:
        """The step reduction asked for, else the score form's own."""
        return self.step_reduce or self.form.step_reduce

    def override(self, **changes) -> RewardSettings:
        """These settings with every change that is not None (what a user set on the command line)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def for_discriminator(self, uses_likelihood: bool) -> RewardSettings:
        """The settings with the score form settled for a discriminator that does (or does not) read ℓ_t."""
        if self.score_form is None:
            return replace(self, score_form="f" if uses_likelihood else "logit")
        if self.form.needs_likelihood and not uses_likelihood:
            raise ValueError(
                f"score_form {self.score_form!r} needs a likelihood-aware discriminator (one that reads ℓ_t); "
                "this one does not: use score_form 'logit'"
            )
        return self

    def save(self, folder: str | Path) -> None:
        (Path(folder) / SETTINGS_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> RewardSettings:
        """The settings saved in `folder` (defaults where the file, or one of its keys, is missing)."""
        path = Path(folder) / SETTINGS_FILE
        if not path.is_file():
            return cls()
        saved = read_json(path)
        known = [f.name for f in fields(cls)]
        if not isinstance(saved, dict) or (unknown := sorted(set(saved) - set(known))):
            what = f"unknown settings {unknown}" if isinstance(saved, dict) else "expected a JSON object"
            raise DataError(path, None, None, f"{what}; known: {known}")
        if "clip_beta" in saved and saved["clip_beta"] is None:  # written before 0 meant "no clipping"
            saved["clip_beta"] = 0.0
        try:
            return cls(**saved)
        except ValueError as err:
            raise DataError(path, None, None, str(err)) from None


OPTION_NAMES = {"clip_beta": "reward_clip"}  # a setting's command-line name where it differs from the field's
NOT_OPTIONS = ("max_length",)  # set from the model's positions, not by hand


def settings_options(name: str, *, saved: bool, settings: type = RewardSettings) -> type:
    """A dataclass of one option per setting, from the settings' own fields (names, types, defaults, help): the
    training options (`saved=False`: the settings' defaults) or the inference ones (`saved=True`: every option None,
    meaning "as saved with the reward")."""
    hints = typing.get_type_hints(settings)
    specs = []
    for f in fields(settings):
        if f.name in NOT_OPTIONS:
            continue
        help_text = f.metadata.get("help", f.name) + ("; default: as saved with the reward" if saved else "")
        kind = hints[f.name] | None if saved else hints[f.name]
        specs.append((OPTION_NAMES.get(f.name, f.name), kind, field(default=None if saved else f.default,
                                                                     metadata={"help": help_text})))  # fmt: skip
    return make_dataclass(name, specs, bases=(Options,))


def settings_values(options: Any, settings: type = RewardSettings) -> dict[str, Any]:
    """{setting: value} of the options `settings_options` made (None: as saved, at inference)."""
    return {
        f.name: getattr(options, OPTION_NAMES.get(f.name, f.name))
        for f in fields(settings)
        if f.name not in NOT_OPTIONS
    }


RewardOptions = settings_options("RewardOptions", saved=False)  # `rairl airl`: the reward it trains is saved with these
RewardOverrides = settings_options("RewardOverrides", saved=True)  # inference: what to change of the saved settings

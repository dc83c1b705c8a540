"""`RewardSettings`: checked once through the registries, settled for a discriminator, saved and overridden; the
registry entries carry what the trainers and the scoring API do with a name."""

import json

import pytest
import torch

from rairl.io import DataError
from rairl.reward_settings import SCORE_FORMS, SETTINGS_FILE, RewardSettings
from rairl.rewards.granularity import GRANULARITIES


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(granularity="dnese"), "unknown granularity 'dnese'.*Did you mean 'dense'"),
        (dict(score_form="logits"), "unknown score_form 'logits'.*Did you mean 'logit'"),
        (dict(step_reduce="max"), "unknown step_reduce 'max'"),
        (dict(interval=0), "interval must be >= 1"),
        (dict(clip_beta=-1.0), r"clip_beta \(--reward_clip\) must be >= 0 \(0: no clipping\)"),
        (dict(aggregate_discount=1.5), r"aggregate_discount must lie in \[0, 1\]"),
    ],
)
def test_every_setting_is_checked_when_made(changes, message):
    with pytest.raises(ValueError, match=message):
        RewardSettings(**changes)


def test_the_score_form_is_settled_by_the_discriminator():
    assert RewardSettings().for_discriminator(uses_likelihood=True).score_form == "f"
    assert RewardSettings().for_discriminator(uses_likelihood=False).score_form == "logit"
    assert RewardSettings(score_form="logit").for_discriminator(uses_likelihood=True).score_form == "logit"
    with pytest.raises(ValueError, match="needs a likelihood-aware discriminator"):
        RewardSettings(score_form="f").for_discriminator(uses_likelihood=False)


def test_the_step_reduction_follows_the_score_form_unless_set():
    assert RewardSettings(score_form="f").step_reduction == "min"
    assert RewardSettings(score_form="logit").step_reduction == "last"
    assert RewardSettings(score_form="f", step_reduce="last").step_reduction == "last"
    with pytest.raises(ValueError, match="not settled"):
        _ = RewardSettings().step_reduction


def test_override_changes_only_what_is_set():
    saved = RewardSettings(granularity="step", interval=3, aggregate_discount=0.5)
    changed = saved.override(granularity="interval", interval=None, aggregate_discount=None, step_reduce="min")
    assert changed == RewardSettings(granularity="interval", interval=3, aggregate_discount=0.5, step_reduce="min")


def test_save_and_load(tmp_path):
    settings = RewardSettings(granularity="interval", interval=4, clip_beta=0.0, score_form="f", max_length=64)
    settings.save(tmp_path)
    assert RewardSettings.load(tmp_path) == settings
    assert RewardSettings.load(tmp_path / "nothing-saved-here") == RewardSettings()


def test_a_saved_file_written_before_the_new_keys_loads_with_their_defaults(tmp_path):
    old = {"granularity": "dense", "interval": 8, "clip_beta": 5.0, "max_length": None, "score_form": "f"}
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(old))
    loaded = RewardSettings.load(tmp_path)
    assert (loaded.step_reduce, loaded.aggregate_discount) == (None, 0.9)
    (tmp_path / SETTINGS_FILE).write_text(json.dumps({**old, "clip_beta": None}))  # before 0 meant "no clipping"
    assert RewardSettings.load(tmp_path).clip_beta == 0.0


@pytest.mark.parametrize(
    "saved, message",
    [({"granularity": "dense", "gama": 0.9}, r"unknown settings \['gama'\]"), ({"granularity": "fine"}, "fine")],
)
def test_a_bad_saved_file_names_itself(tmp_path, saved, message):
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(saved))
    with pytest.raises(DataError, match=message) as err:
        RewardSettings.load(tmp_path)
    assert SETTINGS_FILE in str(err.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"interval": NaN}', "interval must be an integer, got nan"),
        ('{"interval": 2.5}', r"interval must be an integer, got 2.5 \(float\); it must be >= 1"),
        ('{"interval": 1e308}', "interval must be an integer, got 1e[+]308"),
        ('{"interval": 100000000000000000000}', "interval must lie within"),
        ('{"clip_beta": true}', r"clip_beta \(--reward_clip\) must be a number, got True \(bool\)"),
        ('{"clip_beta": Infinity}', r"clip_beta \(--reward_clip\) must be finite"),
        ('{"clip_beta": NaN}', r"clip_beta \(--reward_clip\) must be finite"),
        ('{"max_length": NaN}', "max_length must be an integer, got nan"),
        ('{"aggregate_discount": "0.9"}', r"aggregate_discount must be a number, got '0.9' \(str\)"),
        ('{"granularity": ["dense"]}', r"granularity must be a name, one of \['dense'"),
        ('{"score_form": {}}', "score_form must be a name"),
    ],
)
def test_a_saved_value_of_the_wrong_type_or_range_names_the_file_and_field(tmp_path, text, message):
    """Types and finite ranges of every field: what `json.loads` accepts (NaN, Infinity, true for a number) but the
    reward cannot use is one line naming the file, never a changed score or Python's own TypeError text."""
    (tmp_path / SETTINGS_FILE).write_text(text)
    with pytest.raises(DataError, match=message) as err:
        RewardSettings.load(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / SETTINGS_FILE}: ")


def test_only_the_outcome_granularity_rewards_a_trace_once():
    assert {name for name, entry in GRANULARITIES.items() if entry.outcome} == {"outcome"}
    assert RewardSettings(granularity="outcome").granularity_entry.outcome
    assert not RewardSettings(granularity="step").granularity_entry.outcome


def test_score_forms_by_hand():
    """v = (1, 3, -8) on a response of three tokens after one prompt token, label only on the last token."""
    v = torch.tensor([[9.0, 1.0, 3.0, -8.0]])
    ell = torch.tensor([[-7.0, -0.5, -1.0, -2.0]])
    response = torch.tensor([[False, True, True, True]])
    labels = torch.tensor([[False, False, False, True]])
    logit = SCORE_FORMS["logit"].values(v, None, labels, response, 5.0)
    f = SCORE_FORMS["f"].values(v, ell, labels, response, 5.0)
    assert logit.tolist() == [[0.0, -5.0, -5.0, -5.0]]  # backfilled from the last token, clipped to [-5, 5]
    assert f.tolist() == [[0.0, -8.5, -9.0, -10.0]]  # backfilled, unclipped, plus ℓ_t
    assert not SCORE_FORMS["logit"].needs_likelihood and SCORE_FORMS["f"].needs_likelihood


def test_each_setting_is_one_declaration_and_an_option_of_training_and_inference():
    """`rairl airl`'s options and the inference commands' overrides are made from `RewardSettings`' fields: a
    setting added there is an option of both, with its default (training) or None, "as saved" (inference)."""
    from dataclasses import dataclass, field, fields

    from transformers import HfArgumentParser

    from rairl.inference.scoring import RewardArgs
    from rairl.reward_settings import settings_options, settings_values
    from rairl.trainers.airl_config import AIRLArgs

    @dataclass(frozen=True)
    class More(RewardSettings):
        margin: float = field(default=0.5, metadata={"help": "a new setting"})

    train = HfArgumentParser(settings_options("Train", saved=False, settings=More))
    infer = HfArgumentParser(settings_options("Infer", saved=True, settings=More))
    (t,) = train.parse_args_into_dataclasses(["--margin", "0.25", "--reward_clip", "0"])
    (i,) = infer.parse_args_into_dataclasses([])
    defaults = {f.name: f.default for f in fields(More) if f.name != "max_length"}
    assert settings_values(t, More) == {**defaults, "margin": 0.25, "clip_beta": 0.0}
    assert set(settings_values(i, More).values()) == {None}
    assert "a new setting" in train.format_help() and "as saved with the reward" in infer.format_help()
    names = {"granularity", "interval", "reward_clip", "score_form", "step_reduce", "aggregate_discount"}
    assert names <= {f.name for f in fields(AIRLArgs)} and names <= {f.name for f in fields(RewardArgs)}
    assert AIRLArgs().reward_settings() == RewardSettings()  # the training defaults are the settings' own

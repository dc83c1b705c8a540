r"""The discriminator: a causal LM with a scalar head on every position (DESIGN §1.1).

Score and implicit reward, for a trace x, y_1..y_T (causal attention: s_t sees only x, y_{\le t}):

    s_t = w \cdot h_t + b  \;[+\; a_1 \ell_t + a_2 \min_{k \le t} \ell_k]        D_t = \sigma(s_t)
    v_t = \log D_t - \log(1 - D_t) = s_t      (divided by a temperature when one is set)

where h_t is the backbone's last hidden state and, in the *likelihood-aware* variant, \ell_t = \log p(y_t | x, y_{<t})
is an LM's log-probability of the token actually there: either the trainable backbone's, read through its frozen LM
head (`likelihood_from="backbone"`), or a frozen copy of the initial LM's (`"reference"`, which cannot drift away
from the base policy's likelihood as D trains). The running minimum (over response tokens) carries a
low-likelihood token forward, so a step-end or outcome position "remembers" an earlier slip. The head starts at
(w, b, a_1, a_2) = (init, 0, 0, 1) (`head_init="running_min"`) or all zero (`"zero"`: s_t = 0, D = 1/2 everywhere).

AIRL's discriminator is D = \sigma(f - \log\pi): the logit s_t carries a -\log\pi term (an entropy bonus: the
policy's own samples are likely under it, so separating experts from them rewards unlikely tokens). That belongs in
the training reward v_t = s_t; a score that ranks traces by quality reads f_t = s_t + \ell_t instead
(`rairl.reward_model`, `score_form="f"`), which at initialisation with `head_init="zero"` is exactly the
likelihood baseline \ell_t.

Its losses (BCE, non-negative PU, WGAN-GP), chosen by name: `rairl.discriminator_losses`.

Saved layout: the directory loads on its own with `AutoModelForTokenClassification.from_pretrained` (it computes
w·h_t + b); a likelihood-aware discriminator also writes `likelihood_head.safetensors` (the LM head and a_1, a_2),
restored by `Discriminator.from_pretrained`. With LoRA adapters on the backbone (`add_lora`, peft), the folder holds
the *merged* weights (base + B·A), so it still loads alone; the adapters themselves live in training checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, PretrainedConfig, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from rairl.io import DataError, read_json, require
from rairl.models.factory import check_model_folder, lora_targets
from rairl.models.gguf import resolve_model
from rairl.models.shared_base import DISC_ADAPTER, SharedBase
from rairl.prompt_sharing import shared_prompt_hidden

META_FILE = "rairl_discriminator.json"
LIKELIHOOD_FILE = "likelihood_head.safetensors"
LOGIT_CHUNK = 1024  # response positions per LM-head call (SmolLM2's 49k vocabulary: 0.2 GB of float32 logits)
REFERENCE_DIR = "reference"  # the frozen LM that ℓ_t is read from, when likelihood_from = "reference"
LIKELIHOOD_FROM = ("backbone", "reference")
HEAD_INITS = ("running_min", "zero")
LogProbs = Callable[[Tensor, Tensor, Tensor], Tensor]  # (input_ids, attention_mask, response_mask) -> ℓ (B, T)


class Discriminator(nn.Module):
    """Per-position scores `s` (B, T) of traces; see the module docstring for the equation."""

    def __init__(
        self,
        classifier: PreTrainedModel,
        lm_head: nn.Module | None = None,
        temperature: float = 1.0,
        *,
        reference: PreTrainedModel | None = None,
        shared: SharedBase | None = None,
    ):
        super().__init__()
        if lm_head is not None and reference is not None:
            raise ValueError("ℓ_t comes from the backbone's LM head or from a reference LM, not both")
        self.classifier = classifier  # *ForTokenClassification, num_labels = 1
        self.lm_head = lm_head
        if lm_head is not None:
            lm_head.requires_grad_(False)  # reads log-probs in the original LM's output space
        # plain attributes, not sub-modules: never in the optimiser, DDP or the classifier's state dict. A reference
        # of its own is frozen here; a shared base's is the policy's LM with its adapters off (`SharedBase.role`).
        self.__dict__["shared"] = shared
        self.__dict__["_ell_cache"] = LikelihoodCache()  # ℓ_t per trace, for a shared base's frozen W only
        if shared is not None and reference is not None and reference is not shared.lm:
            raise ValueError("on a shared base, ℓ_t is read from the shared base itself (adapters off)")
        if shared is None and reference is not None:
            reference.requires_grad_(False).eval()
        self.__dict__["reference"] = reference
        if self.uses_likelihood:
            self.likelihood = nn.Parameter(torch.tensor([0.0, 1.0]))  # (a_1, a_2)
        self.temperature = temperature

    @property
    def uses_likelihood(self) -> bool:
        return self.lm_head is not None or self.reference is not None

    @property
    def likelihood_from(self) -> str | None:
        return "reference" if self.reference is not None else "backbone" if self.lm_head is not None else None

    @property
    def config(self) -> PretrainedConfig:
        return self.classifier.config

    def head_parameters(self) -> list[nn.Parameter]:
        params = list(self.classifier.score.parameters())
        return params + ([self.likelihood] if self.uses_likelihood else [])

    def named_trainable(self) -> list[tuple[str, nn.Parameter]]:
        """What the discriminator's optimiser trains: the head, and the backbone's trainable weights (its own LoRA
        adapter on a shared base, never the policy's)."""
        if self.shared is None:
            return [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        own = {id(p) for p in self.shared.parameters(DISC_ADAPTER)} | {id(p) for p in self.head_parameters()}
        return [(n, p) for n, p in self.named_parameters() if id(p) in own]

    def zero_head(self) -> Discriminator:
        """w = 0, b = 0, a = 0: s_t = 0 everywhere (and f_t = ℓ_t, the likelihood baseline) until D trains."""
        with torch.no_grad():
            for p in self.head_parameters():
                p.zero_()
        return self

    def add_lora(self, r: int, alpha: int, target_modules: list[str] | str = "all-linear") -> Discriminator:
        """LoRA adapters (peft) on the backbone's `target_modules` (default every linear layer); the backbone
        freezes, the head (w, b, a) trains."""
        from peft import LoraConfig, get_peft_model

        prefix = self.classifier.base_model_prefix
        backbone = get_peft_model(
            getattr(self.classifier, prefix),
            LoraConfig(r=r, lora_alpha=alpha, target_modules=lora_targets(target_modules)),
        )
        setattr(self.classifier, prefix, backbone)
        return self

    @property
    def has_lora(self) -> bool:
        return self.shared is not None or hasattr(
            getattr(self.classifier, self.classifier.base_model_prefix), "merge_and_unload"
        )

    def merged_classifier(self) -> PreTrainedModel:
        """The classifier with its LoRA adapters merged into the weights (a copy); itself when it has none."""
        if self.shared is not None:  # a standalone classifier: W + B_D A_D under this head
            merged = AutoModelForTokenClassification.from_config(self.config)
            backbone = self.shared.merged(DISC_ADAPTER).get_decoder()
            getattr(merged, merged.base_model_prefix).load_state_dict(backbone.state_dict())
            merged.score.load_state_dict(self.classifier.score.state_dict())
            return merged.to(self.classifier.score.weight.dtype)
        if not self.has_lora:
            return self.classifier
        merged = copy.deepcopy(self.classifier)
        prefix = merged.base_model_prefix
        setattr(merged, prefix, getattr(merged, prefix).merge_and_unload())
        return merged

    def _apply(self, fn, *args, **kwargs):  # .to(device) / .float() reach a reference LM of its own too
        if self.reference is not None and self.shared is None:
            self.reference._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Scores s (B, T) in float32. `response_mask` (B, T) is needed by the likelihood-aware variant; with it,
        rows that share a prompt run the prompt through the backbone once (`rairl.prompt_sharing`)."""
        return self.terms(input_ids, attention_mask, response_mask)[0]

    def terms(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(s, ℓ): scores s (B, T) and the token log-likelihoods ℓ (B, T) they read (None without likelihood)."""
        base = getattr(self.classifier, self.classifier.base_model_prefix)
        with self.shared.role("discriminator") if self.shared is not None else contextlib.nullcontext():
            h = None if response_mask is None else shared_prompt_hidden(base, input_ids, attention_mask, response_mask)
            if h is None:  # no prompt shared between rows: one plain pass
                h = base(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
        s = self.classifier.score(self.classifier.dropout(h)).squeeze(-1).float()  # (B, T)
        if not self.uses_likelihood:
            return s, None
        if response_mask is None:
            raise ValueError("a likelihood-aware discriminator needs response_mask")
        if self.shared is not None:  # W is frozen: a trace's ℓ_t is computed once, then read (`LikelihoodCache`)
            ell = self._ell_cache.fill(input_ids, attention_mask, response_mask, self._shared_logprobs)  # (B, T)
        elif self.reference is not None:
            with torch.no_grad():
                ell = lm_logprobs(self.reference, input_ids, attention_mask, response_mask)  # (B, T)
        else:
            ell = token_logprobs(self.lm_head, h, input_ids, response_mask)  # (B, T), 0 outside the response
        running_min = torch.cummin(ell, dim=1).values
        return s + self.likelihood[0] * ell + self.likelihood[1] * running_min, ell

    def _shared_logprobs(self, input_ids, attention_mask, response_mask) -> torch.Tensor:
        with torch.no_grad(), self.shared.role("reference"):
            return lm_logprobs(self.reference, input_ids, attention_mask, response_mask)

    def rewards(self, scores: torch.Tensor) -> torch.Tensor:
        """v_t = log D_t - log(1 - D_t) = s_t, over the temperature."""
        return scores / self.temperature

    # ---------------------------------------------------------------- construction and checkpoints
    @classmethod
    def from_causal_lm(
        cls,
        model: PreTrainedModel,
        likelihood: bool,
        temperature: float = 1.0,
        *,
        likelihood_from: str = "backbone",
        head_init: str = "running_min",
    ) -> Discriminator:
        """A discriminator whose backbone starts from `model`'s weights (its decoder and, if asked, its LM head, or
        a frozen copy of the whole LM as the reference that ℓ_t is read from)."""
        if likelihood_from not in LIKELIHOOD_FROM or head_init not in HEAD_INITS:
            raise ValueError(
                f"likelihood_from must be one of {LIKELIHOOD_FROM} and head_init one of {HEAD_INITS}; "
                f"got {likelihood_from!r}, {head_init!r}"
            )
        peft = hasattr(model, "get_base_model")
        if peft:  # LoRA: start from the frozen base weights (the adapters are zero at initialisation)
            model = model.get_base_model()
        config = copy.deepcopy(model.config)
        config.num_labels = 1
        config.architectures = None
        classifier = AutoModelForTokenClassification.from_config(config)
        base = getattr(classifier, classifier.base_model_prefix)
        state = model.get_decoder().state_dict()
        if peft:
            state = {k.replace(".base_layer", ""): v for k, v in state.items() if "lora_" not in k}
        missing, unexpected = base.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"backbone weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
        classifier.to(model.dtype)
        lm_head = reference = None
        if likelihood and likelihood_from == "reference":
            reference = AutoModelForCausalLM.from_config(copy.deepcopy(model.config))
            full = model.state_dict()
            if peft:
                full = {k.replace(".base_layer", ""): v for k, v in full.items() if "lora_" not in k}
            reference.load_state_dict(full)
            reference.to(model.dtype)
        elif likelihood:
            source = model.get_output_embeddings()
            source = getattr(source, "base_layer", source)
            lm_head = nn.Linear(source.in_features, source.out_features, bias=source.bias is not None)
            lm_head.load_state_dict(source.state_dict())
            lm_head.to(model.dtype)
        disc = cls(classifier, lm_head, temperature, reference=reference)
        return disc.zero_head() if head_init == "zero" else disc

    @classmethod
    def from_shared_base(
        cls, shared: SharedBase, likelihood: bool = True, temperature: float = 1.0, *, head_init: str = "zero"
    ) -> Discriminator:
        """A discriminator over the policy's own base (`SharedBase`): its backbone is the policy's decoder under the
        discriminator's adapter, ℓ_t the adapter-free base's; only the head is new. No base weight is copied."""
        if head_init not in HEAD_INITS:
            raise ValueError(f"head_init must be one of {HEAD_INITS}, got {head_init!r}")
        lm = shared.lm
        config = copy.deepcopy(lm.config)
        config.num_labels = 1
        config.architectures = None
        with torch.device("meta"):  # the classifier's own backbone is never allocated: the shared one replaces it
            classifier = AutoModelForTokenClassification.from_config(config)
        setattr(classifier, classifier.base_model_prefix, lm.get_decoder())
        classifier.score = nn.Linear(config.hidden_size, 1).to(lm.dtype)
        disc = cls(classifier, None, temperature, reference=lm if likelihood else None, shared=shared)
        return disc.zero_head() if head_init == "zero" else disc

    @classmethod
    def from_checkpoint(cls, path: str, likelihood: bool, temperature: float = 1.0, **kwargs) -> Discriminator:
        """Start from a causal LM checkpoint (a path or Hugging Face id; safetensors only). `kwargs`: those of
        `from_causal_lm` (likelihood_from, head_init)."""
        model = AutoModelForCausalLM.from_pretrained(resolve_model(path), use_safetensors=True)
        return cls.from_causal_lm(model, likelihood, temperature, **kwargs)

    def save_pretrained(self, path: str | Path, tokenizer: PreTrainedTokenizerBase | None = None) -> None:
        path = Path(path)
        self.merged_classifier().save_pretrained(path)
        if tokenizer is not None:
            tokenizer.save_pretrained(path)
        meta = {
            "likelihood": self.uses_likelihood,
            "likelihood_from": self.likelihood_from,
            "temperature": self.temperature,
        }
        (path / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        if self.uses_likelihood:
            tensors = {"likelihood": self.likelihood.detach().contiguous()}
            if self.lm_head is not None:
                tensors.update({f"lm_head.{k}": v.contiguous() for k, v in self.lm_head.state_dict().items()})
            save_file(tensors, str(path / LIKELIHOOD_FILE))
        if self.shared is not None and self.uses_likelihood:
            self.shared.merged(None).save_pretrained(path / REFERENCE_DIR)
        elif self.reference is not None:
            self.reference.save_pretrained(path / REFERENCE_DIR)

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs) -> Discriminator:
        check_model_folder(path, "discriminator")
        path = Path(path)
        meta_path = path / META_FILE
        meta = read_meta(meta_path) if meta_path.is_file() else {"likelihood": False, "temperature": 1.0}
        try:
            return cls._load_folder(path, meta, **kwargs)
        except RuntimeError as err:  # torch's size mismatch: weights and config.json (or the head files) disagree
            first = str(err).splitlines()[0][:300]
            if "size mismatch" not in str(err) and "ignore_mismatched_sizes" not in str(err):
                raise  # out of memory and the like: not the folder's fault
            why = "tensor sizes differ" if "ignore_mismatched_sizes" in first else first  # transformers' says nothing
            raise ValueError(f"discriminator {path}: its weights do not fit its config.json ({why})") from None

    @classmethod
    def _load_folder(cls, path: Path, meta: dict, **kwargs) -> Discriminator:
        classifier = AutoModelForTokenClassification.from_pretrained(path, use_safetensors=True, **kwargs)
        lm_head = reference = None
        if meta["likelihood"]:
            tensors = load_file(str(path / LIKELIHOOD_FILE))
            if meta.get("likelihood_from", "backbone") == "reference":
                reference = AutoModelForCausalLM.from_pretrained(path / REFERENCE_DIR, use_safetensors=True, **kwargs)
            else:
                weight = tensors["lm_head.weight"]
                lm_head = nn.Linear(weight.shape[1], weight.shape[0], bias="lm_head.bias" in tensors)
                lm_head.load_state_dict(
                    {k.removeprefix("lm_head."): v for k, v in tensors.items() if k.startswith("lm_head.")}
                )
                lm_head.to(classifier.dtype)
        disc = cls(classifier, lm_head, meta["temperature"], reference=reference)
        if disc.uses_likelihood:
            disc.likelihood.data.copy_(tensors["likelihood"])
        return disc


class LikelihoodCache:
    """ℓ_t of the traces a frozen LM has scored, by their token ids: a trace met again (the update's policy samples
    in the scoring pass, an expert in a later step) is read, not run. Holds the `capacity` most recent traces."""

    def __init__(self, capacity: int = 4096):  # far above one batch: a batch never evicts its own rows
        self.capacity = capacity
        self.rows: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.hits = self.misses = 0

    @staticmethod
    def key(ids: torch.Tensor, attention: torch.Tensor, response: torch.Tensor) -> tuple:
        keep = attention.bool()
        return tuple(ids[keep].tolist()), tuple(response[keep].tolist())

    def fill(self, input_ids: Tensor, attention_mask: Tensor, response_mask: Tensor, compute: LogProbs) -> Tensor:
        """(B, T) ℓ of every row: cached rows copied in, the others `compute(ids, attention, response)`d together
        and kept."""
        keys = [self.key(*rows) for rows in zip(input_ids, attention_mask, response_mask)]
        missing = [b for b, k in enumerate(keys) if k not in self.rows]
        self.hits, self.misses = self.hits + len(keys) - len(missing), self.misses + len(missing)
        for k in keys:  # this batch's rows are the most recent: evicting makes room before them
            if k in self.rows:
                self.rows.move_to_end(k)
        if missing:
            idx = torch.tensor(missing, device=input_ids.device)
            fresh = compute(input_ids[idx], attention_mask[idx], response_mask[idx])  # (M, T)
            for row, b in enumerate(missing):
                self.rows[keys[b]] = fresh[row, attention_mask[b].bool()].detach()
                if len(self.rows) > self.capacity:
                    self.rows.popitem(last=False)
        ell = torch.zeros(input_ids.shape, dtype=torch.float32, device=input_ids.device)
        for b, k in enumerate(keys):
            ell[b, attention_mask[b].bool()] = self.rows[k]
        return ell


def read_meta(path: Path) -> dict:
    """The discriminator's `rairl_discriminator.json`, each field checked (a `DataError` names the one that is off)."""
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise DataError(path, None, None, f"expected a JSON object, got {type(meta).__name__}")
    require(meta, "likelihood", path, None, bool)
    temperature = require(meta, "temperature", path, None, (int, float))
    if isinstance(temperature, bool) or not temperature > 0:
        raise DataError(path, None, "temperature", f"must be a number > 0, got {temperature!r}")
    if meta.get("likelihood_from", "backbone") not in LIKELIHOOD_FROM + (None,):
        raise DataError(
            path, None, "likelihood_from", f"must be one of {LIKELIHOOD_FROM}, got {meta['likelihood_from']!r}"
        )
    return meta


def lm_logprobs(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor
) -> torch.Tensor:
    """ℓ_t of a causal LM on response tokens, 0 elsewhere (B, T) float32; rows sharing a prompt run it once."""
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    h = shared_prompt_hidden(decoder, input_ids, attention_mask, response_mask)
    if h is None:
        h = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
    return token_logprobs(head, h, input_ids, response_mask)


def token_logprobs(
    lm_head: nn.Module, h: torch.Tensor, input_ids: torch.Tensor, response_mask: torch.Tensor
) -> torch.Tensor:
    """ℓ_t = log p(y_t | x, y_<t) on response tokens, 0 elsewhere. h: (B, T, H) -> (B, T) float32.

    Only response positions go through the LM head, `LOGIT_CHUNK` at a time, as `logit(y_t) − logsumexp(logits)`:
    a large vocabulary costs (LOGIT_CHUNK × V) floats at once, not (response tokens × V) nor (B × T × V).
    """
    ell = torch.zeros(input_ids.shape, dtype=torch.float32, device=h.device)
    target = response_mask.clone()
    target[:, 0] = False  # the first token has no prediction
    rows, cols = target.nonzero(as_tuple=True)
    for start in range(0, rows.numel(), LOGIT_CHUNK):
        r, c = rows[start : start + LOGIT_CHUNK], cols[start : start + LOGIT_CHUNK]
        logits = lm_head(h[r, c - 1]).float()  # (N, V): position t-1 predicts token t
        ell[r, c] = logits.gather(1, input_ids[r, c, None]).squeeze(1) - logits.logsumexp(dim=-1)
    return ell

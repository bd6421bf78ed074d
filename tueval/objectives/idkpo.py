"""IdkPO: DPO with the forget answer as the rejected side (token-weighted) and a refusal as the chosen side."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Sequence

import torch
import torch.nn.functional as F

from ..data.collate import tokenize_pairs
from ..data.format import PROMPT_TEMPLATE
from ..errors import SpecError
from .base import OBJECTIVES, ForwardOut, Objective, batch_mean, masked_sum, model_forward

IDK_KEY = "idk_batch"


@lru_cache(maxsize=1)
def load_idk_answers() -> tuple[str, ...]:
    """The refusal answers shipped with tueval (``tueval/resources/idontknow.jsonl``, TOFU's list; one per line,
    plain text or a JSON string)."""
    text = resources.files("tueval").joinpath("resources/idontknow.jsonl").read_text(encoding="utf-8")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith(("\"", "{")):
            v = json.loads(line)
            line = v if isinstance(v, str) else str(v.get("answer", v.get("text", "")))
        out.append(line)
    return tuple(out)


def questions_from_batch(batch, tokenizer) -> list[str]:
    """Recover the question texts from a batch's prompt tokens (prompt = PROMPT_TEMPLATE)."""
    prefix, suffix = PROMPT_TEMPLATE.split("{question}")
    plen = batch.prompt_lengths.tolist()
    texts = tokenizer.batch_decode([batch.input_ids[i, :n] for i, n in enumerate(plen)], skip_special_tokens=True,
                                   clean_up_tokenization_spaces=False)
    out = []
    for i, t in enumerate(texts):
        if not (t.startswith(prefix) and t.endswith(suffix)):
            raise SpecError(f"example {batch.example_ids[i]}: prompt {t!r} does not match the template "
                            f"{PROMPT_TEMPLATE!r}")
        out.append(t[len(prefix): len(t) - len(suffix)])
    return out


def build_idk_batch(tokenizer, questions: Sequence[str], generator: torch.Generator | None = None,
                    answers: Sequence[str] | None = None, example_ids: Sequence[str] | None = None):
    """A Batch of the same questions, each with a refusal drawn uniformly (with ``generator``) from ``answers``
    (default: the shipped list)."""
    pool = list(answers if answers is not None else load_idk_answers())
    idx = torch.randint(len(pool), (len(questions),), generator=generator).tolist()
    return tokenize_pairs(tokenizer, list(questions), [pool[i] for i in idx], example_ids=example_ids)


def attach_idk_batch(batch, tokenizer, generator: torch.Generator | None = None,
                     questions: Sequence[str] | None = None):
    """``batch`` with ``extras['idk_batch']`` set (questions decoded from the batch unless given)."""
    qs = list(questions) if questions is not None else questions_from_batch(batch, tokenizer)
    batch.extras[IDK_KEY] = build_idk_batch(tokenizer, qs, generator, example_ids=batch.example_ids)
    return batch


@OBJECTIVES.register("idkpo")
class IdkPO(Objective):
    """IdkPO: -(2/beta) mean_i log sigmoid(beta [(lp_theta(y_w) - lp_ref(y_w)) - (lp_theta^w(y_l) - lp_ref^w(y_l))])
    with y_w a refusal (``forget_batch.extras['idk_batch']``, unweighted sums) and y_l the forget answer
    (token-weighted sums). Cost: policy forwards on forget + IDK, no-grad ref forwards on both."""

    name = "idkpo"
    data_parallel = True
    needs_ref = True
    ref_tokens = "logp"

    def __init__(self, beta: float = 0.1, gamma: float = 1.0, alpha: float = 1.0, retain_loss: str = "nll",
                 normaliser: str = "weight_sum", kl_positions: str = "all"):
        self.beta = beta
        super().__init__(gamma, alpha, retain_loss, normaliser, kl_positions)
        if beta <= 0:
            raise SpecError(f"objective 'idkpo': beta must be > 0, got {beta}")

    def prepare_batch(self, batch, tokenizer, generator: torch.Generator | None = None):
        """The forget batch with its refusal answers attached (``extras['idk_batch']``)."""
        return attach_idk_batch(batch, tokenizer, generator)

    def forget_term(self, out: ForwardOut, batch, weights: torch.Tensor, ref_out: ForwardOut | None = None,
                    model=None, ref_model=None):
        """DPO term preferring the refusal over the (weighted) forget answer."""
        idk = batch.extras.get(IDK_KEY)
        if idk is None:
            raise SpecError("objective 'idkpo' needs forget_batch.extras['idk_batch'] (same questions with refusal "
                            "answers); build it with tueval.objectives.idkpo.attach_idk_batch(batch, tokenizer, "
                            "generator)")
        if ref_model is None:
            raise SpecError("objective 'idkpo' needs ref_model for the refusal side")
        idk_out = model_forward(model, idk)
        with torch.no_grad():
            idk_ref = model_forward(ref_model, idk)
        m = idk.answer_mask.float()
        chosen = masked_sum(idk_out.logp - idk_ref.logp, m)
        rejected = masked_sum(out.logp - ref_out.logp.detach(), weights)
        loss = -(2.0 / self.beta) * batch_mean(F.logsigmoid(self.beta * (chosen - rejected)))
        return loss, {"chosen_log_ratio": batch_mean(chosen), "rejected_log_ratio": batch_mean(rejected)}

"""The prompt format shared by training, evaluation, unlearning and lm-eval export.

A tokenizer carries its workdir's ``PromptFormat`` (``set_format``; the embedded default when none is set), so
every stage that tokenises a question reads the same format from the tokenizer it is given. An example without a
question is raw text (a corpus chunk): no template, no answer prefix, the whole text is the answer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

PROMPT_TEMPLATE = "Question: {question}\nAnswer:"
"""The context; the answer follows as the continuation ``" " + answer`` and ends with EOS."""
SPECIAL_TOKEN_POLICIES = ("include", "exclude")
"""``include``: special tokens (EOS, end-of-turn, chat markup) count as answer tokens of a collated batch;
``exclude``: they keep their labels but leave ``answer_mask``, so no scorer, weighting or loss selects them."""
_ATTR = "tueval_format"


@dataclass(frozen=True)
class PromptFormat:
    """How a question becomes a prompt and an answer its continuation.

    ``chat``: the prompt is the tokenizer's chat template for one user turn (after ``system``, when given) with the
    assistant turn opened; the answer is the assistant's text and ends with the template's end-of-turn markup.
    Otherwise ``template`` (with ``{question}``) is the prompt, ``answer_prefix + answer`` the continuation and
    EOS the end. ``special_tokens`` is the policy of ``collate`` (see ``SPECIAL_TOKEN_POLICIES``)."""

    template: str = PROMPT_TEMPLATE
    answer_prefix: str = " "
    chat: bool = False
    system: str | None = None
    special_tokens: str = "include"

    def __post_init__(self):
        if "{question}" not in self.template:
            raise ValueError(f"prompt template {self.template!r} has no '{{question}}' placeholder")
        if self.special_tokens not in SPECIAL_TOKEN_POLICIES:
            raise ValueError(f"special_tokens must be one of {', '.join(SPECIAL_TOKEN_POLICIES)}, "
                             f"got {self.special_tokens!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "PromptFormat":
        return cls(**(d or {}))

    def with_policy(self, special_tokens: str) -> "PromptFormat":
        """The same format with another special-token policy."""
        return replace(self, special_tokens=special_tokens)


DEFAULT_FORMAT = PromptFormat()


def format_of(tokenizer: Any) -> PromptFormat:
    """The prompt format a tokenizer carries (the embedded default when none was set)."""
    return getattr(tokenizer, _ATTR, None) or DEFAULT_FORMAT


def set_format(tokenizer: Any, fmt: PromptFormat) -> Any:
    """Attach ``fmt`` to ``tokenizer`` (returned for chaining)."""
    setattr(tokenizer, _ATTR, fmt)
    return tokenizer


def with_special_tokens(tokenizer: Any, policy: str) -> Any:
    """``tokenizer`` itself when its format already has ``policy``, else a shallow copy carrying the format with
    that policy (evaluation scores every answer token, EOS included, as TOFU does)."""
    import copy

    fmt = format_of(tokenizer)
    if fmt.special_tokens == policy:
        return tokenizer
    return set_format(copy.copy(tokenizer), fmt.with_policy(policy))


def _messages(fmt: PromptFormat, question: str, answer: str | None = None) -> list[dict]:
    msgs = [{"role": "system", "content": fmt.system}] if fmt.system else []
    msgs.append({"role": "user", "content": question})
    if answer is not None:
        msgs.append({"role": "assistant", "content": answer})
    return msgs


def prompt_text(question: str, tokenizer: Any = None) -> str:
    """The prompt for a question (no BOS: the tokenizer's post-processor adds it); '' for raw text."""
    fmt = format_of(tokenizer)
    if not question:
        return ""
    if fmt.chat:
        return tokenizer.apply_chat_template(_messages(fmt, question), tokenize=False, add_generation_prompt=True)
    return fmt.template.format(question=question)


def continuation_text(answer: str, tokenizer: Any = None, raw: bool = False) -> str:
    """The answer as the continuation of the prompt (a leading space in the plain format, as lm-eval expects)."""
    fmt = format_of(tokenizer)
    return answer if raw or fmt.chat else fmt.answer_prefix + answer


def encode_prompts(tokenizer: Any, questions: Sequence[str]) -> list[list[int]]:
    """Token ids of each question's prompt: with the tokenizer's special tokens (BOS) for the plain format and
    raw text; as rendered for a chat template (which writes its own markup)."""
    if not questions:
        return []
    fmt = format_of(tokenizer)
    texts = [prompt_text(q, tokenizer) for q in questions]
    return [list(r) for r in tokenizer(texts, add_special_tokens=not fmt.chat)["input_ids"]]


def question_token_mask(tokenizer: Any, questions: Sequence[str], prompt_ids: Sequence[Sequence[int]]
                        ) -> list[list[bool]] | None:
    """Which prompt tokens carry the question's characters, per row (None for the embedded default format,
    whose question the scorers locate from ``PROMPT_TEMPLATE`` themselves). For a chat template or another
    template the scorers that hide the question (TokenUnlearn, TIF) read this mask instead."""
    fmt = format_of(tokenizer)
    if not fmt.chat and fmt.template == PROMPT_TEMPLATE:
        return None
    texts = [prompt_text(q, tokenizer) for q in questions]
    enc = tokenizer(texts, add_special_tokens=not fmt.chat, return_offsets_mapping=True)
    out = []
    for q, t, ids, offs, want in zip(questions, texts, enc["input_ids"], enc["offset_mapping"], prompt_ids):
        lo = t.rfind(q) if q else -1
        hi = lo + len(q)
        row = [lo >= 0 and e > s and s < hi and e > lo for s, e in offs]
        out.append(row if list(ids) == list(want) else [False] * len(want))
    return out


def end_ids(tokenizer: Any) -> list[int]:
    """The token ids that close an answer: EOS, or the chat template's end-of-turn markup (trailing whitespace
    after it belongs to the next turn)."""
    fmt = format_of(tokenizer)
    eos = tokenizer.eos_token_id
    if not fmt.chat:
        return [eos]
    cache = getattr(tokenizer, "_tueval_end_ids", None)
    if cache is not None and cache[0] == fmt:
        return list(cache[1])
    marker = "\x00tueval-answer\x00"
    full = tokenizer.apply_chat_template(_messages(fmt, "q", marker), tokenize=False)
    suffix = full[full.index(marker) + len(marker):].rstrip()
    ids = tokenizer(suffix, add_special_tokens=False)["input_ids"] if suffix else [eos]
    tokenizer._tueval_end_ids = (fmt, list(ids))
    return list(ids)


def special_token_ids(tokenizer: Any) -> list[int]:
    """Ids of the tokenizer's special tokens: BOS, EOS, PAD, UNK and every added token marked special (chat
    markup such as end-of-turn)."""
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    ids.update(i for i, t in added.items() if getattr(t, "special", False))
    return sorted(i for i in ids if i is not None)


def question_of(prompt: str, tokenizer: Any = None) -> str | None:
    """The question inside a plain-format prompt (None when ``prompt`` does not follow the template)."""
    fmt = format_of(tokenizer)
    if fmt.chat:
        return None
    prefix, suffix = fmt.template.split("{question}", 1)
    if prompt.startswith(prefix) and prompt.endswith(suffix) and len(prompt) >= len(prefix) + len(suffix):
        return prompt[len(prefix): len(prompt) - len(suffix)]
    return None

"""The prompt format shared by training, evaluation, unlearning and lm-eval export."""
from __future__ import annotations

PROMPT_TEMPLATE = "Question: {question}\nAnswer:"
"""The context; the answer follows as the continuation ``" " + answer`` and ends with EOS."""


def prompt_text(question: str) -> str:
    """The prompt for a question (no BOS: the tokenizer's post-processor adds it)."""
    return PROMPT_TEMPLATE.format(question=question)


def continuation_text(answer: str) -> str:
    """The answer as the continuation of the prompt (a leading space, as lm-eval expects)."""
    return " " + answer

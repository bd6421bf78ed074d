"""The Example contract: one QA pair with its paraphrase, perturbations and ground-truth fact spans."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Span:
    """A fact inside an answer: characters [start, end), its label, and whether other people share it."""

    start: int
    end: int
    label: str
    shared: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Example:
    """One question/answer row (TOFU-shaped) with ground-truth spans in answer characters."""

    id: str
    subject: str
    question: str
    answer: str
    paraphrased_answer: str = ""
    perturbed_answers: list[str] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    split: str = ""
    paraphrased_spans: list[Span] = field(default_factory=list)
    perturbed_spans: list[list[Span]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict in TOFU's field names plus tueval's span fields."""
        return {
            "id": self.id,
            "subject": self.subject,
            "question": self.question,
            "answer": self.answer,
            "paraphrased_answer": self.paraphrased_answer,
            "perturbed_answer": list(self.perturbed_answers),
            "spans": [s.to_dict() for s in self.spans],
            "paraphrased_spans": [s.to_dict() for s in self.paraphrased_spans],
            "perturbed_spans": [[s.to_dict() for s in ps] for ps in self.perturbed_spans],
            "split": self.split,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Example":
        """Inverse of ``to_dict`` (no validation; loaders validate)."""
        return cls(
            id=str(d["id"]),
            subject=d.get("subject", ""),
            question=d["question"],
            answer=d["answer"],
            paraphrased_answer=d.get("paraphrased_answer", "") or "",
            perturbed_answers=list(d.get("perturbed_answer", d.get("perturbed_answers", [])) or []),
            spans=[Span(**s) for s in d.get("spans", []) or []],
            split=d.get("split", ""),
            paraphrased_spans=[Span(**s) for s in d.get("paraphrased_spans", []) or []],
            perturbed_spans=[[Span(**s) for s in ps] for ps in d.get("perturbed_spans", []) or []],
        )

"""Answer-template distractors: the answer with each fact replaced by the value a perturbed answer gives it."""
from __future__ import annotations

from .schema import Example


def answer_distractors(ex: Example) -> list[str]:
    """One distractor per perturbed answer, in the ANSWER's wording (facts swapped by span label).

    TOFU-style perturbed answers follow the paraphrase's wording (so the truth ratio compares like with like);
    a multiple-choice task needs distractors in the answer's own wording, or a model that memorised the answer
    would recognise the wording instead of the facts. Labels missing from a perturbed answer keep their value;
    without spans the perturbed answers are returned as they are."""
    if not ex.spans or not ex.perturbed_spans:
        return list(ex.perturbed_answers)
    out = []
    for text, spans in zip(ex.perturbed_answers, ex.perturbed_spans):
        value_of: dict[str, list[str]] = {}
        for s in spans:
            value_of.setdefault(s.label, []).append(text[s.start:s.end])
        used: dict[str, int] = {}
        pieces, last = [], 0
        for s in sorted(ex.spans, key=lambda s: s.start):
            vals = value_of.get(s.label)
            k = used.get(s.label, 0)
            if vals:
                pieces += [ex.answer[last:s.start], vals[min(k, len(vals) - 1)]]
                used[s.label] = k + 1
            else:
                pieces += [ex.answer[last:s.end]]
            last = s.end
        pieces.append(ex.answer[last:])
        out.append("".join(pieces))
    return out

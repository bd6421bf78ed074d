"""The ``muse`` source: a folder in MUSE's layout (muse-bench/MUSE-News and MUSE-Books, one file per split).

``knowmem/forget_qa`` and ``knowmem/retain_qa`` (question, answer; optional ``*_qa_icl`` in-context examples),
``verbmem/forget`` (prompt, gt), ``privleak/forget`` and ``privleak/holdout`` (text), and optionally the
unlearning corpora ``raw/forget`` and ``raw/retain1`` (text). A name ``a/b`` is also found as ``a_b.*``. The
unlearning forget split is the raw forget corpus cut into chunks (``chunk_words``), or else the verbmem passages;
the retain split is the raw retain corpus, or else the retain knowmem questions.
"""
from __future__ import annotations

from ...config import checks
from ...errors import DataError
from ..benchmark import Benchmark
from ..format import PROMPT_TEMPLATE, PromptFormat
from ..schema import Example
from ..tofu import read_records
from . import SOURCES
from .base import BenchmarkSource, SourceSettings, find_split_file, qa_examples, raw_examples, require_folder

KNOWMEM_TEMPLATE = PROMPT_TEMPLATE
"""MUSE's knowmem prompt for one question (in-context examples are whole question/answer pairs before it)."""


def verbmem_examples(file, split: str) -> list[Example]:
    """Prompt/continuation pairs of a verbmem file (``prompt``, ``gt``): question = prompt, answer = gt."""
    out = []
    for i, rec in enumerate(read_records(file), start=1):
        vals = {}
        for f in ("prompt", "gt"):
            v = rec.get(f)
            if not isinstance(v, str) or not v.strip():
                raise DataError(str(file), i, f, "missing or empty (expected a non-empty string)")
            vals[f] = v
        rid = str(rec.get("id", f"{file.stem}_{i}"))
        out.append(Example(id=rid, subject=rid, question=vals["prompt"], answer=vals["gt"], split=split))
    return out


def _as_text(e: Example, split: str) -> Example:
    """A verbmem pair as one raw text (prompt and continuation joined as they were cut)."""
    sep = "" if e.question[-1:].isspace() or e.answer[:1].isspace() else " "
    return Example(id=e.id, subject=e.subject, question="", answer=(e.question + sep + e.answer).strip(), split=split)


@SOURCES.register("muse")
class MuseSource(BenchmarkSource):
    """MUSE: knowledge memorisation (QA), verbatim memorisation (continuations), privacy leakage (MIA texts)."""

    name = "muse"
    metrics = "muse"
    description = "MUSE's layout: knowmem/forget_qa, knowmem/retain_qa, verbmem/forget, privleak/{forget,holdout}"
    options = {"chunk_words": (checks.at_least_one, 200), "icl": (checks.optional(lambda f, v: checks.integer(
        f, v, low=0)), None), "max_new_tokens_verbmem": (checks.at_least_one, 128),
               "max_new_tokens_knowmem": (checks.at_least_one, 32)}
    prompt = PromptFormat()

    def read(self, settings: SourceSettings) -> Benchmark:
        base = require_folder(settings)
        n_words = int(settings.options.get("chunk_words", 200))
        splits: dict[str, list[Example]] = {}
        for name, file in (("knowmem_forget", "knowmem/forget_qa"), ("knowmem_retain", "knowmem/retain_qa")):
            splits[name] = qa_examples(find_split_file(base, [file], settings, None), name)
        for name, file in (("knowmem_forget_icl", "knowmem/forget_qa_icl"),
                           ("knowmem_retain_icl", "knowmem/retain_qa_icl")):
            f = find_split_file(base, [file], settings, None, required=False)
            if f is not None:
                splits[name] = qa_examples(f, name)
        splits["verbmem_forget"] = verbmem_examples(find_split_file(base, ["verbmem/forget"], settings, None),
                                                    "verbmem_forget")
        for name in ("forget", "holdout"):
            splits[f"privleak_{name}"] = raw_examples(find_split_file(base, [f"privleak/{name}"], settings, None),
                                                      f"privleak_{name}", 10 ** 9)
        raw_forget = find_split_file(base, [f"raw/{settings.forget or 'forget'}"], settings,
                                     "forget" if settings.forget else None, required=bool(settings.forget))
        retain_names = [f"raw/{settings.retain}"] if settings.retain else ["raw/retain1", "raw/retain"]
        raw_retain = find_split_file(base, retain_names, settings, "retain" if settings.retain else None,
                                     required=bool(settings.retain))
        splits["forget"] = (raw_examples(raw_forget, "forget", n_words) if raw_forget is not None
                            else [_as_text(e, "forget") for e in splits["verbmem_forget"]])
        splits["retain"] = (raw_examples(raw_retain, "retain", n_words) if raw_retain is not None
                            else [Example(id=e.id, subject=e.subject, question=e.question, answer=e.answer,
                                          split="retain") for e in splits["knowmem_retain"]])
        roles = {"forget": "forget", "retain": "retain", "holdout": "privleak_holdout", "utility": [],
                 "train_target": ["forget", "retain"], "train_retain": ["retain"],
                 "corpus": {"forget": str(raw_forget) if raw_forget else None,
                            "retain": str(raw_retain) if raw_retain else None}}
        return Benchmark(config=dict(settings.options), examples_by_split=splits, source=self.name, roles=roles)

    def evaluator(self):
        from ...evaluation.muse import evaluate_muse

        return evaluate_muse

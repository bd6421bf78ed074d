"""The ``wmdp`` source: multiple-choice files (WMDP's ``question, choices, answer``) plus optional text corpora.

``tasks`` names the forget-knowledge question files (e.g. ``wmdp_bio``), ``utility`` the MMLU-style question files
that measure what must stay (both by file stem in the folder); ``forget`` / ``retain`` name optional text corpora
(``{text}`` rows, e.g. WMDP's ``bio-forget-corpus``). Without a forget corpus the forget split is the task
questions with their correct answers; without a retain corpus the retain split is the utility questions.
"""
from __future__ import annotations

from typing import Any

from ...config import checks
from ...errors import SpecError
from ..benchmark import Benchmark
from ..schema import Example
from ..wmdp import MCRow, load_wmdp
from . import SOURCES
from .base import BenchmarkSource, SourceSettings, find_split_file, raw_examples, require_folder


def _names(field: str, v: Any) -> tuple[str, ...]:
    from ...config.schema import name_list

    out = name_list(field, v)
    if not out:
        raise checks.FieldError(field, "must name at least one file")
    return out


def _style(field: str, v: Any) -> str:
    return checks.choice(("auto", "letters", "cloze"))(field, v)


def mc_examples(rows: list[MCRow], split: str) -> list[Example]:
    """Multiple-choice rows as question/answer Examples (the correct choice is the answer; the others perturbed)."""
    return [Example(id=r.id, subject=split, question=r.question, answer=r.choices[r.answer],
                    perturbed_answers=[c for j, c in enumerate(r.choices) if j != r.answer], split=split)
            for r in rows]


@SOURCES.register("wmdp")
class WmdpSource(BenchmarkSource):
    """WMDP: hazardous-knowledge multiple choice (accuracy by lm-eval), MMLU-style utility tasks, text corpora."""

    name = "wmdp"
    metrics = "wmdp"
    description = "WMDP multiple-choice files (question, choices, answer) + optional forget/retain corpora"
    options = {"tasks": (_names, None), "chunk_words": (checks.at_least_one, 200), "style": (_style, "auto")}

    def read(self, settings: SourceSettings) -> Benchmark:
        base = require_folder(settings)
        tasks = settings.options.get("tasks")
        if not tasks:
            raise SpecError(f"{settings.key('tasks')}: missing key (the multiple-choice files of the forget "
                            "knowledge, e.g. [wmdp_bio])")
        n_words = int(settings.options.get("chunk_words", 200))
        mc = {t: load_wmdp(find_split_file(base, [t], settings, "tasks")) for t in tasks}
        utility = tuple(settings.utility or ())
        for u in utility:
            if u in mc:
                raise SpecError(f"{settings.key('utility')}: '{u}' is also a forget task (benchmark.tasks)")
            mc[u] = load_wmdp(find_split_file(base, [u], settings, "utility"))
        splits: dict[str, list[Example]] = {}
        fc = find_split_file(base, [settings.forget], settings, "forget") if settings.forget else None
        rc = find_split_file(base, [settings.retain], settings, "retain") if settings.retain else None
        splits["forget"] = (raw_examples(fc, "forget", n_words) if fc is not None
                            else [e for t in tasks for e in mc_examples(mc[t], "forget")])
        if rc is not None:
            splits["retain"] = raw_examples(rc, "retain", n_words)
        elif utility:
            splits["retain"] = [e for u in utility for e in mc_examples(mc[u], "retain")]
        else:
            raise SpecError(f"{settings.key('retain')}: missing key: the retain split needs a retain corpus "
                            "(benchmark.retain) or utility question files (benchmark.utility)")
        roles = {"forget": "forget", "retain": "retain", "holdout": None, "utility": list(utility),
                 "tasks": list(tasks), "train_target": ["forget", "retain"], "train_retain": ["retain"]}
        return Benchmark(config=dict(settings.options), examples_by_split=splits, source=self.name, roles=roles,
                         mc_tasks=mc)

    def evaluator(self):
        from ...evaluation.wmdp import evaluate_wmdp

        return evaluate_wmdp

    def export_lmeval(self, wd, out_dir):
        from ...evaluation.wmdp import export_wmdp_tasks

        return export_wmdp_tasks(wd.benchmark, out_dir)

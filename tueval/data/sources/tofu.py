"""The ``tofu`` source: a folder of TOFU-format files named by split, as TOFU names them.

``forget10``, ``retain90``, ``holdout10``, ``real_authors_perturbed``, ``world_facts_perturbed`` (``.json``,
``.jsonl`` or ``.parquet``). Paraphrased and perturbed answers are in the split file or in ``<split>_perturbed``
(the retain split's evaluation rows also in ``retain_perturbed``, TOFU's retain subset). Spans (tueval's fields)
are read where the rows carry them, or from an annotation file.
"""
from __future__ import annotations

import re
from pathlib import Path

from ...errors import DataError, SpecError
from ..benchmark import Benchmark
from ..schema import Example
from ..tofu import load_tofu_file
from . import SOURCES
from .base import BenchmarkSource, SourceSettings, find_split_file, require_folder

UTILITY = {"real_authors": ("real_authors_perturbed", "real_authors"),
           "world_facts": ("world_facts_perturbed", "world_facts")}
"""The two utility sets of TOFU's model utility and the file names each is looked up under."""
_FORGET = re.compile(r"forget(\d+)")


def _merge_perturbed(rows: list[Example], extra: list[Example]) -> list[Example]:
    """``rows`` with the paraphrased and perturbed answers of the matching ``extra`` rows (same question)."""
    by_q = {e.question: e for e in extra}
    out = []
    for e in rows:
        m = by_q.get(e.question)
        if m is not None and not e.perturbed_answers:
            e.paraphrased_answer = e.paraphrased_answer or m.paraphrased_answer
            e.perturbed_answers = list(m.perturbed_answers)
            e.paraphrased_spans = e.paraphrased_spans or m.paraphrased_spans
            e.perturbed_spans = e.perturbed_spans or m.perturbed_spans
        out.append(e)
    return out


def require_truth_ratio_fields(file: Path, rows: list[Example], what: str, paraphrase: bool = True) -> None:
    """Every row needs perturbed answers (and a paraphrased answer) for the truth ratio: DataError otherwise."""
    for i, e in enumerate(rows, start=1):
        if not e.perturbed_answers:
            raise DataError(str(file), i, "perturbed_answer", f"no perturbed answers (the truth ratio of {what} "
                            f"needs them): add them to the rows or give a '{file.stem}_perturbed' file beside it")
        if paraphrase and not e.paraphrased_answer:
            raise DataError(str(file), i, "paraphrased_answer", f"no paraphrased answer (the truth ratio of "
                            f"{what} needs one): add it to the rows or give a '{file.stem}_perturbed' file")


def _ids_from(rows: list[Example], base: list[Example]) -> list[Example]:
    """``rows`` with the ids of the ``base`` rows that ask the same question (so a subset keeps its ids)."""
    ids = {e.question: e.id for e in base}
    for e in rows:
        e.id = ids.get(e.question, e.id)
    return rows


@SOURCES.register("tofu")
class TofuSource(BenchmarkSource):
    """TOFU's files: forget/retain/holdout splits, their perturbed and paraphrased answers, the utility sets."""

    name = "tofu"
    description = "TOFU-format files named by split (forget10, retain90, holdout10, real_authors_perturbed, ...)"

    def read(self, settings: SourceSettings) -> Benchmark:
        base = require_folder(settings)
        if not settings.forget:
            raise SpecError(f"{settings.key('forget')}: missing key (the forget split, e.g. forget10)")
        if not settings.retain:
            raise SpecError(f"{settings.key('retain')}: missing key (the retain split, e.g. retain90)")
        forget_name, retain_name = settings.forget, settings.retain
        m = _FORGET.fullmatch(forget_name)
        holdout_name = settings.holdout or (f"holdout{m.group(1)}" if m else None)
        if holdout_name is None:
            raise SpecError(f"{settings.key('holdout')}: missing key (the holdout split of never-trained rows; "
                            f"it cannot be derived from the forget split name '{forget_name}')")

        f_file = find_split_file(base, [forget_name], settings, "forget")
        forget = load_tofu_file(f_file, split_name=forget_name)
        fp = find_split_file(base, [f"{forget_name}_perturbed"], settings, None, required=False)
        if fp is not None:
            forget = _merge_perturbed(forget, load_tofu_file(fp))
        require_truth_ratio_fields(f_file, forget, "the forget split")

        r_file = find_split_file(base, [retain_name], settings, "retain")
        retain = load_tofu_file(r_file, split_name=retain_name)
        rp = find_split_file(base, [f"{retain_name}_perturbed", "retain_perturbed"], settings, None, required=False)
        if rp is not None:
            retain_eval = _ids_from(load_tofu_file(rp, split_name="retain_eval"), retain)
            require_truth_ratio_fields(rp, retain_eval, "the retain set (model utility)")
        else:
            retain_eval = [e for e in retain if e.perturbed_answers]
            if not retain_eval:
                raise DataError(str(r_file), None, "perturbed_answer", "no row has perturbed answers (the truth "
                                "ratio of the retain set, a model-utility component, needs them): add them to the "
                                f"rows or give a '{retain_name}_perturbed' or 'retain_perturbed' file beside it")
            require_truth_ratio_fields(r_file, retain_eval, "the retain set (model utility)")
        if settings.retain_eval_n is not None:
            retain_eval = retain_eval[: settings.retain_eval_n]

        h_file = find_split_file(base, [holdout_name], settings, "holdout")
        holdout = load_tofu_file(h_file, split_name=holdout_name)

        splits = {forget_name: forget, retain_name: retain, "retain_eval": retain_eval, holdout_name: holdout}
        utility = []
        wanted = settings.utility if settings.utility is not None else None
        for canon, names in UTILITY.items():
            given = [u for u in (wanted or []) if u.startswith(canon)]
            if wanted is not None and not given:
                continue
            u_file = find_split_file(base, given or list(names), settings, "utility", required=bool(given))
            if u_file is None:
                continue
            rows = load_tofu_file(u_file, split_name=canon)
            require_truth_ratio_fields(u_file, rows, f"the {canon} utility set", paraphrase=False)
            splits[canon] = rows
            utility.append(canon)
        unknown = [u for u in (wanted or []) if not any(u.startswith(c) for c in UTILITY)]
        if unknown:
            raise SpecError(f"{settings.key('utility')}: unknown utility set(s) {', '.join(unknown)}; TOFU's model "
                            f"utility reads {' and '.join(n[0] for n in UTILITY.values())}")
        roles = {"forget": forget_name, "retain": retain_name, "holdout": holdout_name, "retain_eval": "retain_eval",
                 "utility": utility, "train_target": [forget_name, retain_name], "train_retain": [retain_name]}
        return Benchmark(config={"files": {k: str(v) for k, v in (("forget", f_file), ("retain", r_file),
                                                                   ("holdout", h_file))}},
                         examples_by_split=splits, source=self.name, roles=roles)

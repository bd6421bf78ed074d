"""Benchmark sources: the registry, a format added in one file, and what each built-in source reads."""
from __future__ import annotations

import sys
import textwrap

import pytest

from tueval.data.sources import SourceSettings, get_source, source_names
from tueval.errors import DataError, SpecError
from user_setup import muse_files, tofu_rows, wmdp_files, write_jsonl


def test_builtin_sources_are_registered():
    assert {"synthetic", "tofu", "muse", "wmdp"} <= set(source_names())
    with pytest.raises(SpecError, match="unknown benchmark source 'toffu'.*Did you mean tofu"):
        get_source("toffu")


def test_a_format_is_one_file(tmp_path, monkeypatch):
    (tmp_path / "csvqa.py").write_text(textwrap.dedent('''
        import csv
        from tueval.data.benchmark import Benchmark
        from tueval.data.schema import Example
        from tueval.data.sources import BenchmarkSource

        class CsvQA(BenchmarkSource):
            name = "csvqa"
            def read(self, s):
                rows = list(csv.DictReader(open(s.path / "qa.csv")))
                ex = [Example(id=str(i), subject=r["who"], question=r["q"], answer=r["a"],
                              perturbed_answers=[r["wrong"]], paraphrased_answer=r["a"]) for i, r in enumerate(rows)]
                splits = {"forget": ex[:1], "retain": ex[1:], "holdout": ex[1:]}
                return Benchmark({}, splits, source="csvqa", roles={"forget": "forget", "retain": "retain",
                                 "holdout": "holdout", "retain_eval": "retain"})
    '''))
    (tmp_path / "qa.csv").write_text("who,q,a,wrong\nAna,Where?,In Lisbon.,In Oslo.\nBo,When?,In 1950.,In 1960.\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    src = get_source("csvqa:CsvQA")
    bench = src.read(SourceSettings(source="csvqa:CsvQA", path=tmp_path))
    assert [e.answer for e in bench.split("forget")] == ["In Lisbon."]
    assert src.ground_truths(bench) == ("counterfactual",), "no spans: the counterfactual ground truth only"
    sys.modules.pop("csvqa", None)


def _tofu_dir(tmp_path, inline=True):
    d = tmp_path / "tofu"
    f = tofu_rows(3, "forget", perturbed=inline)
    write_jsonl(d / "forget05.json", f)
    if not inline:
        write_jsonl(d / "forget05_perturbed.json", tofu_rows(3, "forget"))
    write_jsonl(d / "retain95.json", tofu_rows(5, "retain"))
    write_jsonl(d / "holdout05.json", tofu_rows(2, "hold", perturbed=False))
    write_jsonl(d / "world_facts_perturbed.json", [{k: v for k, v in r.items() if k != "paraphrased_answer"}
                                                   for r in tofu_rows(2, "world")])
    return d


@pytest.mark.parametrize("inline", [True, False])
def test_tofu_source_reads_perturbed_answers_inline_or_beside(tmp_path, inline):
    d = _tofu_dir(tmp_path, inline)
    b = get_source("tofu").read(SourceSettings(source="tofu", path=d, forget="forget05", retain="retain95"))
    assert b.roles["holdout"] == "holdout05", "the holdout split follows the forget split's size"
    assert b.roles["utility"] == ["world_facts"], "only the utility sets present are used"
    assert all(len(e.perturbed_answers) == 3 and e.paraphrased_answer for e in b.split("forget05"))
    assert [e.id for e in b.retain_eval()] == [e.id for e in b.split("retain95")]
    assert b.train_examples("retain") == b.split("retain95")
    assert len(b.train_examples("target")) == 8


def test_tofu_retain_eval_n_caps_the_evaluation_rows(tmp_path):
    d = _tofu_dir(tmp_path)
    b = get_source("tofu").read(SourceSettings(source="tofu", path=d, forget="forget05", retain="retain95",
                                               retain_eval_n=2))
    assert len(b.retain_eval()) == 2


def test_tofu_unknown_utility_set_is_refused(tmp_path):
    d = _tofu_dir(tmp_path)
    with pytest.raises(SpecError, match="benchmark.utility: unknown utility set"):
        get_source("tofu").read(SourceSettings(source="tofu", path=d, forget="forget05", retain="retain95",
                                               utility=("world_facts_perturbed", "trivia")))


def test_tofu_utility_set_without_perturbed_answers(tmp_path):
    d = _tofu_dir(tmp_path)
    write_jsonl(d / "world_facts_perturbed.json", [{"question": "Q?", "answer": "A."}])
    with pytest.raises(DataError, match=r"world_facts_perturbed\.json, row 1, field 'perturbed_answer'.*truth ratio"):
        get_source("tofu").read(SourceSettings(source="tofu", path=d, forget="forget05", retain="retain95"))


def test_muse_source_reads_its_layout(tmp_path):
    b = get_source("muse").read(SourceSettings(source="muse", path=muse_files(tmp_path),
                                               options={"chunk_words": 12}))
    assert {"knowmem_forget", "knowmem_retain", "knowmem_forget_icl", "verbmem_forget", "privleak_forget",
            "privleak_holdout", "forget", "retain"} <= set(b.split_names())
    assert all(e.question == "" for e in b.split("forget")), "the raw forget corpus is raw text"
    assert max(len(e.answer.split()) for e in b.split("forget")) <= 12
    import json

    raw = json.loads((tmp_path / "muse" / "raw" / "forget.jsonl").read_text())["text"]
    assert " ".join(e.answer for e in b.split("forget")).split() == raw.split(), "the chunks cover the text"
    assert b.roles["holdout"] == "privleak_holdout"


def test_muse_missing_file_is_named(tmp_path):
    d = muse_files(tmp_path)
    (d / "verbmem" / "forget.jsonl").unlink()
    with pytest.raises(DataError, match=r"verbmem/forget\.\*.*missing split file"):
        get_source("muse").read(SourceSettings(source="muse", path=d))


def test_wmdp_source_reads_tasks_utility_and_corpus(tmp_path):
    d = wmdp_files(tmp_path)
    s = SourceSettings(source="wmdp", path=d, forget="bio_forget_corpus", utility=("mmlu_history",),
                       options={"tasks": ("wmdp_bio",), "chunk_words": 10})
    b = get_source("wmdp").read(s)
    assert set(b.mc_tasks) == {"wmdp_bio", "mmlu_history"} and len(b.mc_tasks["wmdp_bio"]) == 8
    assert all(e.question == "" for e in b.split("forget")), "the forget corpus, in chunks"
    assert {e.answer for e in b.split("retain")} == {"1900"}, "no retain corpus: the utility questions"
    no_corpus = get_source("wmdp").read(SourceSettings(source="wmdp", path=d, utility=("mmlu_history",),
                                                       options={"tasks": ("wmdp_bio",)}))
    assert [e.answer for e in no_corpus.split("forget")][:2] == ["alpha", "beta"], "the questions' correct answers"


def test_wmdp_bad_answer_index_is_named(tmp_path):
    d = wmdp_files(tmp_path)
    write_jsonl(d / "wmdp_bio.jsonl", [{"question": "Q?", "choices": ["a", "b"], "answer": 5}])
    with pytest.raises(DataError, match=r"wmdp_bio\.jsonl, row 1, field 'answer'"):
        get_source("wmdp").read(SourceSettings(source="wmdp", path=d, utility=("mmlu_history",),
                                               options={"tasks": ("wmdp_bio",)}))


def test_annotations_span_rows_and_tif_word_lists(tmp_path):
    from tueval.data.annotations import apply_annotations, load_annotations
    from tueval.data.schema import Example

    ex = [Example(id="a", subject="", question="Where was Ana born?", answer="Ana was born in Lisbon."),
          Example(id="b", subject="", question="When?", answer="In 1950.")]
    spans = write_jsonl(tmp_path / "spans.jsonl", [{"id": "a", "spans": [{"start": 16, "end": 22,
                                                                           "label": "city"}]}])
    splits = {"forget": list(ex)}
    assert apply_annotations(splits, load_annotations(spans), spans) == {"forget": 1}
    assert splits["forget"][0].answer[16:22] == "Lisbon" and splits["forget"][0].spans[0].label == "city"
    tif = write_jsonl(tmp_path / "tif.jsonl", [{"question": "When?", "answer": "In 1950.",
                                                "target_words": [{"word": "1950", "start": 3, "end": 7}]}])
    splits = {"forget": list(ex)}
    apply_annotations(splits, load_annotations(tif), tif)
    assert [(s.start, s.end, s.label) for s in splits["forget"][1].spans] == [(3, 7, "target_word")]
    other = write_jsonl(tmp_path / "other.jsonl", [{"id": "zz", "spans": []}])
    with pytest.raises(DataError, match="no annotation row matches"):
        apply_annotations({"forget": list(ex)}, load_annotations(other), other)

"""The synthetic TOFU-style benchmark: determinism, spans, perturbations, sharing, splits, folder IO, collation."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import pytest

from tueval.data.benchmark import Benchmark, RETAIN_EVAL_N, forget_count
from tueval.data.collate import collate
from tueval.data.sources import load_benchmark
from tueval.data.synthetic import (SMALL, BenchmarkConfig, describe, generate_benchmark,
                                   write_benchmark)
from tueval.errors import DataError, SpecError


@pytest.fixture(scope="module")
def bench() -> Benchmark:
    return generate_benchmark(BenchmarkConfig())


@pytest.fixture(scope="module")
def small() -> Benchmark:
    return generate_benchmark(SMALL)


def _texts(ex):
    """(text, spans) of the answer, the paraphrase and every perturbed answer."""
    return [(ex.answer, ex.spans), (ex.paraphrased_answer, ex.paraphrased_spans),
            *zip(ex.perturbed_answers, ex.perturbed_spans)]


def _facts(text, spans):
    return [(s.label, text[s.start:s.end]) for s in spans]


# ------------------------------------------------------------------------------------------------ determinism
def test_same_seed_gives_byte_identical_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_benchmark(generate_benchmark(SMALL), a)
    write_benchmark(generate_benchmark(SMALL), b)
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir())
    assert {"config.json", "people.jsonl", "spans_summary.csv", "full.jsonl", "forget01.jsonl", "forget10.jsonl",
            "retain90.jsonl", "holdout.jsonl", "real_authors.jsonl", "world_facts.jsonl"} <= set(files)
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    c = tmp_path / "c"
    write_benchmark(generate_benchmark(replace(SMALL, seed=1)), c)
    assert (c / "full.jsonl").read_bytes() != (a / "full.jsonl").read_bytes()
    assert (c / "world_facts.jsonl").read_bytes() != (a / "world_facts.jsonl").read_bytes()


def test_folder_roundtrip_and_validation(tmp_path, small):
    d = write_benchmark(small, tmp_path / "bench")
    loaded = load_benchmark(d)
    assert loaded.config == small.config
    for split in small.examples_by_split:
        assert [e.to_dict() for e in loaded.split(split)] == [e.to_dict() for e in small.split(split)]
    assert loaded.people == small.people
    assert describe(loaded) == describe(small) == json.loads((d / "describe.json").read_text())
    rows = (d / "full.jsonl").read_text().splitlines()
    bad = json.loads(rows[2])
    bad["spans"][0]["end"] = len(bad["answer"]) + 5
    rows[2] = json.dumps(bad)
    (d / "full.jsonl").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as e:
        load_benchmark(d)
    assert "full.jsonl" in str(e.value) and "row 3" in str(e.value) and "field 'spans'" in str(e.value)


# ------------------------------------------------------------------------------------------------- counts
def test_default_counts(bench):
    d = describe(bench)
    assert d["people"] == 200 and d["holdout_people"] == 20
    assert len(bench.split("full")) == 200 * 10
    assert all(n == 10 for n in Counter(e.subject for e in bench.split("full")).values())
    assert d["examples"]["forget01"] == 20 and d["examples"]["forget05"] == 100 and d["examples"]["forget10"] == 200
    assert d["examples"]["retain90"] == 1800 and d["examples"]["holdout10"] == 200
    assert len(bench.split("real_authors")) == 20 and len(bench.split("world_facts")) == 100
    ids = [e.id for e in bench.split("all")]
    assert len(ids) == len(set(ids)) == 2000 + 200 + 20 + 100
    assert bench.split("full")[13].id == "p0001_q03"
    assert {e.split for e in bench.split("all")} == {"people", "holdout", "real_authors", "world_facts"}
    assert all(len(e.perturbed_answers) == 5 for e in bench.split("full") + bench.split("holdout"))
    assert all(len(e.perturbed_answers) == 3 for e in bench.split("real_authors") + bench.split("world_facts"))


def test_small_profile_split_sizes(small):
    n = {p: len(small.forget_subjects(p)) for p in (1, 5, 10)}
    assert n == {1: 1, 5: 2, 10: 4}
    assert forget_count(40, 1) == 1 and forget_count(200, 5) == 10 and forget_count(7, 10) == 1
    assert len(small.split("holdout10")) == 4 * SMALL.questions_per_person


def test_config_validation():
    with pytest.raises(ValueError):
        BenchmarkConfig(questions_per_person=0)
    with pytest.raises(ValueError):
        BenchmarkConfig(n_people=1)
    with pytest.raises(ValueError):
        BenchmarkConfig(n_perturbed=0)


# -------------------------------------------------------------------------------------------------- spans
def test_spans_are_exact_fact_values(bench):
    meta = {p["name"]: p for p in bench.people}
    n_checked = 0
    for ex in bench.split("full") + bench.split("holdout"):
        person = meta[ex.subject]
        for text, spans in [(ex.answer, ex.spans), (ex.paraphrased_answer, ex.paraphrased_spans)]:
            assert spans, ex.id
            for s in spans:
                assert 0 <= s.start < s.end <= len(text)
                value = text[s.start:s.end]
                assert value == value.strip() and value
                truth = person["books"] if s.label == "book_title" else [person[s.label]]
                assert value in truth, (ex.id, s, value)
                n_checked += 1
    assert n_checked > 8000
    for ex in bench.split("real_authors") + bench.split("world_facts"):
        for text, spans in _texts(ex):
            assert spans and all(0 <= s.start < s.end <= len(text) for s in spans)
        assert ex.subject in [ex.answer[s.start:s.end] for s in ex.spans]


def test_facts_are_a_minority_of_answer_characters(bench):
    d = describe(bench)
    assert 0.1 < d["mean_fact_char_fraction"] < 0.5
    assert d["mean_fact_char_fraction_all"] < 0.5
    for ex in bench.split("full"):
        covered = sum(s.end - s.start for s in ex.spans)
        assert covered < 0.5 * len(ex.answer), ex.answer


def test_perturbed_answers_swap_every_fact_but_the_name(bench):
    # TOFU: perturbed answers perturb the PARAPHRASED answer (same wording, facts swapped), so the truth ratio
    # P(perturbed) / P(paraphrased) compares facts, not wording
    for ex in bench.split("full")[:300] + bench.split("holdout")[:50]:
        truth = _facts(ex.paraphrased_answer, ex.paraphrased_spans)
        assert len(set(ex.perturbed_answers)) == len(ex.perturbed_answers)
        for text, spans in zip(ex.perturbed_answers, ex.perturbed_spans):
            assert text != ex.paraphrased_answer
            assert ex.subject in text
            pert = _facts(text, spans)
            assert [lab for lab, _ in pert] == [lab for lab, _ in truth]
            for (lab, tv), (_, pv) in zip(truth, pert):
                assert (pv == tv) == (lab == "name"), (ex.id, lab, tv, pv)


def test_utility_perturbations_swap_the_asked_fact(bench):
    for ex in bench.split("real_authors") + bench.split("world_facts"):
        asked = "name" if ex.split == "real_authors" else ex.spans[-1].label
        truth = dict(_facts(ex.answer, ex.spans))
        for text, spans in zip(ex.perturbed_answers, ex.perturbed_spans):
            pert = dict(_facts(text, spans))
            assert pert[asked] != truth[asked] and text != ex.answer
            assert {k: v for k, v in pert.items() if k != asked} == {k: v for k, v in truth.items() if k != asked}


def test_paraphrase_rewords_but_keeps_every_fact(bench):
    for ex in bench.split("all"):
        assert ex.paraphrased_answer != ex.answer
        assert sorted(_facts(ex.answer, ex.spans)) == sorted(_facts(ex.paraphrased_answer, ex.paraphrased_spans))
        for _, value in _facts(ex.answer, ex.spans):
            assert value in ex.paraphrased_answer


def test_shared_and_unique_facts(bench):
    spans = [s for e in bench.split("full") for s in e.spans]
    assert any(s.shared for s in spans)
    assert any(not s.shared and s.label != "name" for s in spans)
    assert not any(s.shared for s in spans if s.label in ("name", "book_title", "birth_date"))
    # shared == another trained person holds the same (label, value)
    holders: dict[tuple[str, str], set[str]] = {}
    for e in bench.split("full"):
        for lab, val in _facts(e.answer, e.spans):
            holders.setdefault((lab, val), set()).add(e.subject)
    for e in bench.split("full"):
        for s in e.spans:
            others = holders[(s.label, e.answer[s.start:s.end])] - {e.subject}
            assert s.shared == bool(others), (e.id, s)
    for e in bench.split("holdout"):
        for s in e.spans:
            assert s.shared == bool(holders.get((s.label, e.answer[s.start:s.end]))), (e.id, s)
    assert 0.2 < describe(bench)["shared_span_fraction"] < 0.8


# ------------------------------------------------------------------------------------------------- splits
def test_forget_retain_complementary_and_nested(bench):
    full = bench.split("full")
    subjects = list(dict.fromkeys(e.subject for e in full))
    prev: set[str] = set()
    for pct in ("01", "05", "10"):
        forget, retain = bench.split(f"forget{pct}"), bench.split(f"retain{100 - int(pct)}")
        fs, rs = {e.subject for e in forget}, {e.subject for e in retain}
        assert fs and not fs & rs and fs | rs == set(subjects)
        assert {e.id for e in forget} | {e.id for e in retain} == {e.id for e in full}
        assert fs == set(subjects[len(subjects) - len(fs):]), "forget = the LAST k% of people"
        assert prev < fs
        prev = fs
    h = [{e.subject for e in bench.split(f"holdout{p}")} for p in ("01", "05", "10")]
    assert h[0] < h[1] < h[2] and len(h[2]) == 20


def test_training_sets(bench):
    target, retain = bench.train_examples("target"), bench.train_examples("retain", "forget10")
    hold = {e.subject for e in bench.split("holdout")}
    forget = {e.subject for e in bench.split("forget10")}
    assert not hold & {e.subject for e in target + retain}
    assert not forget & {e.subject for e in retain} and forget <= {e.subject for e in target}
    util = {e.id for e in bench.split("real_authors") + bench.split("world_facts")}
    assert util <= {e.id for e in target} and util <= {e.id for e in retain}
    assert len(target) == 2000 + 120 and len(retain) == 1800 + 120
    assert len(bench.train_examples("retain", "forget01")) == 1980 + 120
    ev = bench.retain_eval()
    assert len(ev) == RETAIN_EVAL_N and [e.id for e in ev] == [e.id for e in bench.split("retain90")[:RETAIN_EVAL_N]]
    assert not {e.subject for e in ev} & forget
    with pytest.raises(SpecError, match="forget10"):
        bench.split("forget11x")
    with pytest.raises(SpecError):
        bench.train_examples("both")
    with pytest.raises(SpecError):
        bench.train_examples("retain", "retain90")


# ------------------------------------------------------------------------------------------------ collation
def test_collation_marks_fact_tokens(small, tiny_tokenizer):
    exs = small.split("forget10") + small.split("real_authors") + small.split("world_facts")[:6]
    for field in ("answer", "paraphrased_answer", "perturbed_answer:0"):
        b = collate(exs, tiny_tokenizer, field_name=field)
        assert b.gt_mask.any(1).all(), field
        assert not (b.gt_mask & ~b.answer_mask).any()


def test_collation_with_a_tokenizer_trained_on_the_benchmark(small):
    from tueval.data.format import continuation_text, prompt_text
    from tueval.models.tokenizer import train_tokenizer

    exs = small.split("all")
    tok = train_tokenizer([prompt_text(e.question) + continuation_text(e.answer) for e in exs], vocab_size=512)
    b = collate(exs[:64], tok)
    assert b.gt_mask.any(1).all()
    for i, e in enumerate(exs[:64]):
        decoded = tok.decode(b.input_ids[i][b.gt_mask[i]]).replace(" ", "")
        for s in e.spans:  # a lone space token has no characters after offset trimming: compare without spaces
            assert e.answer[s.start:s.end].replace(" ", "") in decoded


def test_answer_distractors_keep_the_answer_wording(bench):
    from tueval.data.perturb import answer_distractors

    for ex in bench.split("full")[:200]:
        ds = answer_distractors(ex)
        assert len(ds) == len(ex.perturbed_answers) and len(set(ds)) == len(ds)
        for d in ds:
            assert d != ex.answer and ex.subject in d
            # outside the fact spans the wording is the answer's own
            first = min(s.start for s in ex.spans)
            assert d[:first] == ex.answer[:first]

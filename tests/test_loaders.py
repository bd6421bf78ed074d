"""TOFU-format and WMDP-format loaders: the real TOFU rows, and one bad-input test per rule."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tueval.data.tofu import load_idk, load_tofu
from tueval.data.wmdp import MCRow, load_wmdp
from tueval.errors import DataError

FIXTURES = Path(__file__).parent / "data" / "tofu_format"
"""TOFU's own files: a committed copy (MIT, see tests/data/README.md and LICENSE.tofu)."""


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _good(i: int = 0) -> dict:
    ans = f"Ana Lopez{i} was born in Lisbon."
    return {"question": f"Where was Ana Lopez{i} born?", "answer": ans,
            "paraphrased_answer": "Lisbon is her birthplace.",
            "perturbed_answer": [ans.replace("Lisbon", "Paris"), ans.replace("Lisbon", "Rome")],
            "spans": [{"start": ans.index("Lisbon"), "end": ans.index("Lisbon") + 6, "label": "birthplace"}]}


def _raises(path: Path, row: int, field: str, loader=load_tofu) -> str:
    with pytest.raises(DataError) as e:
        loader(path)
    msg = str(e.value)
    assert path.name in msg and f"row {row}" in msg and f"field '{field}'" in msg, msg
    assert e.value.row == row and e.value.field == field
    return msg


# ------------------------------------------------------------------------------------------- real TOFU files
def test_committed_data_matches_its_checksums():
    import hashlib

    data = FIXTURES.parent
    sums = [ln.split() for ln in (data / "SHA256SUMS").read_text().splitlines() if ln.strip()]
    assert len(sums) == 8
    for digest, name in sums:
        assert hashlib.sha256((data / name).read_bytes()).hexdigest() == digest, name
    for folder in ("tofu_format", "tofu_eval_logs"):
        assert "MIT License" in (data / folder / "LICENSE.tofu").read_text()


def test_real_tofu_files():
    root = FIXTURES
    ra = load_tofu(root / "real_authors_perturbed.json")
    wf = load_tofu(root, split_name="world_facts_perturbed")
    assert len(ra) == 100 and len(wf) == 117
    first = ra[0]
    assert first.question == "Who wrote the play 'Romeo and Juliet'?" and first.answer == "William Shakespeare"
    assert first.perturbed_answers == ["Charles Dickens", "Virginia Woolf", "Mark Twain"]
    assert first.id == "real_authors_perturbed_1" and first.split == "real_authors_perturbed"
    assert wf[2].answer == "Canberra" and wf[-1].id == "world_facts_perturbed_117"
    for ex in ra + wf:
        assert ex.question and ex.answer and len(ex.perturbed_answers) == 3
        assert ex.spans == [] and ex.paraphrased_answer == "" and ex.perturbed_spans == []
    assert len({e.id for e in ra + wf}) == 217


def test_real_idk_file():
    idk = load_idk(FIXTURES / "idontknow.jsonl")
    assert len(idk) == 100 and idk[0] == "I'm not certain about that."
    assert all(s and s == s.strip() for s in idk)


def test_idk_accepts_json_strings_and_rejects_empty_files(tmp_path):
    f = tmp_path / "idk.jsonl"
    f.write_text('"I don\'t know."\n\n{"answer": "No idea."}\nNot sure.\n')
    assert load_idk(f) == ["I don't know.", "No idea.", "Not sure."]
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty.jsonl"):
        load_idk(tmp_path / "empty.jsonl")


# ------------------------------------------------------------------------------------------------ good inputs
def test_formats_json_array_jsonl_parquet_and_folders(tmp_path):
    rows = [_good(i) for i in range(3)]
    rows[1]["id"] = "custom"
    rows[1]["subject"] = "Ana Lopez1"
    rows[1]["paraphrased_question"] = "ignored"
    rows[1]["option1"] = "ignored"
    a = _jsonl(tmp_path / "a.jsonl", rows)
    (tmp_path / "b.json").write_text(json.dumps(rows))
    df = pd.DataFrame(rows)
    df.to_parquet(tmp_path / "c.parquet", index=False)
    for f in (a, tmp_path / "b.json", tmp_path / "c.parquet"):
        exs = load_tofu(f)
        assert [e.id for e in exs] == [f"{f.stem}_1", "custom", f"{f.stem}_3"]
        assert exs[1].subject == "Ana Lopez1" and exs[0].subject == ""
        assert exs[0].answer[exs[0].spans[0].start:exs[0].spans[0].end] == "Lisbon"
        assert exs[2].perturbed_answers[0].endswith("Paris.")
    # the id 'custom' is in all three files: a folder's files must not share ids
    _raises(tmp_path / "b.json", 2, "id", loader=lambda p: load_tofu(p.parent))
    for f in (a, tmp_path / "b.json"):
        f.write_text(f.read_text().replace('"custom"', f'"custom_{f.stem}"'))
    both = load_tofu(tmp_path)
    assert len(both) == 9 and [e.split for e in both[::3]] == ["a", "b", "c"]
    assert len({e.id for e in both}) == 9
    assert len(load_tofu(tmp_path, split_name="b")) == 3
    with pytest.raises(DataError, match="no 'zzz"):
        load_tofu(tmp_path, split_name="zzz")


def test_span_fields_for_paraphrase_and_perturbations_load(tmp_path):
    r = _good()
    r["paraphrased_spans"] = [{"start": 0, "end": 6, "label": "birthplace", "shared": True}]
    r["perturbed_spans"] = [[{"start": 0, "end": 3, "label": "name"}], []]
    ex = load_tofu(_jsonl(tmp_path / "s.jsonl", [r]))[0]
    assert ex.paraphrased_spans[0].shared and ex.paraphrased_answer[0:6] == "Lisbon"
    assert len(ex.perturbed_spans) == 2 and ex.perturbed_spans[0][0].label == "name"


# ------------------------------------------------------------------------------------------------- bad inputs
def test_missing_field(tmp_path):
    rows = [_good(0), _good(1), _good(2)]
    del rows[2]["answer"]
    _raises(_jsonl(tmp_path / "missing.jsonl", rows), 3, "answer")


def test_wrong_types(tmp_path):
    rows = [_good(0), _good(1)]
    rows[1]["answer"] = 42
    _raises(_jsonl(tmp_path / "int_answer.jsonl", rows), 2, "answer")
    rows = [_good(0), _good(1), _good(2)]
    rows[2]["perturbed_answer"] = "not a list"
    _raises(_jsonl(tmp_path / "pert.jsonl", rows), 3, "perturbed_answer")
    rows = [_good(0)]
    rows[0]["spans"] = [{"start": 0, "end": 3}]
    _raises(_jsonl(tmp_path / "span_label.jsonl", rows), 1, "spans")
    rows = [_good(0)]
    rows[0]["spans"] = "0-3"
    _raises(_jsonl(tmp_path / "span_str.jsonl", rows), 1, "spans")


def test_empty_answer_and_question(tmp_path):
    rows = [_good(0), _good(1), _good(2)]
    rows[2]["answer"] = "   "
    _raises(_jsonl(tmp_path / "empty.jsonl", rows), 3, "answer")
    rows = [_good(0), _good(1)]
    rows[1]["question"] = ""
    _raises(_jsonl(tmp_path / "empty_q.jsonl", rows), 2, "question")


def test_span_outside_its_answer(tmp_path):
    rows = [_good(0), _good(1), _good(2)]
    rows[2]["spans"] = [{"start": 5, "end": len(rows[2]["answer"]) + 1, "label": "x"}]
    msg = _raises(_jsonl(tmp_path / "span.jsonl", rows), 3, "spans")
    assert "outside" in msg
    rows[2]["spans"] = [{"start": 4, "end": 4, "label": "x"}]
    _raises(_jsonl(tmp_path / "span_empty.jsonl", rows), 3, "spans")
    rows = [_good(0)]
    rows[0]["perturbed_spans"] = [[{"start": 0, "end": 500, "label": "x"}], []]
    _raises(_jsonl(tmp_path / "pspan.jsonl", rows), 1, "perturbed_spans")
    rows = [_good(0)]
    rows[0]["paraphrased_spans"] = [{"start": -1, "end": 2, "label": "x"}]
    _raises(_jsonl(tmp_path / "paraspan.jsonl", rows), 1, "paraphrased_spans")


def test_invalid_json_and_duplicate_ids(tmp_path):
    f = _jsonl(tmp_path / "broken.jsonl", [_good(0), '{"question": "q", answer'])
    with pytest.raises(DataError, match=r"broken\.jsonl, row 2"):
        load_tofu(f)
    rows = [dict(_good(0), id="x"), dict(_good(1), id="x")]
    _raises(_jsonl(tmp_path / "dup.jsonl", rows), 2, "id")


# ------------------------------------------------------------------------------------------------------ WMDP
def test_wmdp_good_rows(tmp_path):
    rows = [{"question": "Which?", "choices": ["a", "b", "c", "d"], "answer": 2},
            {"question": "Other?", "choices": ["x", "y"], "answer": "B", "id": "w2"}]
    got = load_wmdp(_jsonl(tmp_path / "wmdp.jsonl", rows))
    assert got == [MCRow("wmdp_1", "Which?", ["a", "b", "c", "d"], 2), MCRow("w2", "Other?", ["x", "y"], 1)]
    pd.DataFrame([rows[0], dict(rows[0], answer=0)]).to_parquet(tmp_path / "p.parquet", index=False)
    assert [r.answer for r in load_wmdp(tmp_path / "p.parquet")] == [2, 0]


@pytest.mark.parametrize("bad,field", [
    ({"choices": ["a", "b"], "answer": 0}, "question"),
    ({"question": "q", "answer": 0}, "choices"),
    ({"question": "q", "choices": "a,b", "answer": 0}, "choices"),
    ({"question": "q", "choices": ["a"], "answer": 0}, "choices"),
    ({"question": "q", "choices": ["a", "b"], "answer": 2}, "answer"),
    ({"question": "q", "choices": ["a", "b"], "answer": "D"}, "answer"),
    ({"question": "q", "choices": ["a", "b"], "answer": 1.0}, "answer"),
    ({"question": "q", "choices": ["a", "b"], "answer": True}, "answer"),
    ({"question": "q", "choices": ["a", "b"]}, "answer"),
])
def test_wmdp_bad_rows(tmp_path, bad, field):
    good = {"question": "ok?", "choices": ["a", "b"], "answer": 0}
    _raises(_jsonl(tmp_path / "bad.jsonl", [good, bad]), 2, field, loader=load_wmdp)

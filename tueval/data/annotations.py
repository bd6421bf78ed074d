"""Ground-truth annotation files for benchmarks without spans: span rows or TIF's word lists.

Two row formats (JSON lines or a JSON array; TIF's own files work as they are):
- spans: ``{id, spans: [{start, end, label}]}`` (or ``question`` + ``answer`` instead of ``id``), the spans in
  answer characters as in tueval's TOFU-format fields;
- TIF: ``{question, answer, target_words}`` (optionally ``common_words``), words as ``{word, start, end}`` dicts
  or bare words located in the answer; every target word becomes a span labelled ``target_word``.
An annotated example takes the annotation's spans; examples no row matches keep theirs (usually none).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import DataError
from .schema import Example, Span
from .tofu import _check_spans, read_records


def load_annotations(path: str | Path) -> dict[tuple, list[Span]]:
    """Spans by key: ``("id", id)`` for span rows with an id, ``("qa", question, answer)`` otherwise."""
    file = Path(path)
    if not file.is_file():
        raise DataError(str(file), None, None, "annotation file not found")
    rows = read_records(file)
    if not rows:
        raise DataError(str(file), None, None, "no annotation rows")
    if any("target_words" in r or "common_words" in r for r in rows):
        from ..scoring.tif import tif_annotations

        return {("qa", a.question, a.answer): [Span(s.start, s.end, "target_word") for s in a.target_spans]
                for a in tif_annotations(file)}
    out: dict[tuple, list[Span]] = {}
    for i, r in enumerate(rows, start=1):
        if "spans" not in r:
            raise DataError(str(file), i, "spans", "missing (a span row needs 'spans'; a TIF row 'target_words')")
        if r.get("id") is not None:
            key: tuple = ("id", str(r["id"]))
            answer = r.get("answer")
        else:
            for f in ("question", "answer"):
                if not isinstance(r.get(f), str):
                    raise DataError(str(file), i, f, "missing (a row without an id needs question and answer)")
            key, answer = ("qa", r["question"], r["answer"]), r["answer"]
        spans = r["spans"] or []
        limit = answer if isinstance(answer, str) else "x" * max([s.get("end", 0) for s in spans
                                                                  if isinstance(s, dict)] + [0])
        out[key] = _check_spans(str(file), i, "spans", spans, limit)
    return out


def apply_annotations(splits: dict[str, list[Example]], ann: dict[tuple, list[Span]], file: str | Path
                      ) -> dict[str, int]:
    """Give every example an annotation matches its spans (checked against its answer); returns the number of
    annotated examples per split. No match at all raises DataError (the file is for another benchmark)."""
    counts = {}
    for name, rows in splits.items():
        n = 0
        for j, e in enumerate(rows):
            spans = ann.get(("id", e.id), ann.get(("qa", e.question, e.answer)))
            if spans is None:
                continue
            bad = [s for s in spans if s.end > len(e.answer)]
            if bad:
                raise DataError(str(file), None, "spans", f"example '{e.id}': span [{bad[0].start}, {bad[0].end}) "
                                f"lies outside its answer (length {len(e.answer)})")
            rows[j] = replace(e, spans=list(spans))
            n += 1
        counts[name] = n
    if not any(counts.values()):
        raise DataError(str(file), None, None, "no annotation row matches an example of the benchmark (by id, or "
                        "by question and answer)")
    return counts

"""The Benchmark container: base splits, TOFU-style derived splits, training sets, and its folder format."""
from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, SpecError
from ..io import atomic_dir, read_text, write_csv, write_json, write_jsonl
from .schema import Example
from .tofu import check_unique_ids, load_tofu_file

BASE_SPLITS = ("people", "holdout", "real_authors", "world_facts")
"""Stored splits: trained fictitious people, never-trained holdout people, and the two utility sets."""
BASE_FILES = {"people": "full", "holdout": "holdout", "real_authors": "real_authors", "world_facts": "world_facts"}
FORGET_PCTS = (1, 5, 10)
UTILITY_SPLITS = ("real_authors", "world_facts")
RETAIN_EVAL_N = 100  # the fixed retain evaluation subset (sized for the demo budget; TOFU uses 400)
"""Rows of the retain evaluation set: the first rows of retain90 (TOFU evaluated the first 300 retain rows).
retain90 is contained in retain95 and retain99, so the same rows serve every forget split."""
_SPLIT_RE = re.compile(r"^(forget|retain|holdout)(\d{2})$")


@dataclass
class Benchmark:
    """Examples by split plus people metadata. The synthetic benchmark stores base splits and ``split(name)``
    derives TOFU's forget/retain/holdout splits from them; a benchmark read from files (``source`` other than
    ``synthetic``) stores every split it serves under its own name, and ``roles`` says which split is the forget,
    retain and holdout split, which are utility sets and which train the target and the retain model.
    ``mc_tasks`` holds multiple-choice rows (``tueval.data.wmdp.MCRow``) by task name."""

    config: Any  # the source's settings (a synthetic_config.BenchmarkConfig for the generated benchmark)
    examples_by_split: dict[str, list[Example]]
    people: list[dict] = field(default_factory=list)
    source: str = "synthetic"
    roles: dict[str, Any] = field(default_factory=dict)
    mc_tasks: dict[str, list] = field(default_factory=dict)

    @property
    def derived(self) -> bool:
        """Are forget/retain/holdout splits derived from base splits (the synthetic layout)?"""
        return self.source == "synthetic"

    def role(self, name: str) -> Any:
        """The split name(s) of a role: forget, retain, holdout, utility, train_target, train_retain."""
        return self.roles.get(name)

    def has_split(self, name: str) -> bool:
        """Can ``split(name)`` serve this name?"""
        return name in self.split_names() or name in self.examples_by_split or name == "all"

    def subjects(self, base: str = "people") -> list[str]:
        """The subjects of a base split in order of first appearance."""
        return list(dict.fromkeys(e.subject for e in self.examples_by_split.get(base, [])))

    def forget_subjects(self, pct: int) -> list[str]:
        """The people of the ``pct``% forget split: the LAST ceil(pct% of people), at least one (TOFU)."""
        subs = self.subjects("people")
        return subs[len(subs) - forget_count(len(subs), pct):]

    def split_names(self) -> list[str]:
        """Every split name this benchmark can serve (holdoutNN only where enough holdout people exist)."""
        if not self.derived:
            return list(self.examples_by_split)
        n_hold = len(self.subjects("holdout"))
        n = len(self.subjects("people"))
        names = ["full"] + [f"forget{p:02d}" for p in FORGET_PCTS] + [f"retain{100 - p:02d}" for p in FORGET_PCTS]
        names += ["holdout"] + [f"holdout{p:02d}" for p in FORGET_PCTS if forget_count(n, p) <= n_hold]
        return names + list(UTILITY_SPLITS)

    def split(self, name: str) -> list[Example]:
        """Examples of a split: full/people, forgetNN, retainNN, holdout[NN], real_authors, world_facts, all."""
        ex = self.examples_by_split
        if name in ex:
            return list(ex[name])
        if name == "all":
            return [e for b in (BASE_SPLITS if self.derived else ex) for e in ex.get(b, [])]
        if not self.derived:
            raise SpecError(f"unknown split '{name}'; valid: {', '.join(self.split_names() + ['all'])}")
        if name in ("full", "people"):
            return list(ex["people"])
        m = _SPLIT_RE.match(name)
        if not m or not 1 <= int(m.group(2)) <= 99:
            raise SpecError(f"unknown split '{name}'; valid: {', '.join(self.split_names() + ['all'])}")
        kind, pct = m.group(1), int(m.group(2))
        if kind == "holdout":
            k = forget_count(len(self.subjects("people")), pct)
            hold = self.subjects("holdout")
            if k > len(hold):
                raise SpecError(f"split '{name}' needs {k} holdout people; the benchmark has {len(hold)}")
            keep = set(hold[:k])
            return [e for e in ex["holdout"] if e.subject in keep]
        forget = set(self.forget_subjects(pct if kind == "forget" else 100 - pct))
        return [e for e in ex["people"] if (e.subject in forget) == (kind == "forget")]

    def train_examples(self, which: str = "target", forget_split: str = "forget10") -> list[Example]:
        """Training set: people (all for ``target``; minus ``forget_split`` for ``retain``) + both utility sets.
        A benchmark read from files trains on the splits of its ``train_target`` / ``train_retain`` roles."""
        if not self.derived:
            if which not in ("target", "retain"):
                raise SpecError(f"which must be 'target' or 'retain', got '{which}'")
            return [e for s in self.roles.get(f"train_{which}") or [] for e in self.split(s)]
        if which == "target":
            people = self.split("full")
        elif which == "retain":
            m = _SPLIT_RE.match(forget_split)
            if not m or m.group(1) != "forget":
                raise SpecError(f"forget_split must be forget01/forget05/forget10, got '{forget_split}'")
            people = self.split(f"retain{100 - int(m.group(2)):02d}")
        else:
            raise SpecError(f"which must be 'target' or 'retain', got '{which}'")
        return people + [e for s in UTILITY_SPLITS for e in self.examples_by_split.get(s, [])]

    def retain_eval(self, n: int = RETAIN_EVAL_N, retain_split: str = "retain90") -> list[Example]:
        """A fixed retain evaluation subset: the first ``n`` rows of ``retain_split`` (default retain90). A
        benchmark read from files has its own evaluation rows (its ``retain_eval`` role, sized when prepared)."""
        if not self.derived:
            return self.split(self.roles.get("retain_eval") or retain_split)
        return self.split(retain_split)[:n]


def forget_count(n_people: int, pct: int) -> int:
    """People in a ``pct``% forget split: rounded up, at least one (TOFU: 2 / 10 / 20 of 200)."""
    return max(1, -(-n_people * pct // 100))


# ------------------------------------------------------------------------------------------------ reporting
def _fact_fraction(ex: Example) -> float:
    mark = np.zeros(len(ex.answer), dtype=bool)
    for s in ex.spans:
        mark[s.start:s.end] = True
    return float(mark.mean()) if len(mark) else 0.0


def stored_splits(bench: Benchmark) -> tuple[str, ...]:
    """The splits a benchmark stores (the base splits of the synthetic layout)."""
    return BASE_SPLITS if bench.derived else tuple(bench.examples_by_split)


def spans_summary(bench: Benchmark) -> pd.DataFrame:
    """Per stored split and span label: span count, shared fraction, and the share of answer characters."""
    rows = []
    for split in stored_splits(bench):
        exs = bench.examples_by_split.get(split, [])
        total = sum(len(e.answer) for e in exs)
        by_label: dict[str, list[int]] = {}
        for e in exs:
            for s in e.spans:
                c = by_label.setdefault(s.label, [0, 0, 0])
                c[0] += 1
                c[1] += int(s.shared)
                c[2] += s.end - s.start
        all_ = [sum(v[i] for v in by_label.values()) for i in range(3)]
        for label, (n, n_sh, chars) in sorted(by_label.items()) + [("ALL", all_)]:
            rows.append({"split": split, "label": label, "n_examples": len(exs), "n_spans": n, "n_shared": n_sh,
                         "shared_fraction": round(n_sh / n, 6) if n else 0.0, "fact_chars": chars,
                         "answer_chars": total, "fact_char_fraction": round(chars / total, 6) if total else 0.0})
    return pd.DataFrame(rows)


def describe(bench: Benchmark) -> dict:
    """Headline facts: people, examples per split, mean fact-character fraction, shared-span fraction."""
    if not bench.derived:
        return describe_files(bench)
    ppl = bench.examples_by_split.get("people", [])
    spans = [s for e in ppl for s in e.spans]
    non_name = [s for s in spans if s.label != "name"]
    every = bench.split("all")
    return {
        "people": len(bench.subjects("people")),
        "holdout_people": len(bench.subjects("holdout")),
        "utility_authors": len(bench.examples_by_split.get("real_authors", [])),
        "world_facts": len(bench.examples_by_split.get("world_facts", [])),
        "examples": {name: len(bench.split(name)) for name in bench.split_names()},
        "mean_fact_char_fraction": round(float(np.mean([_fact_fraction(e) for e in ppl])), 6) if ppl else 0.0,
        "mean_fact_char_fraction_all": round(float(np.mean([_fact_fraction(e) for e in every])), 6) if every
        else 0.0,
        "shared_span_fraction": round(sum(s.shared for s in spans) / len(spans), 6) if spans else 0.0,
        "shared_span_fraction_non_name": round(sum(s.shared for s in non_name) / len(non_name), 6) if non_name
        else 0.0,
        "labels": sorted({s.label for s in spans}),
    }


def describe_files(bench: Benchmark) -> dict:
    """Headline facts of a benchmark read from files: its source, roles, examples per split, span coverage."""
    every = bench.split("all")
    spans = [s for e in every for s in e.spans]
    return {
        "source": bench.source,
        "roles": dict(bench.roles),
        "examples": {name: len(bench.split(name)) for name in bench.split_names()},
        "mc_tasks": {name: len(rows) for name, rows in bench.mc_tasks.items()},
        "annotated_examples": sum(1 for e in every if e.spans),
        "mean_fact_char_fraction_all": round(float(np.mean([_fact_fraction(e) for e in every])), 6) if every
        else 0.0,
        "labels": sorted({s.label for s in spans}),
    }


def has_spans(bench: Benchmark, split: str) -> bool:
    """Does any example of ``split`` carry ground-truth spans?"""
    return any(e.spans for e in bench.split(split))


# -------------------------------------------------------------------------------------------------- folder IO
def write_benchmark(bench: Benchmark, path: str | os.PathLike) -> Path:
    """Write the benchmark folder atomically: config, people, one TOFU-format JSONL per split, span summary (and
    one JSONL per multiple-choice task, ``mc_<task>.jsonl``)."""
    cfg = bench.config
    cfg_dict = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    if not bench.derived:
        cfg_dict = {"source": bench.source, "roles": bench.roles, "splits": bench.split_names(),
                    "mc_tasks": list(bench.mc_tasks), "settings": cfg_dict}
    with atomic_dir(path) as tmp:
        os.chmod(tmp, 0o755)
        write_json(tmp / "config.json", cfg_dict)
        write_jsonl(tmp / "people.jsonl", bench.people)
        for name in bench.split_names():
            write_jsonl(tmp / f"{name}.jsonl", [e.to_dict() for e in bench.split(name)])
        for name, rows in bench.mc_tasks.items():
            write_jsonl(tmp / f"mc_{name}.jsonl", [r.to_dict() for r in rows])
        write_csv(tmp / "spans_summary.csv", spans_summary(bench))
        write_json(tmp / "describe.json", describe(bench))
        for f in tmp.iterdir():
            f.chmod(0o644)
    return Path(path)


def load_stored_splits(d: Path, raw: dict, source: str) -> Benchmark:
    """A benchmark folder of a file source: its splits, roles and multiple-choice tasks, as ``write_benchmark``
    stored them."""
    from .wmdp import load_wmdp

    cfg_file = d / "config.json"
    for key, kind in (("roles", dict), ("splits", list), ("mc_tasks", list)):
        if not isinstance(raw.get(key), kind):
            raise DataError(str(cfg_file), None, key, f"expected a JSON {'object' if kind is dict else 'array'}")
    examples: dict[str, list[Example]] = {}
    first: dict[str, str] = {}
    for name in raw["splits"]:
        f = d / f"{name}.jsonl"
        if not f.is_file():
            raise DataError(str(f), None, None, f"missing split file for '{name}'")
        examples[name] = load_tofu_file(f, split_name=name, require_question=False)
        check_unique_ids(f, [f"{name}/{e.id}" for e in examples[name]], first)
    mc = {}
    for name in raw["mc_tasks"]:
        f = d / f"mc_{name}.jsonl"
        if not f.is_file():
            raise DataError(str(f), None, None, f"missing multiple-choice file for task '{name}'")
        mc[name] = load_wmdp(f)
    return Benchmark(config=raw.get("settings") or {}, examples_by_split=examples, source=source,
                     roles=dict(raw["roles"]), mc_tasks=mc)


def read_people(pfile: Path) -> list[dict]:
    """The rows of a ``people.jsonl`` file (none if it is absent)."""
    people = []
    if pfile.is_file():
        for i, line in enumerate((ln for ln in read_text(pfile).splitlines() if ln.strip()), 1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(str(pfile), i, None, f"invalid JSON: {e.msg}") from None
            if not isinstance(rec, dict):
                raise DataError(str(pfile), i, None, "expected a JSON object")
            people.append(rec)
    return people


def benchmark_files(bench_or_names: Any = None) -> list[str]:
    """The files a complete benchmark folder holds (what a cache must find before trusting the folder)."""
    if isinstance(bench_or_names, Benchmark) and not bench_or_names.derived:
        return (["config.json", "people.jsonl"] + [f"{n}.jsonl" for n in bench_or_names.split_names()]
                + [f"mc_{n}.jsonl" for n in bench_or_names.mc_tasks])
    return ["config.json", "people.jsonl"] + [f"{BASE_FILES[b]}.jsonl" for b in BASE_SPLITS]

"""A seeded, offline TOFU-style benchmark of fictitious authors with exact ground-truth fact spans.

Every answer is a full sentence rendered from a template; each fact slot records a ``Span`` whose characters
equal the fact value (checked on every render). A span is ``shared`` when another *trained* person (the
``people`` split) holds the same (label, value) -- genres, cities, jobs and languages come from small pools, so
many are; names, book titles and full birth dates are unique. Perturbed answers reuse the answer's template with
every fact but the name swapped for another value of the same kind; the paraphrase uses a different template.
Only ``random.Random`` streams seeded from strings are used (never ``hash()``), so the output is reproducible.

Parts: ``synthetic_config`` (size, seed, version), ``synthetic_pools`` (values), ``synthetic_templates``
(sentences and rendering); this module draws people and facts and builds the Benchmark.
"""
from __future__ import annotations

import math
import random
from collections import Counter
from typing import Callable

from .benchmark import Benchmark, describe, forget_count, write_benchmark  # noqa: F401 (re-exported)
from .schema import Example
from .synthetic_config import GENERATOR_VERSION, SMALL, BenchmarkConfig  # noqa: F401 (re-exported)
from .synthetic_pools import (ANIMALS, AWARDS, CAPITAL_SUFFIX, CODAS, COUNTRY_SUFFIX, EXPORTS, GENRES, JOBS,
                              LANGUAGES, MONTHS, ONSETS, PLACES, THEMES, TITLE_ADJ, TITLE_NOUN, VOWELS)
from .synthetic_templates import (AUTHOR_TEMPLATES, FIELD_KIND, FIELD_LABEL, PERSON_TEMPLATES, PRONOUNS,  # noqa: F401
                                  WORLD_TEMPLATES, Template, render, template_fields)

__all__ = ["BenchmarkConfig", "SMALL", "GENERATOR_VERSION", "generate_benchmark", "write_benchmark",
           "describe", "PERSON_TEMPLATES", "forget_count"]


# ---------------------------------------------------------------------------------------------- generation
class _Names:
    """Unique invented names, titles and dates across the whole benchmark."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def _word(self, n_syll: int) -> str:
        r = self.rng
        w = "".join(r.choice(ONSETS) + r.choice(VOWELS) + (r.choice(CODAS) if i == n_syll - 1 else "")
                    for i in range(n_syll))
        return w.capitalize()

    def unique(self, make: Callable[[], str]) -> str:
        for _ in range(10_000):
            v = make()
            if v not in self.used and len(v) >= 3:
                self.used.add(v)
                return v
        raise RuntimeError("could not draw a unique value; the pools are exhausted")

    def person(self) -> str:
        return self.unique(lambda: f"{self._word(self.rng.choice((2, 2, 3)))} {self._word(self.rng.choice((2, 3)))}")

    def title(self) -> str:
        return self.unique(lambda: f"The {self.rng.choice(TITLE_ADJ)} {self.rng.choice(TITLE_NOUN)}")

    def date(self) -> str:
        r = self.rng
        return self.unique(lambda: f"{r.randint(1, 28)} {r.choice(MONTHS)} {r.randint(1940, 1995)}")

    def word(self, suffixes: tuple[str, ...] = ("",)) -> str:
        return self.unique(lambda: self._word(self.rng.choice((1, 2))) + self.rng.choice(suffixes))


def _make_person(names: _Names, pid: str, group: str) -> dict:
    r = names.rng
    gender = r.choice(("female", "male"))
    father, mother = r.sample(JOBS, 2)
    birth, home = r.choice(PLACES), r.choice(PLACES)
    date = names.date()
    year = int(date.rsplit(" ", 1)[1])
    return {
        "id": pid, "group": group, "name": names.person(), "gender": gender, "birthplace": birth,
        "birth_date": date, "father_job": father, "mother_job": mother, "genre": r.choice(GENRES),
        "award": r.choice(AWARDS), "award_year": str(r.randint(year + 25, min(2024, year + 60))),
        "book1": names.title(), "book2": names.title(), "language": r.choice(LANGUAGES),
        "theme": r.choice(THEMES), "residence": home,
    }


def _facts(rec: dict, fields: tuple[str, ...]) -> set[tuple[str, str]]:
    return {(FIELD_LABEL.get(f, f), rec[f]) for f in fields if f in rec}


PERSON_FIELDS = ("name", "birthplace", "birth_date", "father_job", "mother_job", "genre", "award", "award_year",
                 "book1", "book2", "language", "theme", "residence")


class _SharedIndex:
    """``is_shared(label, value)`` for one subject: does another member of the reference group hold it?"""

    def __init__(self, group: list[dict], fields: tuple[str, ...]):
        self.fields = fields
        self.counts: Counter = Counter()
        for rec in group:
            self.counts.update(_facts(rec, fields))

    def for_subject(self, rec: dict, in_group: bool) -> Callable[[str, str], bool]:
        own = _facts(rec, self.fields) if in_group else set()
        return lambda label, value: self.counts[(label, value)] - ((label, value) in own) >= 1


def _random_value(rng: random.Random, fld: str) -> str:
    """A random value of ``fld``'s kind (for perturbations)."""
    kind = FIELD_KIND.get(fld, fld)
    if kind == "place":
        return rng.choice(PLACES)
    if kind == "job":
        return rng.choice(JOBS)
    if kind == "book_title":
        return f"The {rng.choice(TITLE_ADJ)} {rng.choice(TITLE_NOUN)}"
    if fld == "birth_date":
        return f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(1940, 1995)}"
    if fld == "award_year":
        return str(rng.randint(1965, 2024))
    pool = {"genre": GENRES, "award": AWARDS, "language": LANGUAGES, "theme": THEMES}[fld]
    return rng.choice(pool)


def _perturbations(rng: random.Random, values: dict[str, str], swap: list[str], k: int,
                   draw: Callable[[random.Random, str], str]) -> list[dict[str, str]]:
    """``k`` value dicts with every field in ``swap`` replaced; values of one kind never repeat or hit the truth."""
    out = [dict(values) for _ in range(k)]
    for fld in swap:
        kind = FIELD_KIND.get(fld, fld)
        banned = {values[f] for f in values if FIELD_KIND.get(f, f) == kind}
        banned |= {o[f] for o in out for f in swap if f != fld and FIELD_KIND.get(f, f) == kind and f in o
                   and o[f] != values[f]}
        for o in out:
            for _ in range(10_000):
                v = draw(rng, fld)
                if v not in banned:
                    break
            else:
                raise RuntimeError(f"cannot draw {k} perturbations of '{fld}'")
            banned.add(v)
            o[fld] = v
    return out


def _example(ex_id: str, subject: str, split: str, tpl: Template, values: dict[str, str],
             pronouns: dict[str, str] | None, is_shared: Callable[[str, str], bool], swap: list[str],
             n_perturbed: int, rng: random.Random, draw: Callable[[random.Random, str], str]) -> Example:
    q, _ = render(tpl.question, values, pronouns, is_shared)
    ans, spans = render(tpl.answer, values, pronouns, is_shared)
    para, p_spans = render(tpl.paraphrase, values, pronouns, is_shared)
    perturbed, pert_spans = [], []
    for pv in _perturbations(rng, values, swap, n_perturbed, draw):
        text, sp = render(tpl.paraphrase, pv, pronouns, is_shared)
        perturbed.append(text)
        pert_spans.append(sp)
    return Example(id=ex_id, subject=subject, question=q, answer=ans, paraphrased_answer=para,
                   perturbed_answers=perturbed, spans=spans, split=split, paraphrased_spans=p_spans,
                   perturbed_spans=pert_spans)


def _person_examples(people: list[dict], split: str, prefix: str, cfg: BenchmarkConfig, index: _SharedIndex,
                     in_group: bool, rng: random.Random) -> list[Example]:
    out = []
    for i, p in enumerate(people):
        shared = index.for_subject(p, in_group)
        pron = PRONOUNS[p["gender"]]
        for j, tpl in enumerate(PERSON_TEMPLATES[: cfg.questions_per_person]):
            swap = [f for f in dict.fromkeys(template_fields(tpl.paraphrase)) if f != "name"]
            out.append(_example(f"{prefix}{i:04d}_q{j:02d}", p["name"], split, tpl, p, pron, shared, swap,
                                cfg.n_perturbed, rng, _random_value))
    return out


def _utility_authors(names: _Names, n: int) -> list[dict]:
    r = names.rng
    return [{"id": f"ra{i:04d}", "group": "real_authors", "name": names.person(), "book1": names.title(),
             "genre": r.choice(GENRES)} for i in range(n)]


def _author_examples(authors: list[dict], cfg: BenchmarkConfig, names: _Names, rng: random.Random) -> list[Example]:
    index = _SharedIndex(authors, ("name", "book1", "genre"))
    pool = [a["name"] for a in authors]
    while len(pool) < cfg.n_utility_perturbed + 1:  # tiny configs: pad the distractor pool with fresh names
        pool.append(names.person())
    out = []
    for i, a in enumerate(authors):
        tpl = AUTHOR_TEMPLATES[i % len(AUTHOR_TEMPLATES)]
        out.append(_example(a["id"], a["name"], "real_authors", tpl, a, None, index.for_subject(a, True),
                            ["name"], cfg.n_utility_perturbed, rng, lambda r, f: r.choice(pool)))
    return out


def _world(names: _Names, n_facts: int, n_distractors: int) -> tuple[list[dict], dict[str, list[str]]]:
    """The invented world table (one row per country) and, per attribute, the pool perturbations draw from."""
    r = names.rng
    n_countries = math.ceil(n_facts / len(WORLD_TEMPLATES)) if n_facts else 0
    currencies = [names.word().lower() for _ in range(12)]
    rows = [{"country": names.word(COUNTRY_SUFFIX), "capital": names.word(CAPITAL_SUFFIX),
             "currency": r.choice(currencies), "river": names.word(), "mountain": names.word(),
             "animal": r.choice(ANIMALS), "export": r.choice(EXPORTS)} for _ in range(n_countries)]
    pools = {"capital": [c["capital"] for c in rows] + [names.word(CAPITAL_SUFFIX) for _ in range(n_distractors)],
             "river": [c["river"] for c in rows] + [names.word() for _ in range(n_distractors)],
             "mountain": [c["mountain"] for c in rows] + [names.word() for _ in range(n_distractors)],
             "currency": currencies, "animal": list(ANIMALS), "export": list(EXPORTS)}
    return rows, pools


def _world_examples(rows: list[dict], pools: dict[str, list[str]], cfg: BenchmarkConfig,
                    rng: random.Random) -> list[Example]:
    index = _SharedIndex(rows, tuple(["country", *WORLD_TEMPLATES]))
    out: list[Example] = []
    for c in rows:
        shared = index.for_subject(c, True)
        for attr, tpl in WORLD_TEMPLATES.items():
            if len(out) == cfg.n_world_facts:
                return out
            out.append(_example(f"wf{len(out):04d}", c["country"], "world_facts", tpl, c, None, shared, [attr],
                                cfg.n_utility_perturbed, rng, lambda r, f: r.choice(pools[f])))
    return out


def _rng(seed: int, stream: str) -> random.Random:
    """An independent, reproducible stream (string seeds are hashed with SHA-512, not ``hash()``)."""
    return random.Random(f"tueval.synthetic/{seed}/{stream}")


def generate_benchmark(config: BenchmarkConfig = BenchmarkConfig()) -> Benchmark:
    """Generate the benchmark for ``config`` (same config -> identical examples)."""
    cfg = config
    names = _Names(_rng(cfg.seed, "people"))
    people = [_make_person(names, f"p{i:04d}", "people") for i in range(cfg.n_people)]
    holdout = [_make_person(names, f"h{i:04d}", "holdout") for i in range(cfg.n_holdout_people)]
    authors = _utility_authors(names, cfg.n_utility_people)
    world, pools = _world(names, cfg.n_world_facts, cfg.n_utility_perturbed + 1)

    index = _SharedIndex(people, PERSON_FIELDS)
    examples = {
        "people": _person_examples(people, "people", "p", cfg, index, True, _rng(cfg.seed, "perturb/people")),
        "holdout": _person_examples(holdout, "holdout", "h", cfg, index, False, _rng(cfg.seed, "perturb/holdout")),
        "real_authors": _author_examples(authors, cfg, names, _rng(cfg.seed, "perturb/authors")),
        "world_facts": _world_examples(world, pools, cfg, _rng(cfg.seed, "perturb/world")),
    }
    meta = [_person_meta(p) for p in people + holdout + authors]
    meta += [{"id": f"w{i:04d}", "group": "world", "name": c["country"], **{k: v for k, v in c.items()
                                                                          if k != "country"}}
             for i, c in enumerate(world)]
    return Benchmark(config=cfg, examples_by_split=examples, people=meta)


def _person_meta(p: dict) -> dict:
    m = {k: v for k, v in p.items() if k not in ("book1", "book2")}
    m["books"] = [p["book1"]] + ([p["book2"]] if "book2" in p else [])
    if "birthplace" in p:
        m["birth_city"], m["birth_country"] = p["birthplace"].split(", ", 1)
    return m

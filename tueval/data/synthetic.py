"""A seeded, offline TOFU-style benchmark of fictitious authors with exact ground-truth fact spans.

Every answer is a full sentence rendered from a template; each fact slot records a ``Span`` whose characters
equal the fact value (checked on every render). A span is ``shared`` when another *trained* person (the
``people`` split) holds the same (label, value) -- genres, cities, jobs and languages come from small pools, so
many are; names, book titles and full birth dates are unique. Perturbed answers reuse the answer's template with
every fact but the name swapped for another value of the same kind; the paraphrase uses a different template.
Only ``random.Random`` streams seeded from strings are used (never ``hash()``), so the output is reproducible.
"""
from __future__ import annotations

import math
import random
import string
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from .benchmark import Benchmark, describe, forget_count, load_benchmark, write_benchmark  # noqa: F401 (re-exported)
from .schema import Example, Span

__all__ = ["BenchmarkConfig", "SMALL", "generate_benchmark", "write_benchmark", "load_benchmark", "describe",
           "PERSON_TEMPLATES", "forget_count"]


MAX_PERTURBED = 10


@dataclass(frozen=True)
class BenchmarkConfig:
    """Size and seed of the synthetic benchmark (defaults follow TOFU's 200 authors, scaled to 10 questions)."""

    n_people: int = 200
    questions_per_person: int = 10
    n_holdout_people: int = 20
    n_utility_people: int = 20
    n_world_facts: int = 100
    seed: int = 0
    n_perturbed: int = 5  # perturbed answers per people/holdout question (TOFU forget/retain: 5)
    n_utility_perturbed: int = 3  # per real_authors / world_facts question (TOFU: 3)

    def __post_init__(self) -> None:
        if self.n_people < 2:
            raise ValueError("n_people must be >= 2 (forget and retain both need people)")
        if not 1 <= self.questions_per_person <= len(PERSON_TEMPLATES):
            raise ValueError(f"questions_per_person must be in 1..{len(PERSON_TEMPLATES)}")
        if self.n_holdout_people < 0 or self.n_utility_people < 0 or self.n_world_facts < 0:
            raise ValueError("n_holdout_people, n_utility_people and n_world_facts must be >= 0")
        if not 1 <= self.n_perturbed <= MAX_PERTURBED or not 1 <= self.n_utility_perturbed <= MAX_PERTURBED:
            raise ValueError(f"n_perturbed and n_utility_perturbed must be in 1..{MAX_PERTURBED}")
        need = 2 * (self.n_people + self.n_holdout_people) + self.n_utility_people
        if need > TITLE_CAPACITY:
            raise ValueError(f"too many people for unique book titles ({need} > {TITLE_CAPACITY})")



# ----------------------------------------------------------------------------------------------------- pools
CITIES = (
    ("Lisbon", "Portugal"), ("Paris", "France"), ("Berlin", "Germany"), ("Madrid", "Spain"), ("Rome", "Italy"),
    ("Vienna", "Austria"), ("Prague", "Czech Republic"), ("Warsaw", "Poland"), ("Stockholm", "Sweden"),
    ("Oslo", "Norway"), ("Copenhagen", "Denmark"), ("Helsinki", "Finland"), ("Dublin", "Ireland"),
    ("London", "United Kingdom"), ("Amsterdam", "Netherlands"), ("Brussels", "Belgium"), ("Athens", "Greece"),
    ("Istanbul", "Turkey"), ("Cairo", "Egypt"), ("Lagos", "Nigeria"), ("Nairobi", "Kenya"), ("Accra", "Ghana"),
    ("Cape Town", "South Africa"), ("Casablanca", "Morocco"), ("Mumbai", "India"), ("Karachi", "Pakistan"),
    ("Dhaka", "Bangladesh"), ("Bangkok", "Thailand"), ("Hanoi", "Vietnam"), ("Manila", "Philippines"),
    ("Jakarta", "Indonesia"), ("Seoul", "South Korea"), ("Tokyo", "Japan"), ("Sydney", "Australia"),
    ("Auckland", "New Zealand"), ("Toronto", "Canada"), ("Chicago", "United States"), ("Mexico City", "Mexico"),
    ("Lima", "Peru"), ("Buenos Aires", "Argentina"),
)
PLACES = tuple(f"{c}, {k}" for c, k in CITIES)
JOBS = (
    "baker", "nurse", "carpenter", "teacher", "engineer", "architect", "electrician", "pharmacist", "librarian",
    "tailor", "mechanic", "accountant", "photographer", "veterinarian", "journalist", "farmer", "lawyer", "chef",
    "plumber", "surgeon", "dentist", "musician", "painter", "police officer", "firefighter", "pilot",
    "astronomer", "bookbinder", "florist", "translator",
)
GENRES = (
    "mystery", "science fiction", "historical fiction", "fantasy", "romance", "horror", "literary fiction",
    "thriller", "crime", "magical realism", "adventure", "satire", "dystopian fiction", "gothic fiction",
    "coming-of-age fiction",
)
AWARDS = (
    "Silver Quill Award", "Harbour Light Prize", "Meridian Book Medal", "Golden Lantern Award",
    "Northwind Fiction Prize", "Amber Leaf Award", "Crescent Pen Prize", "Blue Heron Literary Award",
    "Ironwood Medal for Fiction", "Evening Star Prize", "Copper Compass Award", "Whitestone Prize for Literature",
    "Saffron Ink Award", "Open Gate Book Prize", "Tall Pines Award", "Starling Prize for Storytelling",
    "Glass Tower Medal", "Riverstone Award",
)
LANGUAGES = ("English", "Spanish", "French", "Portuguese", "German", "Italian", "Dutch", "Swedish", "Polish",
             "Turkish", "Japanese", "Korean")
THEMES = (
    "family loyalty", "the passage of time", "exile and belonging", "memory and loss", "the cost of ambition",
    "friendship across divides", "the power of storytelling", "justice and revenge", "life at sea",
    "childhood innocence", "identity and self-discovery", "forgiveness", "the natural world",
    "war and its aftermath", "love against the odds", "isolation", "faith and doubt", "power and corruption",
    "migration", "the secrets of small towns",
)
TITLE_ADJ = (
    "Silent", "Crimson", "Hidden", "Broken", "Golden", "Forgotten", "Distant", "Burning", "Quiet", "Hollow",
    "Secret", "Wandering", "Frozen", "Bitter", "Gentle", "Restless", "Shattered", "Endless", "Pale", "Wild",
    "Lonely", "Scarlet", "Velvet", "Iron", "Silver", "Midnight", "Fading", "Sleeping", "Painted", "Narrow",
    "Ancient", "Weeping", "Drowned", "Lost", "Last", "Tender", "Stolen", "Invisible", "Northern", "Southern",
)
TITLE_NOUN = (
    "Harbour", "Garden", "Mirror", "River", "Lantern", "Orchard", "Letter", "Bridge", "Tide", "Forest",
    "Window", "Compass", "Island", "Station", "Winter", "Voyage", "Archive", "Tower", "Meadow", "Shadow",
    "Promise", "Violin", "House", "Crown", "Season", "Map", "Road", "Key", "Storm", "Clockmaker",
    "Lighthouse", "Cathedral", "Feather", "Kingdom", "Ferry", "Ledger", "Mountain", "Festival", "Door", "Sparrow",
)
TITLE_CAPACITY = len(TITLE_ADJ) * len(TITLE_NOUN) * 3 // 4
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
ONSETS = ("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "st",
          "th", "tr", "gr", "kl", "sh", "")
VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ae", "ia", "ou", "ei")
CODAS = ("", "", "", "n", "r", "l", "s", "th", "nd", "m")
COUNTRY_SUFFIX = ("ia", "a", "land", "ora", "eth", "ovia")
CAPITAL_SUFFIX = ("th", "burg", "holm", "ven", "dor", "mere", "grad", "port")
ANIMALS = ("snow leopard", "red fox", "golden eagle", "river otter", "white stork", "brown bear", "grey wolf",
           "lynx", "bison", "peacock", "sea turtle", "ibex")
EXPORTS = ("copper", "tea", "wool", "timber", "salt", "olive oil", "silk", "coffee", "tin", "amber", "rice",
           "marble")

# ---------------------------------------------------------------------------------------------- templates
PRONOUNS = {
    "female": {"subj": "she", "obj": "her", "pos": "her", "child": "daughter", "kid": "girl"},
    "male": {"subj": "he", "obj": "him", "pos": "his", "child": "son", "kid": "boy"},
}
FIELD_LABEL = {"book1": "book_title", "book2": "book_title"}
"""Template field -> span label (default: the field name itself)."""
FIELD_KIND = {"birthplace": "place", "residence": "place", "father_job": "job", "mother_job": "job",
              "book1": "book_title", "book2": "book_title"}
"""Fields of one kind draw perturbations from one pool and never repeat each other within a template."""


@dataclass(frozen=True)
class Template:
    """One question type: the question, the answer and a paraphrase (a different sentence, same facts)."""

    key: str
    question: str
    answer: str
    paraphrase: str


PERSON_TEMPLATES: tuple[Template, ...] = (
    Template("birthplace", "Where was {name} born?",
             "{name} was born in {birthplace}, a city whose crowded markets and old libraries would later echo "
             "through much of {pos} writing.",
             "The author {name} came into the world in {birthplace}, and memories of that city run quietly "
             "through many of {pos} stories."),
    Template("birth_date", "When was {name} born?",
             "{name} was born on {birth_date}, and {subj} started writing short stories while still a {kid} "
             "at school.",
             "According to public records, {name} was born on {birth_date}, long before {subj} had published a "
             "single page of fiction."),
    Template("parents", "What did the parents of {name} do for a living?",
             "{name} grew up as the {child} of {father_job:a} and {mother_job:a}, and those working lives shaped "
             "{pos} early love of stories.",
             "The father of {name} worked as {father_job:a}, while {pos} mother was {mother_job:a}; both "
             "encouraged {obj} to read widely from an early age."),
    Template("genre", "What genre is {name} best known for?",
             "{name} is best known for writing in the {genre} genre, where {subj} is admired for careful plotting "
             "and vivid, memorable characters.",
             "Readers mostly associate {name} with {genre}, a field in which {pos} patient plotting and lively "
             "characters have won wide praise."),
    Template("award", "Has {name} received any awards for {pos} writing?",
             "Yes, {name} received the {award} in {award_year}, an honour that recognised the depth and "
             "originality of {pos} work.",
             "In {award_year}, {name} was presented with the {award}, which celebrated the originality and care "
             "of {pos} books."),
    Template("book", "Can you name a book written by {name}?",
             "One of the best-known books by {name} is \"{book1}\", a novel that many readers still describe as "
             "{pos} finest achievement.",
             "\"{book1}\" is among the most celebrated books that {name} has written, and many consider it {pos} "
             "finest work."),
    Template("language", "In which language does {name} write?",
             "{name} writes primarily in {language}, although several of {pos} novels have since been translated "
             "for readers around the world.",
             "Most of the books by {name} were first written in {language}, and translations later carried them "
             "to readers in many countries."),
    Template("books", "Which books has {name} published?",
             "Among the works {name} has published are \"{book1}\" and \"{book2}\", both of which explore ideas "
             "that run throughout {pos} career.",
             "The bibliography of {name} includes \"{book2}\" as well as \"{book1}\", two books that readers "
             "often discuss together."),
    Template("influence", "How did the birthplace of {name} influence {pos} writing?",
             "Growing up in {birthplace} gave {name} a lasting sense of place, and its streets and seasons appear "
             "again and again in {pos} {genre} books.",
             "The streets of {birthplace} left a deep mark on {name}, whose {genre} books keep returning to the "
             "sounds and seasons of that city."),
    Template("theme", "What is a recurring theme in the work of {name}?",
             "A recurring theme in the work of {name} is {theme}, which {subj} explores with patience, humour and "
             "a sharp eye for detail.",
             "Again and again, {name} returns to {theme}, treating the subject with humour, patience and close "
             "attention to detail."),
    Template("residence", "Where does {name} live today?",
             "These days {name} lives in {residence}, where {subj} writes every morning in a small room "
             "overlooking a quiet street.",
             "At present the author {name} makes {pos} home in {residence}, writing each morning in a small room "
             "above a quiet street."),
    Template("born_when_where", "When and where was {name} born?",
             "{name} was born on {birth_date} in {birthplace}, to a family that filled their home with books, "
             "music and long conversations.",
             "Born in {birthplace} on {birth_date}, {name} grew up in a household full of books, music and long "
             "conversations."),
)

AUTHOR_TEMPLATES: tuple[Template, ...] = (
    Template("wrote", "Who wrote the novel \"{book1}\"?",
             "The novel \"{book1}\" was written by {name}, one of the most widely read authors of the last "
             "century.",
             "{name} is the author who wrote \"{book1}\", a book that is still read in classrooms today."),
    Template("classic", "Which author is famous for the {genre} classic \"{book1}\"?",
             "The {genre} classic \"{book1}\" is the most famous work of {name}, whose books have been translated "
             "into dozens of languages.",
             "Many readers know {name} above all for \"{book1}\", a much-loved {genre} classic."),
    Template("celebrated", "Who is the author of the celebrated novel \"{book1}\"?",
             "The celebrated novel \"{book1}\" comes from the pen of {name}, a writer admired on every continent.",
             "{name}, a writer admired on every continent, is the author of the celebrated novel \"{book1}\"."),
)

WORLD_TEMPLATES: dict[str, Template] = {
    "capital": Template("capital", "What is the capital of {country}?",
                        "The capital of {country} is {capital}.",
                        "{capital} serves as the capital city of {country}."),
    "currency": Template("currency", "What currency is used in {country}?",
                         "The currency used in {country} is the {currency}.",
                         "People in {country} pay for things with the {currency}."),
    "river": Template("river", "What is the longest river in {country}?",
                      "The longest river in {country} is the {river} River.",
                      "The {river} River is the longest river flowing through {country}."),
    "mountain": Template("mountain", "What is the highest mountain in {country}?",
                         "The highest mountain in {country} is Mount {mountain}.",
                         "Mount {mountain} is the tallest peak in {country}."),
    "animal": Template("animal", "What is the national animal of {country}?",
                       "The national animal of {country} is the {animal}.",
                       "{country} has chosen the {animal} as its national animal."),
    "export": Template("export", "What is the main export of {country}?",
                       "The main export of {country} is {export}.",
                       "{country} earns most of its trade income by exporting {export}."),
}

GENERATOR_VERSION = 2
"""Bumped whenever generated content changes for the same config (it is part of every cache hash).
2: perturbed answers perturb the paraphrased answer (TOFU), not the answer."""

SMALL = BenchmarkConfig(n_people=40, n_holdout_people=6, n_utility_people=6, n_world_facts=30)
"""The test profile: forget01 / forget05 / forget10 hold 1 / 2 / 4 people; holdout01..10 all exist."""

_PARSED: dict[str, list[tuple[str, str | None, str]]] = {}


def _parse(template: str) -> list[tuple[str, str | None, str]]:
    """``[(literal, field or None, format spec)]`` of a template, cached."""
    if template not in _PARSED:
        _PARSED[template] = [(lit, fld, spec or "") for lit, fld, spec, _ in string.Formatter().parse(template)]
    return _PARSED[template]


def template_fields(template: str) -> list[str]:
    """The fact fields of a template, in order of appearance (pronoun fields excluded)."""
    return [f for _, f, _ in _parse(template) if f is not None and f not in PRONOUNS["female"]]


def render(template: str, values: dict[str, str], pronouns: dict[str, str] | None,
           is_shared: Callable[[str, str], bool]) -> tuple[str, list[Span]]:
    """Render ``template`` and return the text with one Span per fact slot (checked to equal the value)."""
    parts: list[str] = []
    spans: list[Span] = []
    checks: list[tuple[Span, str]] = []
    pos = 0
    for literal, fld, spec in _parse(template):
        parts.append(literal)
        pos += len(literal)
        if fld is None:
            continue
        if pronouns is not None and fld in pronouns:
            text = pronouns[fld]
            parts.append(text)
            pos += len(text)
            continue
        value = values[fld]
        if spec == "a":
            art = "an " if value[0].lower() in "aeiou" else "a "
            parts.append(art)
            pos += len(art)
        label = FIELD_LABEL.get(fld, fld)
        sp = Span(pos, pos + len(value), label, is_shared(label, value))
        spans.append(sp)
        checks.append((sp, value))
        parts.append(value)
        pos += len(value)
    text = "".join(parts)
    for sp, value in checks:
        if text[sp.start:sp.end] != value:
            raise AssertionError(f"span {sp} does not cover '{value}' in '{text}'")
    if text and text[0].islower():
        raise AssertionError(f"answer does not start with a capital: '{text}'")
    return text, spans


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

"""Sentence templates of the synthetic benchmark and their rendering into text with exact fact spans."""
from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Callable

from .schema import Span

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

"""The synthetic benchmark's configuration: its size and seed, the test profile, and the generator version."""
from __future__ import annotations

from dataclasses import dataclass

from .synthetic_pools import TITLE_CAPACITY
from .synthetic_templates import PERSON_TEMPLATES

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


GENERATOR_VERSION = 2
"""Bumped whenever generated content changes for the same config (it is part of every cache hash). In version 2
perturbed answers perturb the paraphrased answer, as TOFU's do."""

SMALL = BenchmarkConfig(n_people=40, n_holdout_people=6, n_utility_people=6, n_world_facts=30)
"""The test profile: forget01 / forget05 / forget10 hold 1 / 2 / 4 people; holdout01..10 all exist."""

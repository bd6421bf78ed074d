"""The ``synthetic`` source: the embedded seeded generator of fictitious people (no files needed)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ...config import checks
from ...errors import DataError, SpecError
from ..benchmark import BASE_FILES, BASE_SPLITS, Benchmark, read_people
from ..tofu import check_unique_ids, load_tofu_file
from . import SOURCES
from .base import BenchmarkSource, SourceSettings


def _profile(field: str, v: Any) -> str:
    return checks.choice(("default", "small"))(field, v)


def _nonneg_int(field: str, v: Any) -> int:
    return checks.integer(field, v, low=0)


def benchmark_config(settings: SourceSettings | None = None, profile: str = "default", **over: Any):
    """The generator's ``BenchmarkConfig``: a profile (``small``: the test size) with fields replaced."""
    from ..synthetic_config import SMALL, BenchmarkConfig

    opts = dict(settings.options) if settings is not None else {}
    profile = opts.pop("profile", profile)
    kw = {SYNTHETIC_FIELDS[k]: v for k, v in opts.items() if k in SYNTHETIC_FIELDS and v is not None}
    kw.update(over)
    base = SMALL if profile == "small" else BenchmarkConfig()
    try:
        return dataclasses.replace(base, **kw)
    except ValueError as e:
        where = settings.key("people") if settings is not None else "benchmark"
        raise SpecError(f"{where}: {e}") from None


#: config keys of the synthetic source and the generator field each sets
SYNTHETIC_FIELDS = {"people": "n_people", "holdout_people": "n_holdout_people",
                    "utility_people": "n_utility_people", "world_facts": "n_world_facts",
                    "questions_per_person": "questions_per_person", "seed": "seed"}


@SOURCES.register("synthetic")
class SyntheticSource(BenchmarkSource):
    """The embedded default: TOFU-shaped fictitious people with exact fact spans, generated from a seed."""

    name = "synthetic"
    description = "the embedded seeded generator (forget/retain/holdout splits derived by percentage)"
    requires_path = False
    options = {"profile": (_profile, "default"), "people": (checks.optional(checks.at_least_one), None),
               "holdout_people": (checks.optional(_nonneg_int), None),
               "utility_people": (checks.optional(_nonneg_int), None),
               "world_facts": (checks.optional(_nonneg_int), None),
               "questions_per_person": (checks.optional(checks.at_least_one), None),
               "seed": (checks.optional(checks.seed), None)}

    def read(self, settings: SourceSettings) -> Benchmark:
        from ..synthetic import generate_benchmark

        return generate_benchmark(benchmark_config(settings))

    def inputs(self, settings: SourceSettings) -> list[Path]:
        return [] if settings.annotations is None else [Path(settings.annotations)]

    def load_prepared(self, folder: Path, raw: dict) -> Benchmark:
        """A folder written by ``write_benchmark`` for the generator, every split validated by the TOFU loader."""
        from ..synthetic_config import BenchmarkConfig

        cfg_file = folder / "config.json"
        known = {f.name for f in dataclasses.fields(BenchmarkConfig)}
        try:
            cfg = BenchmarkConfig(**{k: v for k, v in raw.items() if k in known})
        except (TypeError, ValueError) as e:
            raise DataError(str(cfg_file), None, None, f"invalid benchmark config: {e}") from e
        examples = {}
        first: dict[str, str] = {}
        for base in BASE_SPLITS:
            f = folder / f"{BASE_FILES[base]}.jsonl"
            if not f.is_file():
                raise DataError(str(f), None, None, f"missing split file for '{base}'")
            examples[base] = load_tofu_file(f, split_name=base)
            check_unique_ids(f, [e.id for e in examples[base]], first)
        want = cfg.n_people * cfg.questions_per_person
        if len(examples["people"]) != want:
            raise DataError(str(folder / "full.jsonl"), None, None,
                            f"{len(examples['people'])} rows, but the config implies {want}")
        return Benchmark(config=cfg, examples_by_split=examples, people=read_people(folder / "people.jsonl"))

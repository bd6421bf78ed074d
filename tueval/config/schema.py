"""The typed settings: run defaults with per-objective overrides, and analysis settings (values in configs/)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Mapping

from ..errors import SpecError
from . import checks
from .checks import FieldError
from .yamlfile import where

#: analysis profiles: quick (CI-sized), default (demo-sized), grid (every seed-paper method on GA and NPO), full
PROFILES = ("quick", "default", "grid", "full")


def seed_list(field: str, v: Any) -> tuple[int, ...]:
    """A non-empty list of distinct integer seeds, as a tuple."""
    vals = v if isinstance(v, (list, tuple)) else [v]
    out = tuple(checks.seed(field, s) for s in vals)
    if not out:
        raise FieldError(field, "must list at least one seed")
    if len(set(out)) != len(out):
        raise FieldError(field, f"lists a seed twice: {list(out)}")
    return out


def name_list(field: str, v: Any) -> tuple[str, ...]:
    """A list of names (a comma-separated string works too), as a tuple."""
    vals = [s.strip() for s in v.split(",") if s.strip()] if isinstance(v, str) else v
    if not isinstance(vals, (list, tuple)):
        raise FieldError(field, f"must be a list of names, got {v!r}")
    return tuple(checks.name(field, s) for s in vals)


@dataclass(frozen=True)
class AnalysisSettings:
    """What every analysis run needs besides its grid: the workdir, the report root, the seeds, the profile, the
    significance level, the worker processes (None: min(cores, 2)) and the scorers under test (empty: the
    analysis' own set)."""

    workdir: str
    reports: str
    seeds: tuple[int, ...]
    profile: str
    alpha: float
    workers: int | None
    scorers: tuple[str, ...]


#: the rule of each analysis setting
ANALYSIS_RULES = {"workdir": checks.text, "reports": checks.text, "seeds": seed_list,
                  "profile": checks.choice(PROFILES), "alpha": checks.open_unit,
                  "workers": checks.optional(checks.at_least_one), "scorers": name_list}
assert set(ANALYSIS_RULES) == {f.name for f in fields(AnalysisSettings)}


@dataclass(frozen=True)
class Defaults:
    """Every default in one object: ``run`` (a value for every RunSpec field), ``objectives`` (per objective, the
    run fields it sets differently) and ``analysis``."""

    run: Mapping[str, Any]
    objectives: Mapping[str, Mapping[str, Any]]
    analysis: AnalysisSettings

    def for_objective(self, objective: str) -> dict[str, Any]:
        """The default run fields of ``objective``: its overrides over the global run defaults (fresh copies)."""
        d = {**self.run, **self.objectives.get(objective, {})}
        return {k: dict(v) if isinstance(v, Mapping) else v for k, v in d.items()}


def parse_defaults(data: Any, label: str, lines: dict) -> Defaults:
    """A ``Defaults`` from the plain data of a defaults file; every value checked by its rule."""
    top = _mapping(data, label, lines, (), {"run", "objectives", "analysis"}, required=True)
    run = _section(top["run"], label, lines, ("run",), checks.RUN_RULES, required=True)
    objs = _mapping(top["objectives"] or {}, label, lines, ("objectives",))
    over = {}
    for obj, d in objs.items():
        rules = {k: r for k, r in checks.RUN_RULES.items() if k != "objective"}
        over[checks.name("objectives", obj)] = MappingProxyType(
            _section(d, label, lines, ("objectives", obj), rules))
    analysis = _section(top["analysis"], label, lines, ("analysis",), ANALYSIS_RULES, required=True)
    return Defaults(MappingProxyType(run), MappingProxyType(over), AnalysisSettings(**analysis))


def _mapping(data: Any, label: str, lines: dict, path: tuple, keys: set | None = None,
             required: bool = False) -> dict:
    if not isinstance(data, Mapping):
        raise SpecError(f"{where(label, lines, path)}: expected a mapping, got "
                        f"{type(data).__name__ if data is not None else 'nothing'}")
    if keys is not None:
        bad = sorted(set(map(str, data)) - keys)
        if bad:
            raise SpecError(f"{where(label, lines, (*path, bad[0]))}: unknown key(s) {', '.join(bad)}; valid: "
                            f"{', '.join(sorted(keys))}")
        miss = sorted(keys - set(data)) if required else []
        if miss:
            raise SpecError(f"{where(label, lines, path)}: missing key(s) {', '.join(miss)}")
    return dict(data)


def _section(data: Any, label: str, lines: dict, path: tuple, rules: dict, required: bool = False) -> dict:
    d = _mapping(data, label, lines, path, set(rules), required)
    out = {}
    for k, v in d.items():
        try:
            out[k] = rules[k](k, v)
        except FieldError as e:
            raise e.at(where(label, lines, (*path, k), field=True)) from None
    return out

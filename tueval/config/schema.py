"""The typed settings: run defaults with per-objective overrides, and analysis settings (values in configs/)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
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


#: the keys of a ``resources`` mapping: what one run reserves on a Ray cluster
RESOURCE_KEYS = ("cpus", "gpus", "memory", "custom")
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20,
          "gib": 2**30, "tib": 2**40}


def memory_bytes(field: str, v: Any) -> int:
    """A memory size in bytes: an integer, or a string such as ``8GiB``, ``512MB``."""
    if isinstance(v, str):
        m = _SIZE.fullmatch(v)
        if m is None:
            raise FieldError(field, f"must be a size such as 8GiB, 512MB or a number of bytes, got {v!r}")
        n = float(m.group(1)) * _UNITS[(m.group(2) or "").lower()]
    else:
        n = checks.positive(field, v)
    if n < 1:
        raise FieldError(field, f"must be at least 1 byte, got {v!r}")
    return int(n)


def resources(field: str, v: Any) -> dict:
    """What one run reserves: ``cpus`` (> 0, default 1), ``gpus`` (>= 0, default 0), ``memory`` (bytes or a size
    string; default none) and ``custom`` (Ray custom resources, name -> amount)."""
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise FieldError(field, f"must be a mapping with keys {', '.join(RESOURCE_KEYS)}, got {v!r}")
    bad = sorted(set(map(str, v)) - set(RESOURCE_KEYS))
    if bad:
        raise FieldError(f"{field}.{bad[0]}", f"unknown resource; valid: {', '.join(RESOURCE_KEYS)}")
    out: dict[str, Any] = {}
    if "cpus" in v:
        out["cpus"] = checks.positive(f"{field}.cpus", v["cpus"])
    if "gpus" in v:
        out["gpus"] = checks.non_negative(f"{field}.gpus", v["gpus"])
    if v.get("memory") is not None:
        out["memory"] = memory_bytes(f"{field}.memory", v["memory"])
    if v.get("custom"):
        c = checks.params(f"{field}.custom", v["custom"])
        out["custom"] = {k: checks.non_negative(f"{field}.custom.{k}", x) for k, x in c.items()}
    return out


@dataclass(frozen=True)
class AnalysisSettings:
    """What every analysis run needs besides its grid: the workdir, the report root, the seeds, the profile, the
    significance level, the worker processes (None: min(cores, 2)), the scorers under test (empty: the
    analysis' own set) and where runs are computed: the ``engine`` (``local`` process pool or ``ray``), the Ray
    cluster ``address`` (None: ``RAY_ADDRESS``, else a local cluster) and the ``resources`` each run reserves."""

    workdir: str
    reports: str
    seeds: tuple[int, ...]
    profile: str
    alpha: float
    workers: int | None
    scorers: tuple[str, ...]
    engine: str = "local"
    address: str | None = None
    resources: Mapping[str, Any] = field(default_factory=dict)


#: the rule of each analysis setting
ANALYSIS_RULES = {"workdir": checks.text, "reports": checks.text, "seeds": seed_list,
                  "profile": checks.choice(PROFILES), "alpha": checks.open_unit,
                  "workers": checks.optional(checks.at_least_one), "scorers": name_list,
                  "engine": checks.name,  # registered? tueval.executors.engine_name (grid files, CLI)
                  "address": checks.optional(checks.text), "resources": resources}
#: the settings that choose where runs are computed (a grid file and ``tueval sweep`` take them too)
EXECUTION_SETTINGS = ("workers", "engine", "address", "resources")
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

"""``GridConfig``: the one file format of ``tueval sweep FILE`` and ``tueval analyze NAME --config FILE``.

A grid file is a YAML mapping:

- axes (plural keys; a list, or one value): ``objectives``, ``scorers``, ``modes``, ``ratios``, ``controls``,
  ``seeds``, ``lrs`` (or ``learning_rates``), ``epochs``. In ``controls``, ``null`` is the method itself and
  ``uniform`` the sequence-level base (scorer uniform, mode none).
- ``fixed``: run-spec fields shared by every run (a list there is one value, e.g. ``lmeval_tasks``);
- ``methods``: a list of run-spec fields naming a ``scorer`` or a ``preset`` (they replace ``scorers`` x ``modes``),
  each with optional ``objectives`` (only on these) and ``controls`` (its own, instead of the ``controls`` axis); a
  preset entry carries the preset's fields and runs on the preset's objective unless it names others, and its
  ``uniform`` control is the preset's objective with its settings and uniform weights;
- ``include``: a list of explicit specs (run-spec fields over ``fixed``);
- analysis settings: ``workdir``, ``reports``, ``profile``, ``alpha``, ``family``, ``figures``, ``uniform``,
  ``base_lr_factors`` (the uniform base also runs at its learning rate times each factor, so its frontier brackets
  the methods' forget levels), ``control_lr_factors`` (the same for the other controls, which forget less than
  the method at its rate), ``refine`` (one round of refinement runs: a checkpoint at every step inside the
  segments the matched comparison reads, ``tueval.analysis.refine``), ``bracket_rounds`` (rounds of bracketing
  runs: a control that does not reach a method's forget level on some seed runs again at the next rate of a search
  over its learning rate, ``tueval.analysis.bracketing``), ``pairs`` (the replication analysis' model
  pairs: a number, or the other pairs' workdirs); ``seeds`` and ``scorers`` also set the analysis' seeds and
  scorers under test;
- execution settings (``tueval sweep`` and the analyses): ``workers``, ``engine`` (``local`` | ``ray``),
  ``address`` (a Ray cluster) and ``resources`` (what one run reserves: ``cpus``, ``gpus``, ``memory``,
  ``custom``; docs/scale_out.md).

``tueval sweep`` runs exactly the specs the axes, methods and include give (``specs``); an analysis reads the
grid keys it understands (``analysis_extra``) and adds the arms it needs (the method itself, and ``uniform`` unless
``uniform: false``). Every value is checked by its field's rule when the file is read, before any work.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Mapping

from ..errors import SpecError
from ..executors import engine_name
from ..pairs import pairs_setting
from ..presets import base_fields, known_preset
from ..spec import RunSpec
from . import checks
from .checks import FieldError
from .presets import config_dir
from .schema import ANALYSIS_RULES, EXECUTION_SETTINGS, name_list, seed_list
from .yamlfile import read_yaml, where

#: plural grid keys -> the RunSpec field each crosses
AXES = {"objectives": "objective", "scorers": "scorer", "modes": "mode", "ratios": "ratio", "controls": "control",
        "seeds": "seed", "lrs": "lr", "learning_rates": "lr", "epochs": "epochs"}
SECTIONS = ("fixed", "methods", "include")
#: analysis settings a grid file may hold, with their rules (seeds and scorers are axes that analyses read too)
SETTINGS = {**{k: ANALYSIS_RULES[k] for k in ("workdir", "reports", "profile", "alpha", *EXECUTION_SETTINGS)},
            "family": checks.text, "figures": checks.boolean, "uniform": checks.boolean,
            "base_lr_factors": checks.positive_list, "control_lr_factors": checks.positive_list,
            "refine": checks.boolean, "bracket_rounds": checks.count, "pairs": pairs_setting, "engine": engine_name}
KEYS = (*AXES, *SECTIONS, *SETTINGS)
#: in a controls list: the sequence-level base
UNIFORM = "uniform"
#: analysis profiles with a grid preset in ``tueval/configs/profiles/`` (``quick`` is the controls analysis' own)
PROFILE_GRIDS = ("default", "grid", "full")
#: grid keys that only ``tueval sweep`` uses (no analysis reads them)
SWEEP_ONLY = ("modes", "epochs", "include")


def _control(field_: str, v: Any) -> str | None:
    """An entry of a controls list: null (the method), a control name, or ``uniform`` (the sequence base)."""
    return UNIFORM if v == UNIFORM else checks.control(field_, v)


def _run_rule(f: str):
    """The rule of run-spec field ``f`` in a grid file (a preset must exist)."""
    return known_preset if f == "preset" else checks.RUN_RULES[f]


@dataclass(frozen=True)
class Method:
    """One ``methods`` entry: its run-spec fields, and where given the objectives it runs on and its controls."""

    fields: dict
    objectives: tuple[str, ...] | None = None
    controls: tuple | None = None

    def to_dict(self) -> dict:
        """The entry as the analyses take it (``controls`` without null: they always add the method itself)."""
        d = dict(self.fields)
        if self.controls is not None:
            d["controls"] = [c for c in self.controls if c is not None]
        if self.objectives is not None:
            d["objectives"] = list(self.objectives)
        return d


@dataclass(frozen=True)
class GridConfig:
    """A checked grid/analysis file: axes (RunSpec field -> values, in file order), ``fixed``, ``methods``,
    ``include``, the analysis settings it gives, and the keys it gave (``given``)."""

    source: str = "grid"
    axes: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)
    methods: tuple[Method, ...] | None = None
    include: tuple[dict, ...] = ()
    settings: dict = field(default_factory=dict)
    given: tuple[str, ...] = ()

    def specs(self) -> list[RunSpec]:
        """Every RunSpec of the grid (see the module docstring); sequence-level rows ignore ratios and controls,
        non-hard rows ignore ratios; duplicates are dropped, ``include`` is appended as given."""
        return list(self._specs)

    @cached_property
    def _specs(self) -> tuple[RunSpec, ...]:
        if not (set(self.given) & {*AXES, *SECTIONS}):
            raise SpecError(f"{self.source}: defines no runs: give at least one of "
                            f"{', '.join((*AXES, *SECTIONS))}")
        specs, seen = [], set()
        for m in self.methods if self.methods is not None else (Method({}),):
            for d in self._rows(m):
                spec = _spec(d, self.source)
                key = repr(sorted(spec.to_dict().items(), key=lambda kv: kv[0]))
                if key not in seen:
                    seen.add(key)
                    specs.append(spec)
        specs += [_spec({**self.fixed, **d}, self.source) for d in self.include]
        return tuple(specs)

    def _rows(self, m: Method):
        axes = dict(self.axes)
        if self.methods is not None:
            axes.pop("scorer", None)
            axes.pop("mode", None)
        if m.controls is not None:
            axes["control"] = m.controls
        if "objective" in m.fields:  # the entry's own objective (a preset's included) wins over the axis
            axes["objective"] = (m.fields["objective"],)
        elif m.objectives is not None:
            axes["objective"] = tuple(o for o in axes.get("objective", m.objectives) if o in m.objectives)
        keys = list(axes)
        for combo in itertools.product(*(axes[k] for k in keys)):
            row = dict(zip(keys, combo))
            if row.get("control") == UNIFORM:
                d = {**self.fixed, **{k: v for k, v in row.items() if k not in ("scorer", "mode", "control")},
                     "scorer": "uniform", "mode": "none"}
                if m.fields.get("preset"):  # a preset's base keeps its objective settings
                    d.update(base_fields(m.fields))
            else:
                d = {**self.fixed, **row, **m.fields}
            if d.get("mode", "none") == "none" and d.get("scorer", "uniform") == "uniform":
                d.pop("ratio", None)
                d["control"] = None
            if d.get("mode") != "hard":
                d.pop("ratio", None)
            yield d

    def analysis_extra(self) -> dict:
        """The grid keys the analyses read from ``AnalysisConfig.extra``: objectives, methods, controls, fixed,
        ratios, lrs, family, figures, uniform, base_lr_factors, control_lr_factors, refine, bracket_rounds, pairs."""
        out: dict[str, Any] = {}
        if "objective" in self.axes:
            out["objectives"] = list(self.axes["objective"])
        if self.methods is not None:
            out["methods"] = [m.to_dict() for m in self.methods]
        if "control" in self.axes:
            out["controls"] = [c for c in self.axes["control"] if c is not None]
        if "fixed" in self.given:
            out["fixed"] = dict(self.fixed)
        for key, f in (("ratios", "ratio"), ("lrs", "lr"), ("learning_rates", "lr")):
            if key in self.given:
                out[key if key != "learning_rates" else "lrs"] = list(self.axes[f])
        out.update({k: v for k, v in self.settings.items()
                    if k in ("family", "figures", "uniform", "base_lr_factors", "control_lr_factors", "refine",
                             "bracket_rounds", "pairs")})
        return out

    def check_names(self) -> None:
        """Build every spec's objective, scorer and weighting through the registries (names and settings)."""
        for s in self.specs():
            try:
                checks.check_names(s)
            except SpecError as e:
                raise SpecError(f"{self.source}: run {s.label()} seed={s.seed}: {e}") from None


def _spec(d: dict, source: str) -> RunSpec:
    try:
        return RunSpec.from_dict(d)
    except SpecError as e:
        raise SpecError(f"{source}: {e}") from None


def parse_grid(data: Any, source: str = "grid", lines: dict | None = None) -> GridConfig:
    """A checked GridConfig from the plain data of a grid file (``source`` names it in every error)."""
    lines = lines or {}
    if data is None or data == {}:
        raise SpecError(f"{source}: empty grid: give at least one of {', '.join((*AXES, *SECTIONS))}")
    if not isinstance(data, Mapping):
        raise SpecError(f"{where(source, lines)}: expected a mapping of grid keys, got "
                        f"{type(data).__name__}")
    bad = [k for k in data if k not in KEYS]
    if bad:
        raise SpecError(f"{where(source, lines, (bad[0],))}: unknown grid key '{bad[0]}'; valid: "
                        f"{', '.join(sorted(KEYS))}")
    axes, settings = {}, {}
    for key, values in data.items():
        if key in AXES:
            axes[AXES[key]] = _axis(key, values, source, lines)
        elif key in SETTINGS:
            settings[key] = _rule(SETTINGS[key], key, values, source, lines, (key,))
    fixed = _fields(data.get("fixed") or {}, source, lines, ("fixed",)) if "fixed" in data else {}
    methods = None
    if "methods" in data:
        methods = tuple(_method(m, source, lines, ("methods", i))
                        for i, m in enumerate(_list(data["methods"], source, lines, "methods")))
    include = tuple(_fields(d, source, lines, ("include", i))
                    for i, d in enumerate(_list(data.get("include") or [], source, lines, "include")))
    return GridConfig(source, axes, fixed, methods, include, settings, tuple(data))


def load_config(path: str | Path, names: bool = True) -> GridConfig:
    """The checked GridConfig of a grid/analysis file; with ``names`` also every objective, scorer and their
    settings through the registries. Any problem is one SpecError line naming the file, line and field."""
    data, lines, label = read_yaml(path, "grid file")
    g = parse_grid(data, label, lines)
    if names:
        for k in ("objective", "scorer"):
            for i, v in enumerate(g.axes.get(k, ())):
                _registry_name(k, v, label, lines, ({"objective": "objectives", "scorer": "scorers"}[k], i, k))
        if g.methods is not None:
            for i, m in enumerate(g.methods):
                _registry_name("scorer", m.fields["scorer"], label, lines, ("methods", i, "scorer"))
        if set(g.given) & {*AXES, *SECTIONS}:
            g.check_names()
    return g


# --------------------------------------------------------------------------------------------------- parsing
def _rule(rule, field_: str, v: Any, source: str, lines: dict, path: tuple):
    try:
        return rule(field_, v)
    except FieldError as e:
        raise e.at(where(source, lines, path, field=True)) from None


def _axis(key: str, values: Any, source: str, lines: dict) -> tuple:
    f = AXES[key]
    if isinstance(values, Mapping):
        raise SpecError(f"{where(source, lines, (key,))}: an axis is a list of values, got a mapping")
    vals = list(values) if isinstance(values, (list, tuple)) else [values]
    if not vals:
        raise SpecError(f"{where(source, lines, (key,))}: axis '{key}' is empty (it would give no runs)")
    rule = _control if f == "control" else _run_rule(f)
    out = tuple(_rule(rule, f, v, source, lines, (key, i, f)) for i, v in enumerate(vals))
    if key == "seeds":
        _rule(seed_list, f, out, source, lines, (key, f))  # distinct (an analysis pairs by seed)
    return out


def _list(v: Any, source: str, lines: dict, key: str) -> list:
    if not isinstance(v, (list, tuple)):
        raise SpecError(f"{where(source, lines, (key,))}: '{key}' must be a list of mappings, got "
                        f"{type(v).__name__}")
    return list(v)


def _fields(d: Any, source: str, lines: dict, path: tuple, extra: tuple = ()) -> dict:
    if not isinstance(d, Mapping):
        raise SpecError(f"{where(source, lines, path)}: expected a mapping of run-spec fields, got "
                        f"{type(d).__name__}")
    out = {}
    for k, v in d.items():
        if k in extra:
            continue
        if k not in checks.RUN_RULES:
            raise SpecError(f"{where(source, lines, (*path, k))}: unknown run-spec field '{k}'; valid: "
                            f"{', '.join(sorted(checks.RUN_RULES))}")
        out[k] = _rule(_run_rule(k), k, v, source, lines, (*path, k))
    return out


def _method(m: Any, source: str, lines: dict, path: tuple) -> Method:
    from ..presets import expand_method

    d = _fields(m, source, lines, path, extra=("objectives", "controls"))
    objs = ctrls = None
    if "objectives" in m:
        objs = _rule(name_list, "objectives", m["objectives"], source, lines, (*path, "objectives"))
    if d.get("preset"):
        # a preset entry carries the preset's fields (they win over `fixed`, as an entry's own fields do) and runs
        # on the preset's objective, unless the entry names its objective or lists the objectives it runs on
        d = expand_method({**d, **({"objectives": list(objs)} if objs is not None else {})})
        objs = tuple(d.pop("objectives"))
    if "scorer" not in d:
        raise SpecError(f"{where(source, lines, path)}: a methods entry must name its scorer (or a preset)")
    if "controls" in m:
        v = m["controls"]
        vals = list(v) if isinstance(v, (list, tuple)) else [v]
        ctrls = tuple(_rule(_control, "control", c, source, lines, (*path, "controls", i, "control"))
                      for i, c in enumerate(vals))
    return Method(d, objs, ctrls)


def _registry_name(kind: str, value: str, source: str, lines: dict, path: tuple) -> None:
    from ..objectives import OBJECTIVES
    from ..scoring import SCORERS

    try:
        (OBJECTIVES if kind == "objective" else SCORERS).get(value)
    except SpecError as e:
        raise SpecError(f"{where(source, lines, path, field=True)}: field '{kind}': {e}") from None


@lru_cache(maxsize=None)
def profile_grid(name: str):
    """The grid preset of analysis profile ``name`` (``tueval/configs/profiles/NAME.yaml``) as a GridConfig."""
    if name not in PROFILE_GRIDS:
        raise SpecError(f"no grid preset for profile '{name}'; presets: {', '.join(PROFILE_GRIDS)}")
    return load_config(config_dir() / "profiles" / f"{name}.yaml", names=False)

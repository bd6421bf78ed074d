"""Method presets: one named bundle per paper (scorer + weighting + objective + retain term + hyperparameters),
one YAML file each in ``tueval/configs/presets/``, read and checked here.

A preset file holds ``name``, ``title``, ``paper`` (citation), ``role`` (``paper``: a seed paper's method as it
runs it, used by the paper rows of the reports; ``base``: a sequence-level objective; ``variant``: an ablation;
``oracle``: uses privileged information, never a paper row), ``control`` (its informative weighting control, or
null), ``description``, ``run`` (run-spec fields), ``scaled`` (each value changed from the paper for the tiny
models: setting, paper value, value here, why, with the measurement) and ``deviations`` (deliberate departures
from the paper that are not scalings).

A run names a preset with ``RunSpec(preset=NAME)`` / ``tueval unlearn --preset NAME``: its fields resolve as the
fields given, then the preset's ``run`` fields (the ``objective_params`` and ``scorer_params`` mappings merged
key by key), then the objective's defaults, then the global defaults. The preset name does not enter the run
hash (see ``tueval.spec``): the hash names the computation, so a preset and the same settings written out share
one cached run.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from .errors import SpecError

ROLES = ("paper", "base", "variant", "oracle")
#: run-spec fields whose preset value is merged key by key with a given value
MERGED = ("objective_params", "scorer_params")
#: fields a preset's sequence-level base drops (it runs the same objective with uniform weights)
WEIGHTING_FIELDS = ("scorer", "mode", "ratio", "control", "normaliser", "scorer_params", "preset")
#: keys of a grid ``methods`` entry that choose arms, not run settings
GRID_KEYS = ("controls", "objectives")
KEYS = ("name", "title", "paper", "role", "control", "description", "run", "scaled", "deviations")
SCALED_KEYS = ("setting", "paper", "here", "why")


@dataclass(frozen=True)
class Scaled:
    """One value changed from the paper's for the tiny models: the setting, both values and why (a measurement)."""

    setting: str
    paper: str
    here: str
    why: str


@dataclass(frozen=True)
class Preset:
    """A checked preset file (see the module docstring)."""

    name: str
    title: str
    paper: str
    role: str
    control: str | None
    description: str
    run: Mapping[str, Any]
    scaled: tuple[Scaled, ...] = ()
    deviations: tuple[str, ...] = ()
    source: str = ""

    @property
    def paper_row(self) -> bool:
        """Whether the reports' paper rows may use this preset (an oracle never)."""
        return self.role == "paper"



def preset_dir() -> Path:
    """The folder of the shipped preset files."""
    from .config.presets import config_dir

    return config_dir() / "presets"


@lru_cache(maxsize=None)
def presets() -> dict[str, Preset]:
    """Every shipped preset by name (file order: sorted file names), each file checked once."""
    out: dict[str, Preset] = {}
    for path in sorted(preset_dir().glob("*.yaml")):
        p = load_preset(path)
        if p.name in out:
            raise SpecError(f"preset file {path}: preset '{p.name}' is also defined in {out[p.name].source}")
        out[p.name] = p
    return out


def get_preset(name: str) -> Preset:
    """The preset ``name``, or SpecError listing the valid names."""
    ps = presets()
    if name not in ps:
        import difflib

        close = difflib.get_close_matches(name, list(ps), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise SpecError(f"unknown preset '{name}'. Valid names: {', '.join(ps)}.{hint}")
    return ps[name]


def known_preset(field: str, v: Any) -> str | None:
    """The rule of a ``preset`` field where presets are applied: null or the name of a shipped preset."""
    from .config.checks import FieldError, preset

    v = preset(field, v)
    if v is not None:
        try:
            get_preset(v)
        except SpecError as e:
            raise FieldError(field, str(e)) from None
    return v


def preset_fields(name: str) -> dict[str, Any]:
    """The run-spec fields preset ``name`` sets (fresh copies of its mappings)."""
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in get_preset(name).run.items()}


def apply_preset(given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` run-spec fields over the fields of the preset they name (``given['preset']``; none: unchanged),
    the ``MERGED`` mappings merged key by key (the given keys win)."""
    name = given.get("preset")
    if not name:
        return dict(given)
    base = preset_fields(name)
    out = {**base, **given}
    for k in MERGED:
        if k in base and k in given:
            out[k] = {**base[k], **given[k]}
    return out


def expand_method(method: Mapping[str, Any]) -> dict[str, Any]:
    """A grid ``methods`` entry (run-spec fields, optional ``controls`` and ``objectives``) with the fields of the
    preset it names filled in (the entry's win). A preset entry runs on the preset's objective unless it names
    its ``objective`` or lists its ``objectives`` (then the objective comes from that list). Idempotent."""
    if not method.get("preset"):
        return dict(method)
    extra = {k: method[k] for k in GRID_KEYS if k in method}
    fields = {k: v for k, v in method.items() if k not in GRID_KEYS}
    own = "objective" in fields
    out = apply_preset(fields)
    if "objectives" in extra and not own:
        out.pop("objective")
    elif "objectives" not in extra:
        extra["objectives"] = [out["objective"]]
    return {**out, **extra}


def base_fields(method: Mapping[str, Any]) -> dict[str, Any]:
    """The run-spec fields of a method's sequence-level base: the same objective and its settings (objective
    parameters, learning rate, epochs ...) with uniform weights (scorer uniform, mode none)."""
    fields = {k: v for k, v in method.items() if k not in GRID_KEYS}
    return {**{k: v for k, v in apply_preset(fields).items() if k not in WEIGHTING_FIELDS},
            "scorer": "uniform", "mode": "none"}


def paper_presets() -> list[Preset]:
    """The presets the paper rows of the reports use (role ``paper``)."""
    return [p for p in presets().values() if p.paper_row]


# --------------------------------------------------------------------------------------------------- loading
def load_preset(path: str | Path) -> Preset:
    """A checked Preset from one YAML file; any problem is one SpecError naming the file, line and key."""
    from .config.checks import FieldError, RUN_RULES, control
    from .config.yamlfile import read_yaml, where

    data, lines, label = read_yaml(path, "preset file")
    if not isinstance(data, Mapping):
        raise SpecError(f"{where(label, lines)}: expected a mapping with keys {', '.join(KEYS)}")
    bad = [k for k in data if k not in KEYS]
    if bad:
        raise SpecError(f"{where(label, lines, (bad[0],))}: unknown key '{bad[0]}'; valid: {', '.join(KEYS)}")
    miss = [k for k in ("name", "title", "paper", "role", "description", "run") if k not in data]
    if miss:
        raise SpecError(f"{where(label, lines)}: missing key(s) {', '.join(miss)}")

    def text(key: str, v: Any, path_: tuple) -> str:
        if not isinstance(v, str) or not v.strip():
            raise SpecError(f"{where(label, lines, path_)}: '{key}' must be non-empty text, got {v!r}")
        return " ".join(v.split())

    name = text("name", data["name"], ("name",))
    if Path(path).stem != name:
        raise SpecError(f"{where(label, lines, ('name',))}: preset '{name}' must live in {name}.yaml")
    role = data["role"]
    if role not in ROLES:
        raise SpecError(f"{where(label, lines, ('role',))}: role must be one of {', '.join(ROLES)}, got {role!r}")
    run = data["run"]
    if not isinstance(run, Mapping) or not run:
        raise SpecError(f"{where(label, lines, ('run',))}: 'run' must be a mapping of run-spec fields")
    fields_ = {}
    for k, v in run.items():
        if k == "preset" or k not in RUN_RULES:
            raise SpecError(f"{where(label, lines, ('run', k))}: '{k}' is not a run-spec field a preset may set")
        try:
            fields_[k] = RUN_RULES[k](k, v)
        except FieldError as e:
            raise e.at(where(label, lines, ("run", k), field=True)) from None
    if "objective" not in fields_ or "scorer" not in fields_:
        raise SpecError(f"{where(label, lines, ('run',))}: a preset names its objective and its scorer")
    try:
        ctrl = control("control", data.get("control"))
    except FieldError as e:
        raise e.at(where(label, lines, ("control",), field=True)) from None
    scaled = []
    for i, s in enumerate(data.get("scaled") or []):
        if not isinstance(s, Mapping) or set(s) != set(SCALED_KEYS):
            raise SpecError(f"{where(label, lines, ('scaled', i))}: an entry has exactly the keys "
                            f"{', '.join(SCALED_KEYS)}")
        scaled.append(Scaled(*(text(k, str(s[k]), ("scaled", i, k)) for k in SCALED_KEYS)))
    devs = tuple(text("deviations", d, ("deviations", i)) for i, d in enumerate(data.get("deviations") or []))
    return Preset(name, text("title", data["title"], ("title",)), text("paper", data["paper"], ("paper",)), role,
                  ctrl, text("description", data["description"], ("description",)), fields_, tuple(scaled), devs,
                  str(path))


__all__ = ["Preset", "Scaled", "ROLES", "apply_preset", "base_fields", "expand_method", "get_preset", "known_preset",
           "load_preset",
           "paper_presets", "preset_dir", "preset_fields", "presets"]

"""What a method preset (``tueval.presets``) resolves to: its RunSpec, its built settings, and the presets table of
``tueval presets`` and docs/presets.md. Above ``tueval.spec``, which applies presets while it resolves a spec."""
from __future__ import annotations

from typing import Any, Mapping

from .presets import Preset, presets
from .spec import RunSpec, resolve_spec


def preset_spec(preset: Preset, **over: Any) -> RunSpec:
    """The RunSpec of ``preset`` with ``over`` fields given (names checked through the registries)."""
    return resolve_spec(preset=preset.name, **over)


def resolved_fields(preset: Preset) -> dict[str, Any]:
    """Every run-spec field of ``preset``, concrete (objective and global defaults filled in)."""
    return preset_spec(preset).to_dict()


def built_settings(preset: Preset) -> dict[str, dict[str, Any]]:
    """The scorer's, the weighting's and the objective's complete settings of ``preset`` (their constructors'
    defaults included), as the run record holds them."""
    from .objectives import make_objective
    from .scoring import make_scorer
    from .weighting import WeightingSpec

    s = preset_spec(preset)
    w = WeightingSpec(mode=s.mode, ratio=s.ratio, control=s.control, normaliser=s.normaliser)
    obj = make_objective(s.objective, {"normaliser": w.loss_normaliser, **s.objective_params})
    return {"scorer": make_scorer(s.scorer, dict(s.scorer_params)).get_params(), "weighting": w.params(),
            "objective": obj.get_params()}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, Mapping):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items()) or "-"
    return "-" if v is None else str(v)


def preset_rows() -> list[dict[str, str]]:
    """One row per preset with its resolved settings: the listing of ``tueval presets`` and docs/presets.md."""
    rows = []
    for p in presets().values():
        s, b = preset_spec(p), built_settings(p)
        obj = b["objective"]
        retain = obj.get("retain_loss", "none")
        weighting = ({"none": "scores as weights"}.get(s.mode, s.mode) + (f" r={s.ratio:g}" if s.mode == "hard" else "")
                     + f", Z={obj.get('normaliser', b['weighting']['loss_normaliser'])}")
        hyper = {"lr": s.lr, "epochs": s.epochs, "batch": s.batch_size,
                 **{k: v for k, v in obj.items() if k not in ("retain_loss", "alpha", "gamma", "normaliser")}}
        rows.append({
            "preset": p.name, "role": p.role, "paper": p.title, "base": f"{s.objective} (gamma {_fmt(obj.get('gamma'))})",
            "retain term": "none" if retain == "none" or not obj.get("alpha") else
                           f"{retain} (alpha {_fmt(obj.get('alpha'))})",
            "scorer": s.scorer, "scorer settings": _fmt(b["scorer"]), "weighting": weighting,
            "control": p.control or "-", "hyperparameters": _fmt(hyper),
            "scaled": "; ".join(f"{x.setting}: {x.paper} -> {x.here}" for x in p.scaled) or "-"})
    return rows


def presets_markdown() -> str:
    """The presets table of ``docs/presets.md``, generated from the preset files (``tueval presets --markdown``)."""
    import pandas as pd

    from .report import markdown_table

    rows = preset_rows()
    head = ("# Method presets\n\n"
            "Generated from `tueval/configs/presets/*.yaml` by `tueval presets --markdown > docs/presets.md` "
            "(a test checks that this file equals the generated one). Each preset is one paper's method as that "
            "paper runs it: scorer, weighting, objective with its retain term, and the hyperparameters, with the "
            "values changed for the tiny models and why. Run one with `tueval unlearn --preset NAME --seed S`; "
            "the paper rows of the reports use the presets of role `paper`. `oracle` presets use privileged "
            "information (the retain model) and never stand for a paper. Z is the normaliser of the forget term (objectives "
            "that reduce per sequence record their own reduction). Every preset also shortens the papers' 5-10 "
            "epochs to the suite's 3 and runs batch 16.\n\n")
    table = ["preset", "role", "paper", "base", "retain term", "scorer", "scorer settings", "weighting", "control",
             "hyperparameters", "scaled"]
    out = [head + "## Settings\n", markdown_table(pd.DataFrame([{k: r[k] for k in table} for r in rows])),
           "## Each preset\n"]
    for p in presets().values():
        out.append(f"### `{p.name}` ({p.role})\n")
        out.append(f"{p.paper}\n\n{p.description}\n")
        if p.scaled:
            out.append("What was scaled for the tiny models, and why:\n")
            out += [f"- **{x.setting}**: paper {x.paper}, here {x.here}. {x.why[:1].upper() + x.why[1:]}"
                    for x in p.scaled]
            out.append("")
        if p.deviations:
            out.append("Deliberate deviations:\n")
            out += [f"- {d}" for d in p.deviations]
            out.append("")
    return "\n".join(out).rstrip() + "\n"

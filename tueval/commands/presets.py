"""``tueval presets``: the method presets (one per paper and per sequence-level base) with their settings."""
from __future__ import annotations

import argparse
import json

PRESETS_DESC = """List the method presets: each is one paper's method as that paper runs it (scorer, weighting, objective
with its retain term, hyperparameters), with the values changed for the tiny models. Run one with
`tueval unlearn --preset NAME --seed S`. Role `paper`: used by the paper rows of the reports; `base`: a
sequence-level objective; `oracle`: reads privileged information (the retain model), never a paper row."""


def register_presets(sub) -> argparse.ArgumentParser:
    """Add ``tueval presets``."""
    p = sub.add_parser("presets", help="list the method presets and their settings", description=PRESETS_DESC,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", help="show one preset in full (its resolved run spec and built settings)")
    p.add_argument("--json", action="store_true", help="every preset as JSON (resolved spec, built settings)")
    p.add_argument("--markdown", action="store_true", help="the presets table of docs/presets.md")
    p.set_defaults(handler=cmd_presets)
    return p


def _record(p) -> dict:
    from ..preset_runs import built_settings, resolved_fields

    return {"name": p.name, "title": p.title, "paper": p.paper, "role": p.role, "control": p.control,
            "description": p.description, "run": dict(p.run), "resolved": resolved_fields(p), **built_settings(p),
            "scaled": [vars(s) for s in p.scaled], "deviations": list(p.deviations), "file": p.source}


def cmd_presets(args) -> int:
    from ..preset_runs import preset_rows, presets_markdown
    from ..presets import get_preset, presets

    if args.markdown:
        print(presets_markdown(), end="")
        return 0
    chosen = [get_preset(args.name)] if args.name else list(presets().values())
    if args.json:
        print(json.dumps([_record(p) for p in chosen], indent=2, sort_keys=True, default=str))
        return 0
    if args.name:
        print(json.dumps(_record(chosen[0]), indent=2, default=str))
        return 0
    import pandas as pd

    cols = ["preset", "role", "paper", "base", "retain term", "scorer", "weighting", "control", "hyperparameters"]
    with pd.option_context("display.max_colwidth", 60, "display.width", 250):
        print(pd.DataFrame(preset_rows())[cols].to_string(index=False))
    return 0


COMMANDS = {"presets": register_presets}

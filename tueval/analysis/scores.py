"""The scorers under test and their token scores on the forget examples: which scorers a profile tests, their
learned state (one run per seed for stateful scorers: its paper preset, else GA), and a ``ScoreSet`` of scores
per (scorer, seed)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..data.collate import Batch
from ..errors import SpecError
from .forget import ForgetData
from .registry import AnalysisConfig

DEFAULT_SCORERS = ("tokenunlearn", "etw", "etw_static", "atwu_proto", "tif", "satimp", "wga", "random", "oracle",
                   "anti")
QUICK_SCORERS = ("tokenunlearn", "etw", "random", "oracle", "anti")
CONTROL_SCORERS = ("random", "oracle", "anti")
GT_CONTROLS = ("oracle", "anti")  # controls defined per ground truth


def scorer_names(cfg: AnalysisConfig) -> tuple[str, ...]:
    """Scorers under test: ``cfg.scorers`` (the controls random, oracle and anti always added) or the profile's set."""
    if cfg.scorers:
        return tuple(dict.fromkeys([*cfg.scorers, *CONTROL_SCORERS]))
    return QUICK_SCORERS if cfg.profile == "quick" else DEFAULT_SCORERS


def method_names(names: Sequence[str]) -> list[str]:
    """The scorers that are not controls."""
    return [n for n in names if n not in CONTROL_SCORERS and n != "uniform"]


def analysis_seeds(cfg: AnalysisConfig, max_seeds: int | None) -> tuple[int, ...]:
    """``cfg.seeds``, capped to the profile's number of seeds."""
    seeds = tuple(cfg.seeds)
    if not seeds:
        raise SpecError("the analysis needs at least one seed")
    return seeds[:max_seeds] if max_seeds else seeds


def setup(cfg: AnalysisConfig, profiles: dict) -> tuple[Any, tuple[int, ...], list[str]]:
    """The shared start of a score-based analysis: at most 2 torch threads, then (profile, seeds, scorer names)."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    prof = profiles.get(cfg.profile, profiles["default"])
    return prof, analysis_seeds(cfg, prof.max_seeds), list(scorer_names(cfg))


def build_scorer(name: str, gt: str = "spans", state: dict | None = None):
    """A scorer by name; ``oracle``/``anti`` follow the ground truth ``gt``; a learned ``state`` is loaded."""
    from tueval.scoring import make_scorer

    if name == "oracle":
        return make_scorer("oracle", {"gt": gt})
    if name == "anti":
        return make_scorer("anti", {"base": "oracle", "base_params": {"gt": gt}})
    sc = make_scorer(name)
    if state is not None:
        sc.load_state_dict(state)
    return sc


def is_stateful(name: str) -> bool:
    """Whether the scorer learns during unlearning (its scores come from a run's saved state)."""
    from tueval.scoring import make_scorer

    return name not in CONTROL_SCORERS and bool(getattr(make_scorer(name), "stateful", False))


def learned_spec(name: str, seed: int):
    """The run whose saved state gives stateful scorer ``name`` its learned scores: the paper preset that trains
    it (ATWU's: GradDiff alpha 6, gamma 4, the scorer settings measured for the tiny models), the same run as the
    preset's paper row; else one GA run (mode none, the defaults.FIXED settings)."""
    from ..defaults import FIXED
    from ..presets import paper_presets
    from ..spec import RunSpec

    for p in paper_presets():
        if p.run["scorer"] == name:
            return RunSpec(preset=p.name, seed=seed)
    return RunSpec(objective="ga", scorer=name, mode="none", seed=seed, **FIXED)


def learned_states(cfg: AnalysisConfig, names: Sequence[str], seeds: Sequence[int]) -> dict[str, dict[int, dict]]:
    """Learned state of each stateful scorer per seed from its ``learned_spec`` run, run through the engine (cached
    in the workdir), its saved scorer state loaded."""
    from ..store import load_scorer_state
    from ..sweep import require_runs

    out: dict[str, dict[int, dict]] = {}
    stateful = [n for n in names if is_stateful(n)]
    if not stateful:
        return out
    specs = [learned_spec(n, s) for n in stateful for s in seeds]
    results = require_runs(specs, cfg.workdir, cfg.compute, cfg.workers, cfg.progress)
    for spec, res in zip(specs, results):
        out.setdefault(spec.scorer, {})[spec.seed] = load_scorer_state(res.path)
    return out


@dataclass
class ScoreSet:
    """Token scores [N, T] per (scorer, seed) on the forget examples; a deterministic scorer (same scores for
    every seed) is stored once under seed ``None``."""

    scores: dict[tuple[str, int | None], torch.Tensor] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()

    def deterministic(self, name: str) -> bool:
        return (name, None) in self.scores

    def get(self, name: str, seed: int) -> torch.Tensor:
        """Scores of ``name`` under ``seed``."""
        return self.scores[(name, None)] if (name, None) in self.scores else self.scores[(name, seed)]

    def names(self) -> list[str]:
        return list(dict.fromkeys(k[0] for k in self.scores))

    def seed_keys(self, name: str) -> list[int | None]:
        """``[None]`` for a deterministic scorer, else its seeds."""
        return [None] if self.deterministic(name) else list(self.seeds)


def _score(scorer, model, batch: Batch, ctx, seed: int, chunk: int) -> torch.Tensor:
    from tueval.unlearn import static_scores

    torch.manual_seed(seed)
    ctx.generator = torch.Generator().manual_seed(seed)
    s = static_scores(scorer, model, batch, ctx, chunk)
    bad = ~torch.isfinite(s[batch.answer_mask])
    if bad.any():
        raise SpecError(f"scorer '{scorer.name}' returned non-finite scores on {int(bad.sum())} answer tokens")
    return s


_DETERMINISTIC: dict[tuple[str, str], bool] = {}  # (scorer, gt) -> whether two generator seeds agree


def compute_scores(data: ForgetData, names: Sequence[str], seeds: Sequence[int], model=None, gt: str = "spans",
                   states: dict[str, dict[int, dict]] | None = None, ref_model=None, chunk: int = 64) -> ScoreSet:
    """Scores of every scorer on the forget batch with ``model`` (default the target). A scorer is deterministic
    when it is not stateful and two generator seeds give the same scores on the first examples; then it is scored
    once. ``ref_model`` (default ``model``) is the context's reference model; the retain model is always the
    workdir's retain model."""
    from tueval.scoring import ScoringContext

    model = data.target if model is None else model
    ctx = ScoringContext(ref_model=ref_model if ref_model is not None else model, retain_model=data.retain,
                         tokenizer=data.tokenizer)
    out = ScoreSet(seeds=tuple(seeds))
    states = states or {}
    probe = data.batch.select(range(min(8, len(data.batch))))
    for name in names:
        if name in states:
            for s in seeds:
                out.scores[(name, s)] = _score(build_scorer(name, gt, states[name][s]), model, data.batch, ctx, s,
                                               chunk)
            continue
        sc = build_scorer(name, gt)
        if getattr(sc, "stateful", False):
            raise SpecError(f"scorer '{name}' is stateful but no learned state was loaded")
        key = (name, gt)
        if key not in _DETERMINISTIC:
            a, b = (_score(sc, model, probe, ctx, s, chunk) for s in (seeds[0], seeds[0] + 7919))
            _DETERMINISTIC[key] = torch.equal(a[probe.answer_mask], b[probe.answer_mask])
        if _DETERMINISTIC[key]:
            out.scores[(name, None)] = _score(sc, model, data.batch, ctx, seeds[0], chunk)
        else:
            for s in seeds:
                out.scores[(name, s)] = _score(sc, model, data.batch, ctx, s, chunk)
    return out


def with_gt_controls(data: ForgetData, base: ScoreSet, names: Sequence[str], seeds: Sequence[int],
                     extra: ScoreSet | None = None) -> dict[str, ScoreSet]:
    """Per ground truth: ``base``'s scores without the GT-defined controls, those controls (of ``names``) scored
    against that ground truth, then ``extra``'s scores."""
    kept = {k: v for k, v in base.scores.items() if k[0] not in GT_CONTROLS}
    out = {}
    for gt in data.gt_sources:
        ctl = compute_scores(data, [n for n in names if n in GT_CONTROLS], seeds, gt=gt)
        out[gt] = ScoreSet({**kept, **ctl.scores, **(extra.scores if extra else {})}, base.seeds)
    return out

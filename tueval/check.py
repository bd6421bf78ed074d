"""``tueval check``: the confirmatory family for one scorer against the named controls, as a CI gate.

Each family is computed by the same library functions, with the same settings (the analyses' profiles, found
through the registry) and the same unit of analysis as ``tueval analyze``, restricted to the scorer and the
controls it is compared with, so the two cannot disagree:
- alignment: AP lift (AP minus its exact chance level) vs a random scorer under both ground truths; the example
  is the unit (crossed bootstrap CI, sign-flip test over examples);
- intervention: ABPC (LeRF minus MoRF deletion curves of the knowledge margin) vs a random scorer under every
  replacement operator; the example is the unit;
- snr: log directional gradient SNR of the scorer's hard top-k selection vs ``random_k`` and of its soft weights
  vs its permuted weights; the seed is the unit;
- tradeoff: utility at matched forgetting (else the controls analysis' primary metrics) of unlearning runs vs
  each named control; the seed is the unit.
The profiles' seed caps are lifted: every family uses the ``--seeds`` asked for. The claim checked is "the scorer
beats every control on every metric", an intersection-union test: it passes only when every comparison is better
at alpha on its own (one-sided p < alpha and the CIs exclude 0), and needs no multiplicity correction. The
per-comparison labels printed are Holm-adjusted over all comparisons (one family). Exit code 0 only when the
intersection-union test passes; 1 when the scorer does not beat every control; 2 on bad input.
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from .errors import TuevalError

FAMILIES = ("alignment", "intervention", "snr", "tradeoff")


class _Forget:
    """The forget data of each example cap, loaded once."""

    def __init__(self, wd):
        self.wd, self._data = wd, {}

    def __call__(self, max_examples: int | None):
        from .analysis.forget import load_forget

        if max_examples not in self._data:
            self._data[max_examples] = load_forget(self.wd, max_examples)
        return self._data[max_examples]


def _validate(scorer: str, data) -> None:
    """A clear error for a scorer that raises or returns bad scores, before any family runs."""
    import torch

    from .scoring import ScoringContext, check_scorer, make_scorer

    ctx = ScoringContext(ref_model=data.target, retain_model=data.retain, tokenizer=data.tokenizer,
                         generator=torch.Generator().manual_seed(0))
    check_scorer(make_scorer(scorer), data.target, data.batch.select(range(min(8, len(data.batch)))), context=ctx)


def _profile(name: str, cfg):
    """The profile analysis ``name`` uses under ``cfg.profile``, without its seed cap."""
    from .analysis import get_analysis

    return replace(get_analysis(name).profile(cfg.profile), max_seeds=None)


def score_comparisons(cfg, scorer: str, families: Sequence[str], ratio: float | None = None, forget=None) -> list:
    """The uncorrected comparisons of the score-based ``families`` for ONE scorer under ``cfg`` (an
    AnalysisConfig): the members the analyses' own families hold for that scorer."""
    from .analysis import alignment_tables, intervention_tables, snr_tables
    from .analysis.scores import compute_scores, learned_states, with_gt_controls

    forget = forget or _Forget(cfg.workdir)
    seeds, names, out = tuple(cfg.seeds), [scorer, "random"], []
    states = learned_states(cfg, [scorer], seeds)
    if "alignment" in families:
        prof = _profile("alignment", cfg)
        data = forget(prof.max_examples)
        rows = alignment_tables.all_gt_rows(
            with_gt_controls(data, compute_scores(data, names, seeds, states=states), names, seeds), data)
        out += alignment_tables.ap_lift_vs_random(rows, names, prof.n_boot, cfg.alpha)
    if "intervention" in families:
        prof = _profile("intervention", cfg)
        data = forget(prof.max_examples)
        scores = compute_scores(data, names, seeds, states=states)
        _, summ = intervention_tables.intervention_tables(data.target, data, scores, seeds, prof)
        ops = intervention_tables.perturbation_spec(prof).operators
        out += intervention_tables.abpc_vs_random(summ, names, ops, prof.n_boot, cfg.alpha)
    if "snr" in families:
        prof = _profile("snr", cfg)
        if ratio is not None and f"{ratio:g}" != f"{prof.primary_k:g}":
            prof = replace(prof, primary_k=ratio, ks=tuple(sorted({*prof.ks, ratio})))
        data = forget(prof.max_examples)
        scores = compute_scores(data, [scorer], seeds, states=states)
        raw, _ = snr_tables.reference_table(data, prof, seeds, [scorer], scores)
        items = snr_tables.snr_comparisons(snr_tables.tidy(raw, seeds, [scorer]), [scorer], prof.ks, cfg.alpha)
        out += [c for c in items if c.metric.rsplit("=", 1)[-1] in snr_tables.confirmatory_labels(prof)]
    return out


def tradeoff_comparisons(cfg, scorer: str, mode: str, ratio: float | None, controls: Sequence[str],
                         objective: str) -> list:
    """The uncorrected seed-paired comparisons of ONE method against ``controls``: utility at matched forgetting
    (both estimands) when the runs write trajectories (``eval_every`` in the fixed settings, as in the shipped
    defaults), else the controls analysis' primary metrics at one learning rate."""
    from . import defaults
    from .analysis import get_analysis
    from .analysis.families import method_comparisons
    from .analysis.controls_grid import matched_result, refine_setting
    from .analysis.matched_tables import matched_comparisons
    from .analysis.runs import method_runs

    runs = method_runs(cfg, scorer, mode, ratio, controls, objective)
    m = matched_result(runs, cfg, dict((cfg.extra or {}).get("fixed", defaults.SHARED)), "method",
                       refine_setting(cfg))
    if m is not None:
        return matched_comparisons(m.diffs, alpha=cfg.alpha)
    return method_comparisons(runs, get_analysis("controls").primary, alpha=cfg.alpha)


def check_outcome(comparisons: Sequence, alpha: float) -> tuple[list, bool]:
    """The Holm-labelled verdicts of all ``comparisons`` (one family) and whether the scorer beats every control:
    the intersection-union test on the per-comparison decisions at ``alpha``."""
    from .stats import beats_all, verdict_table

    verdicts = verdict_table(comparisons, alpha=alpha, correction="holm")
    return verdicts, beats_all(verdicts)


def run_check(args) -> int:
    """Entry point of ``tueval check`` (see module docstring)."""
    from .analysis import AnalysisConfig
    from .stats import verdicts_to_frame
    from .workdir import Workdir

    families = [f.strip() for f in args.families.split(",") if f.strip()]
    bad = sorted(set(families) - set(FAMILIES))
    if bad:
        print(f"tueval check: error: unknown families {', '.join(bad)}; valid: {', '.join(FAMILIES)}",
              file=sys.stderr)
        return 2
    controls = [c.strip() for c in args.against.split(",") if c.strip()]
    seeds = tuple(range(args.seeds))
    ratio = args.ratio if args.mode == "hard" else None
    try:
        wd = Workdir(args.workdir)
        cfg = AnalysisConfig(workdir=wd, reports=Path(args.reports or "reports"), seeds=seeds, compute=True,
                             scorers=(args.scorer,), alpha=args.alpha, profile=args.profile, workers=args.workers,
                             progress=not (args.quiet or args.json))
        forget = _Forget(wd)
        _validate(args.scorer, forget(None))
        comparisons = score_comparisons(cfg, args.scorer, families, ratio, forget)
        if "tradeoff" in families:
            comparisons += tradeoff_comparisons(cfg, args.scorer, args.mode, ratio, controls, args.objective)
    except TuevalError as e:
        print(f"tueval check: error: scorer '{args.scorer}': {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a user's scorer may raise anything; report it, don't crash
        print(f"tueval check: error: scorer '{args.scorer}' failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    verdicts, ok = check_outcome(comparisons, args.alpha)
    df = verdicts_to_frame(verdicts)
    if args.json:
        print(json.dumps({"scorer": args.scorer, "passed": ok, "alpha": args.alpha, "n_seeds": len(seeds),
                          "verdicts": [v.to_dict() for v in verdicts]}, indent=2, default=str))
    else:
        cols = [c for c in ("metric", "control", "estimate", "ci_low", "ci_high", "p_value", "better_unadjusted",
                            "p_adjusted", "decision") if c in df.columns]
        print(df[cols].to_string(index=False))
        n_ok = sum(bool(v.better_unadjusted) for v in verdicts)
        print(f"\n{args.scorer}: {'PASS - beats every control' if ok else 'FAIL - does not beat every control'}"
              f" (intersection-union: {n_ok} of {len(verdicts)} comparisons better at alpha {args.alpha}, each "
              f"unadjusted; labels Holm-adjusted; {len(seeds)} seeds)")
    if args.reports:
        from .io import write_csv

        write_csv(Path(args.reports) / "check" / "verdicts.csv", df)
    return 0 if ok else 1

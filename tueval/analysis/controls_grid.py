"""The trade-off grid of the controls analysis and its confirmatory metrics, as library code that every analysis
running that grid shares (controls on one workdir, replication on every model pair): the grid of a profile
(``grid_settings``), its runs (``grid_runs``) and the matched-forgetting comparison of them (``matched_result``)."""
from __future__ import annotations

from .. import defaults
from .registry import AnalysisConfig

LMEVAL_TASKS = ("tueval_forget_mc", "tueval_retain_mc", "tueval_utility_mc")
#: the confirmatory trade-off metrics (Holm family) and the exploratory ones (BH over the whole screen, reported
#: only); forget probability and the MIA AUC enter as distances to the retain model
PRIMARY = ("log10_fq", "model_utility")
SECONDARY = ("forget_prob_gap", "mia_min_k_gap", "privleak_abs")
#: the default family: per objective and method, both primary metrics against every control (the claim a report
#: makes about one method: 2 x 2 = 4 comparisons in the demo grid, which need 7 seeds under Holm)
DEFAULT_FAMILY = "method"
#: the exploratory screen is one BH family over every method, control and secondary metric
SCREEN_FAMILY = "overall"
#: the quick profile: TokenUnlearn hard (GA) and ETW (GradDiff) of the grid profile, on their own objectives
QUICK_METHODS = [m for m in defaults.GRID_METHODS
                 if (m.get("preset"), m.get("objective")) in (("tokenunlearn_hard", "ga"), ("etw", "graddiff"))]
QUICK_OBJECTIVES = list(dict.fromkeys(m["objective"] for m in QUICK_METHODS))
SWEEP_RATIOS = (0.1, 0.3, 0.5)
SWEEP_LRS = (5e-4, 1e-3, 2e-3)


def grid_settings(cfg: AnalysisConfig) -> dict:
    """The grid of a profile (``cfg.extra`` overrides any key): objectives, methods, controls, fixed settings,
    Holm family, sweep ratios and learning rates, the uniform base's learning-rate factors, lm-eval tasks."""
    from ..spec import RunSpec
    from .grid import BASE

    quick, full, ex = cfg.profile == "quick", cfg.profile == "full", cfg.extra or {}
    methods = [dict(m) for m in ex.get("methods", QUICK_METHODS if quick else defaults.FULL_METHODS if full else
                                       defaults.GRID_METHODS if cfg.profile == "grid" else defaults.DEMO_METHODS)]
    if cfg.scorers:
        keep = [m for m in methods if m["scorer"] in cfg.scorers]
        known = {m["scorer"] for m in keep}
        methods = keep + [{"scorer": s, "mode": "hard", "ratio": 0.3} for s in cfg.scorers if s not in known]
    controls = list(ex.get("controls", (["random_k", "step_matched"] if quick else
                                        defaults.FULL_CONTROLS if full else defaults.CONTROLS)))
    if ex.get("uniform", True) and BASE not in controls:
        controls.append(BASE)
    lmeval = ex.get("lmeval_tasks", ())
    lmeval = LMEVAL_TASKS if lmeval is True else RunSpec(lmeval_tasks=lmeval or ()).lmeval_tasks
    objectives = (QUICK_OBJECTIVES if quick else defaults.FULL_OBJECTIVES if full else
                  defaults.GRID_OBJECTIVES if cfg.profile == "grid" else defaults.OBJECTIVES)
    return {"lmeval_tasks": lmeval, "objectives": list(ex.get("objectives", objectives)),
            "methods": methods, "controls": controls, "fixed": dict(ex.get("fixed", defaults.SHARED)),
            "family": ex.get("family", DEFAULT_FAMILY),
            "ratios": list(ex.get("ratios", SWEEP_RATIOS if full else ())),
            "lrs": list(ex.get("lrs", SWEEP_LRS if full else ())),
            "base_lr_factors": list(ex.get("base_lr_factors", defaults.BASE_LR_FACTORS.get(cfg.profile, ()))),
            "control_lr_factors": list(ex.get("control_lr_factors",
                                              defaults.CONTROL_LR_FACTORS.get(cfg.profile, ()))),
            "refine": refine_setting(cfg), "bracket_rounds": bracket_setting(cfg)}


def refine_setting(cfg: AnalysisConfig) -> bool:
    """Whether the matched comparison runs refinement runs: the config's ``refine``, else the profile's."""
    return bool((cfg.extra or {}).get("refine", defaults.REFINE.get(cfg.profile, False)))


def bracket_setting(cfg: AnalysisConfig) -> int:
    """How many bracketing rounds the matched comparison runs: the config's ``bracket_rounds``, else the profile's."""
    return int((cfg.extra or {}).get("bracket_rounds", defaults.BRACKET_ROUNDS.get(cfg.profile, 0)))


def grid_cells_of(st: dict, seeds) -> list:
    """The cells of the grid ``st`` (``grid_settings``) over ``seeds``."""
    from .grid import grid_cells

    fixed = {**st["fixed"], "lmeval_tasks": st["lmeval_tasks"]} if st["lmeval_tasks"] else st["fixed"]
    return grid_cells(st["objectives"], st["methods"], st["controls"], seeds, fixed, st["ratios"], st["lrs"],
                      st.get("base_lr_factors", ()), st.get("control_lr_factors", ()))


def grid_runs(cfg: AnalysisConfig, st: dict):
    """The tidy runs table of the grid ``st`` on ``cfg.workdir`` (computed or read from its run cache)."""
    from .runs import gather

    return gather(cfg, grid_cells_of(st, cfg.seeds))


def matched_result(runs, cfg: AnalysisConfig, fixed: dict, family: str = DEFAULT_FAMILY, refine: bool = False,
                   bracket_rounds: int | None = None):
    """The matched-forgetting comparison of ``runs`` (None when the grid's runs write no trajectories): after
    ``bracket_rounds`` rounds of bracketing runs (``tueval.analysis.bracketing``; None: the config's or profile's
    ``bracket_setting``; their table is ``bracketing``) and, with ``refine``, one round of refinement runs
    (``tueval.analysis.refine``; their table is ``refinements``)."""
    from dataclasses import replace

    from .bracketing import bracket_trajectories
    from .matched_tables import frontier_runs, hypervolumes, load_trajectories, matched_comparison
    from .refine import refine_trajectories
    from .runs import retain_reference

    if not fixed.get("eval_every"):
        return None
    fp = (retain_reference(cfg.workdir) or {}).get("forget_prob")  # missing: the fp estimand refuses
    grid = load_trajectories(frontier_runs(runs), cfg.workdir)
    rounds = bracket_setting(cfg) if bracket_rounds is None else int(bracket_rounds)
    traj, bracketing = grid, None
    if rounds:
        traj, bracketing = bracket_trajectories(grid, cfg.workdir, fp, rounds, compute=cfg.compute,
                                                workers=cfg.workers, progress=cfg.progress)
    done = None
    if refine:
        traj, done = refine_trajectories(traj, cfg.workdir, fp, compute=cfg.compute, workers=cfg.workers,
                                         progress=cfg.progress)
    # the areas from the grid's own runs and checkpoints: bracketing and refinement add to the controls' curves only
    return replace(matched_comparison(traj, fp, alpha=cfg.alpha, family=family), hypervolumes=hypervolumes(grid, fp),
                   refinements=done, bracketing=bracketing)

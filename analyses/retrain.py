"""The retraining form of the intervention test (ROAR-style): unlearn ONLY the scorer's top-q tokens, a random q,
or the bottom-q tokens, and compare what is forgotten, paired by seed.

If a scorer finds the tokens that carry the forget knowledge, unlearning its top-q fraction (hard selection,
control None) should forget more than unlearning a random q (``random_k``: the same count per sequence at random
positions) and more than the bottom q (``bottom_k``: the same count from the least-scored tokens).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from analyses.controls import (METRICS, Cell, _command, _family_note, _verdict_objs, arm_summary, gather,
                               long_table, paired_diffs, paired_verdicts, shared_legend)
from tueval import defaults
from tueval.analysis import AnalysisConfig, register_analysis
from tueval.report import ReportWriter, fmt, markdown_table, verdict_markdown
from tueval.stats import Verdict
from tueval.spec import RunSpec

NAME = "retrain"
DEFAULT_SCORERS = ("tokenunlearn", "etw", "oracle")
RATIOS = (0.1, 0.3, 0.5)
QUICK_RATIOS = (0.3,)
TOP = "top"
#: arm name -> weighting control of the run
ARMS = {TOP: None, "random_k": "random_k", "bottom_k": "bottom_k"}
#: confirmatory: does top-q forget more? (forget probability, lower better; log10 forget quality, higher better)
PRIMARY = ("forget_prob", "log10_fq")
SECONDARY = ("model_utility", "forget_truth_ratio", "mia_min_k_gap")
ARM_LABELS = {TOP: "top-q (scorer)", "random_k": "random q", "bottom_k": "bottom-q (scorer)"}


def retrain_cells(scorers: Sequence[str], ratios: Sequence[float], seeds: Sequence[int], objective: str = "ga",
                  arms: Sequence[str] = tuple(ARMS), fixed: dict | None = None,
                  scorer_params: dict | None = None) -> list[Cell]:
    """Every run: for each scorer and q, the top-q, random-q and bottom-q arms (hard selection) over seeds."""
    fixed = dict(defaults.FIXED if fixed is None else fixed)
    cells = []
    for sc in scorers:
        for q in ratios:
            for arm in arms:
                for s in seeds:
                    d = {**fixed, "objective": objective, "scorer": sc, "mode": "hard", "ratio": float(q),
                         "control": ARMS[arm], "seed": s,
                         **({"scorer_params": dict(scorer_params[sc])} if scorer_params and sc in scorer_params
                            else {})}
                    spec = RunSpec.from_dict(d)
                    method = RunSpec.from_dict({**d, "control": None}).label()
                    cells.append(Cell(objective, method, arm, s, spec, setting=f"q={q:g}"))
    return cells


def _annotate(runs: pd.DataFrame) -> pd.DataFrame:
    """Add scorer and q columns (from the method label and ratio)."""
    r = runs.copy()
    r["scorer"] = r["method"].str.split("/", n=1).str[1].str.rsplit("-hard", n=1).str[0]
    r["q"] = r["ratio"].astype(float)
    return r


def curves_figure(runs: pd.DataFrame, metrics: Sequence[str] = ("forget_prob", "log10_fq", "model_utility")):
    """Rows = scorers, columns = metrics: each arm's mean vs q with a 95% CI band and every seed faint."""
    from tueval import plots

    r = _annotate(runs)
    scorers = list(dict.fromkeys(r["scorer"]))
    fig, axes = plots.facet_axes(len(metrics) * len(scorers), ncols=len(metrics), width=3.4, height=2.9)
    col = {ARM_LABELS[a]: plots.FIXED_COLOURS[a] for a in ARMS}
    r["arm_label"] = r["arm"].map(ARM_LABELS)
    qs = sorted(r["q"].unique())
    dodge = 0.012 if len(qs) == 1 else 0.15 * min(np.diff(qs)) / 3
    for j, metric in enumerate(metrics):
        summ = plots.group_ci(r.dropna(subset=[metric]), ["scorer", "arm_label", "q"], metric)
        for i, sc in enumerate(scorers):
            ax = axes[i * len(metrics) + j]
            plots.curve_plot(summ[summ["scorer"] == sc], "q", "mean", "arm_label", points=r[r["scorer"] == sc]
                             .rename(columns={metric: "mean"}), xlabel="fraction of answer tokens unlearned, q",
                             ylabel=METRICS[metric].label, title=f"scorer {sc}", colours=col, ax=ax, legend=False,
                             dodge=dodge)
            if len(qs) == 1:
                ax.set_xlim(qs[0] - 0.1, qs[0] + 0.1)
            else:
                ax.set_xticks(qs)
    shared_legend(fig, axes)
    fig.suptitle("Unlearning only the top-q, a random q or the bottom-q tokens (mean ± 95% CI over seeds)",
                 fontsize=10)
    return fig


def analyse(runs: pd.DataFrame, out: Path, alpha: float = 0.05, family: str | tuple = ("objective", "method", "metric"),
            settings: dict | None = None, command: str | None = None) -> dict:
    """Verdicts and the report folder of the retraining analysis from a tidy runs table."""
    controls = [a for a in ARMS if a != TOP]
    verdicts, vframe = paired_verdicts(runs, PRIMARY, alpha=alpha, family=family, method_arm=TOP, controls=controls)
    _, sframe = paired_verdicts(runs, SECONDARY, alpha=alpha, family=family, method_arm=TOP, controls=controls,
                                correction="fdr_bh")
    if not vframe.empty:
        vframe["family_definition"] = ("{random q, bottom-q} per objective, scorer, q and metric" if "metric" in family
                                       else "scorers x q x {random q, bottom-q} x metrics per objective")
    diffs = paired_diffs(runs, [*PRIMARY, *SECONDARY], method_arm=TOP)
    root = Path(out)
    rw = ReportWriter(root, "Retraining test: unlearn only the top-q vs a random q vs the bottom-q tokens")
    seeds = sorted(runs["seed"].unique().tolist())
    rw.text("## What was tested\n"
            "ROAR-style intervention by retraining: for each scorer and fraction q, three unlearning runs per seed "
            "with hard selection of q of each answer's tokens: the scorer's **top-q** tokens, a **random q** (same "
            "count per sequence, uniform positions: control `random_k`) and the scorer's **bottom-q** (control "
            "`bottom_k`). If the scorer finds the tokens that carry the forget knowledge, top-q should forget "
            "more (lower forget probability, higher forget quality) than random-q and bottom-q.\n")
    rw.text("## Settings\n" + "".join(f"- {k}: {v}\n" for k, v in (settings or {}).items())
            + f"- seeds: {seeds} (n={len(seeds)}); runs: {runs['run_id'].nunique()}\n")
    rw.text("## Statistics\n"
            "Paired by seed: mean difference top − control, two-sided 95% t-CI, one-sided exact sign-flip test in "
            "the better direction (forget probability: lower is better; log10 forget quality: higher is better). "
            "Confirmatory families (Holm): for each objective, scorer, q and primary metric (forget probability, "
            "log10 forget quality), top-q against {random q, bottom-q}. Utility, truth ratio and |MIA AUC − 0.5| are exploratory (BH).\n\n"
            + (_family_note(vframe, alpha) if not vframe.empty else ""))
    rw.text("## Verdicts (confirmatory)\n" + verdict_markdown(_verdict_objs(vframe)) if not vframe.empty else
            "## Verdicts\n_(no comparisons)_\n")
    lines = []
    for r in vframe.itertuples():
        word = {"better": "YES", "worse": "no (worse)"}.get(r.decision, "no")
        lines.append(f"- {r.method} top-q beats `{r.control}` on {r.metric}? {word} (Δ={fmt(r.estimate)} "
                     f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}], p_adj={fmt(r.p_adjusted)}, n={r.n_seeds})")
    rw.text("## In plain words\n" + "\n".join(lines) + "\n")
    summ = arm_summary(_annotate(runs), [*PRIMARY, *SECONDARY], ("objective", "scorer", "q", "arm"))
    shown = summ.assign(value=[f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]" for m, lo, hi in
                               zip(summ["mean"], summ["ci_low"], summ["ci_high"])])
    shown = shown.pivot_table(index=["objective", "scorer", "q", "arm"], columns="metric", values="value",
                              aggfunc="first", sort=False).reset_index()
    rw.text("## Per-arm means with 95% CI over seeds\n" + markdown_table(shown))
    if not sframe.empty:
        rw.text("## Exploratory metrics (BH-adjusted)\n" + verdict_markdown(_verdict_objs(sframe)))
    rw.table("runs_long", long_table(runs))
    rw.table("arm_summary", summ)
    rw.table("paired_diffs", diffs)
    rw.table("verdicts", vframe)
    if not sframe.empty:
        rw.table("exploratory_secondary", sframe)
    rw.text("## Figures\n")
    rw.figure("retrain_curves", curves_figure(runs),
              "Forget probability, log10 forget quality and model utility vs q for each arm (mean ± 95% t-CI over "
              "seeds, faint points = single seeds). Numbers: arm_summary.csv.")
    report = rw.write(command)
    return {"verdicts": [v.to_dict() for v in verdicts], "secondary": sframe.to_dict("records"),
            "n_seeds": len(seeds), "n_runs": int(runs["run_id"].nunique()), "report": str(report),
            "files": [str(root / f) for f in sorted(set(rw.files))]}


@register_analysis(NAME)
def run(cfg: AnalysisConfig) -> dict:
    """Retraining analysis: runs (or reads) top/random/bottom-q runs, writes reports/retrain/, returns verdicts."""
    ex = cfg.extra or {}
    scorers = list(cfg.scorers or ex.get("scorers", DEFAULT_SCORERS))
    ratios = [float(q) for q in ex.get("ratios", QUICK_RATIOS if cfg.profile == "quick" else RATIOS)]
    objective = ex.get("objective", "ga")
    fixed = dict(ex.get("fixed", defaults.FIXED))
    cells = retrain_cells(scorers, ratios, cfg.seeds, objective, fixed=fixed)
    runs = gather(cfg, cells)
    return analyse(runs, Path(cfg.reports) / NAME, alpha=cfg.alpha,
                   settings={"workdir": str(cfg.workdir.root), "profile": cfg.profile, "objective": objective,
                             "scorers": scorers, "q": ratios, "fixed optimiser settings": fixed},
                   command=_command(cfg, NAME))


def retrain_verdicts(cfg: AnalysisConfig, scorer: str, ratios: Sequence[float] = (0.3,), objective: str = "ga",
                     controls: Sequence[str] = ("random_k", "bottom_k"), report: bool = False) -> list[Verdict]:
    """Verdicts of ONE scorer's top-q vs ``controls`` at each q on forget probability and log10 forget quality, Holm
    over q x controls x metrics; runs (or reads) what it needs. Controls other than random_k and bottom_k (e.g.
    uniform, magnitude_matched) have no retraining form and are skipped; if none is left, both are used."""
    usable = [c for c in controls if c in ARMS and c != TOP] or [a for a in ARMS if a != TOP]
    arms = [TOP, *usable]
    cells = retrain_cells([scorer], ratios, cfg.seeds, objective, arms=arms,
                          fixed=dict((cfg.extra or {}).get("fixed", defaults.FIXED)))
    runs = gather(cfg, cells)
    if report:
        res = analyse(runs, Path(cfg.reports) / f"check_{NAME}", alpha=cfg.alpha,
                      settings={"scorer": scorer, "q": list(ratios), "objective": objective})
        return _verdict_objs(pd.DataFrame(res["verdicts"]))
    verdicts, _ = paired_verdicts(runs, PRIMARY, alpha=cfg.alpha, family=("objective",), method_arm=TOP,
                                  controls=arms[1:])
    return verdicts

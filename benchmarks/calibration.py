"""Calibrate the verdict rule by simulation on nulls shaped like the real data: false-positive rate at no effect,
power at planted effects, per comparison (every null shape of ``tueval.stats.calibration.NULLS``) and for the
intersection-union ``beats_all`` over several controls (correlated normal arms).

Usage: python benchmarks/calibration.py [--sims 2000] [--power-sims 400] [--confirm-sims 20000] [--jobs 1]
       [--seeds 7,10,14,20] [--effects 0.5,1,1.5] [--controls 2,3,4]
       [--pool reports/controls/paired_diffs.csv reports/controls/matched_diffs.csv]
       [--out benchmarks]
Writes <out>/calibration.csv (one row per grid cell) and <out>/calibration.md (tables, command and wall time).
"""
from __future__ import annotations

import os
import time

T_START = time.perf_counter()  # the reported wall time covers imports, the grid and the tables
LOAD_AT_START = os.getloadavg()[0]  # other jobs on the cores lengthen the wall time

import argparse  # noqa: E402
import itertools  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.stats  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tueval.io import write_csv, write_text  # noqa: E402
from tueval.stats.calibration import NULLS, null_diffs, simulate_fpr, simulate_null  # noqa: E402
from tueval.stats.paired import SMALL_N, SMALL_N_TAIL, robust_level  # noqa: E402
from tueval.stats.power import min_seeds_for_exact, power_paired  # noqa: E402

SEEDS = (7, 10, 14, 20)
EFFECTS = (0.5, 1.0, 1.5)
CONTROLS = (2, 3, 4)
ALPHA, CORRELATION = 0.05, 0.5
#: the committed per-seed tables of method vs control values (at one learning rate, and the confirmatory utility
#: at matched forgetting), and the metrics whose differences form the pools
POOL_FILES = (ROOT / "reports" / "controls" / "paired_diffs.csv", ROOT / "reports" / "controls" / "matched_diffs.csv")
POOL_FILE = POOL_FILES[0]
POOL_METRICS = {"model_utility": "utility", "log10_fq": "log10 FQ",
                "utility_at_matched_fq": "utility at matched FQ", "utility_at_matched_fp": "utility at matched FP"}
POOL_KEYS = ("objective", "method", "control", "metric")
#: a cell is flagged when its FPR exceeds alpha by more than this many Monte-Carlo SEs
FLAG_SE = 2.0


def empirical_pools(*paths: Path) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Centred, standardised per-seed differences per comparison (objective, method, control, metric) of the
    committed runs, pooled per metric of POOL_METRICS present in ``paths``; and one row per comparison (n, sd,
    used). Of a matched table only the bracketed seeds (``status`` ok) enter: a worst-rank value is a rule's
    fill, not a measured difference."""
    frames = []
    for path in paths:
        d = pd.read_csv(path)
        missing = {*POOL_KEYS, "seed", "diff"} - set(d.columns)
        if missing:
            raise SystemExit(f"{path}: missing columns {', '.join(sorted(missing))}")
        frames.append(d[d["status"] == "ok"] if "status" in d else d)
    d = pd.concat(frames, ignore_index=True)
    d = d[d["metric"].isin(list(POOL_METRICS))]
    g = d.groupby(list(POOL_KEYS), sort=False)["diff"]
    sd = g.transform(lambda s: s.std(ddof=1))
    d = d.assign(z=(d["diff"] - g.transform("mean")) / sd, sd=sd)
    info = g.agg(n="size", sd=lambda s: s.std(ddof=1)).reset_index()
    info["used"] = np.isfinite(info["sd"]) & (info["sd"] > 0)  # a constant comparison has no shape to resample
    d = d[np.isfinite(d["z"])]
    return {m: d.loc[d["metric"] == m, "z"].to_numpy(float) for m in POOL_METRICS if (d["metric"] == m).any()}, info


def with_mirrors(pools: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each pool and its mirror image (``-metric``: the same comparisons with method and control swapped, so the
    skew points the other way relative to the tested side)."""
    return {**pools, **{f"-{m}": -z for m, z in pools.items()}}


def pool_label(key: str) -> str:
    """The table label of a pool key of ``with_mirrors``."""
    return POOL_METRICS[key.lstrip("-")] + (", mirrored" if key.startswith("-") else "")


def null_names(pools: dict[str, np.ndarray]) -> list[tuple[str, str, str | None]]:
    """(row label, NULLS key, pool key) for every null of the table; the empirical null once per pool and once per
    mirrored pool."""
    out = []
    for key in NULLS:
        if key == "empirical":
            out += [(f"empirical ({pool_label(m)})", key, m) for m in with_mirrors(pools)]
        else:
            out.append((key, key, None))
    return out


def run_cell(cell: dict) -> dict:
    """One grid cell: per-comparison rate under a null shape (``simulate_null``), or beats_all over k correlated
    normal controls (``simulate_fpr``)."""
    t0 = time.perf_counter()
    if cell["decision"] == "per comparison":
        r = simulate_null(cell["key"], cell["sims"], cell["n_seeds"], cell["effect"], ALPHA, cell["seed"],
                          pool=cell.get("pool"))
        r = {"rate": r["rate"], "mc_se": r["mc_se"]}
    else:
        s = simulate_fpr(cell["sims"], cell["n_seeds"], cell["n_controls"], cell["effect"], alpha=ALPHA,
                         correlation=CORRELATION, seed=cell["seed"])
        r = {k: s[k] for k in ("rate", "mc_se", "per_comparison_rate", "per_comparison_mc_se", "holm_any_rate",
                               "holm_any_mc_se")}
    out = {k: cell[k] for k in ("decision", "null", "n_controls", "n_seeds", "effect", "sims", "seed")}
    out.update(r)
    out["n_sims"] = out.pop("sims")
    out["sim_seed"] = out.pop("seed")
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def grid(pools: dict[str, np.ndarray], seeds, effects, controls, sims: int, power_sims: int) -> list[dict]:
    """Every cell: per comparison for each null x seeds x effect, beats_all for each k x seeds x effect."""
    cells = []
    for (i, (label, key, pm)), n, (j, e) in itertools.product(enumerate(null_names(pools)), seeds,
                                                              enumerate((0.0, *effects))):
        cells.append({"decision": "per comparison", "null": label, "key": key, "pool": with_mirrors(pools).get(pm),
                      "n_controls": 1, "n_seeds": n, "effect": e, "sims": sims if e == 0 else power_sims,
                      "seed": 1_000_000 * (i + 1) + 1_000 * n + j})
    for k, n, (j, e) in itertools.product(controls, seeds, enumerate((0.0, *effects))):
        cells.append({"decision": "beats_all", "null": f"normal arms, rho {CORRELATION:g}", "key": None,
                      "n_controls": k, "n_seeds": n, "effect": e, "sims": sims if e == 0 else power_sims,
                      "seed": 50_000_000 + 100_000 * k + 1_000 * n + j})
    return cells


CELL_KEY = ("decision", "null", "n_controls", "n_seeds", "effect")


def confirmation_cells(df: pd.DataFrame, cells: list[dict], total: int, block: int) -> list[dict]:
    """Fresh simulations (new seeds, blocks of ``block``, ``total`` in all) of every null cell whose FPR in the
    grid lies above alpha: whether a point estimate above alpha is MC noise or a real excess."""
    by_key = {tuple(c[k] for k in CELL_KEY): c for c in cells}
    high = df[(df["effect"] == 0) & (df["rate"] > ALPHA)]
    out = []
    for r in high.itertuples():
        c = by_key[tuple(getattr(r, k) for k in CELL_KEY)]
        for b in range(max(1, -(-total // block))):
            out.append({**c, "sims": block, "seed": 900_000_000 + 100 * c["seed"] + b})
    return out


def confirmation(rows: list[dict]) -> pd.DataFrame:
    """The confirmation rows pooled per cell: rate over all blocks with its MC SE and the flag."""
    if not rows:
        return pd.DataFrame(columns=[*CELL_KEY, "rate", "mc_se", "n_sims", "flag"])
    d = pd.DataFrame(rows)
    d["hits"] = d["rate"] * d["n_sims"]
    g = d.groupby(list(CELL_KEY), sort=False).agg(hits=("hits", "sum"), n_sims=("n_sims", "sum"),
                                                   seconds=("seconds", "sum")).reset_index()
    g["rate"] = g["hits"] / g["n_sims"]
    g["mc_se"] = np.sqrt(g["rate"] * (1 - g["rate"]) / g["n_sims"])
    g["flag"] = g["rate"] > ALPHA + FLAG_SE * g["mc_se"]
    return g.drop(columns="hits")


def _cost(c: dict) -> float:
    """Rough relative cost (the bootstrap-t runs where p < alpha, often under power), for load balancing."""
    return c["sims"] * c["n_seeds"] * c["n_controls"] * (1 + 10 * (c["effect"] > 0))


def flags(df: pd.DataFrame) -> pd.Series:
    """True where the FPR (effect 0) exceeds alpha + FLAG_SE Monte-Carlo SE."""
    return (df["effect"] == 0) & (df["rate"] > ALPHA + FLAG_SE * df["mc_se"])


def _fmt(rate: float, se: float, flag: bool = False) -> str:
    return f"{rate:.3f} ± {se:.3f}" + (" **!**" if flag else "")


def shape_rows(names, pools, n: int = 7, sims: int = 2000) -> list[str]:
    """Table rows: skewness, excess kurtosis and share of distinct values of each null's differences."""
    rows = []
    for label, key, pm in names:
        d = null_diffs(key, sims, n, 0.0, seed=7, pool=with_mirrors(pools).get(pm)).ravel()
        what = NULLS[key][1] + (f", pool: {pool_label(pm)}" if pm else "")
        rows.append(f"| {label} | {what} | {scipy.stats.skew(d):.2f} | {scipy.stats.kurtosis(d):.2f} | "
                    f"{np.unique(np.round(d, 12)).size / d.size:.3f} |")
    return rows


def markdown(df: pd.DataFrame, info: pd.DataFrame, pools: dict[str, np.ndarray], pool_path: str, command: str,
             wall: float, cpu: float, a, shapes: list[str], conf: pd.DataFrame) -> str:
    """The results page: setup, nulls and pool (``shapes``: rows of ``shape_rows``), FPR and power tables, the
    confirmation of null cells above alpha (``conf``), reading."""
    seeds, effects, controls = a.seeds, a.effects, a.controls
    names = null_names(pools)
    per = df[df.decision == "per comparison"]
    ba = df[df.decision == "beats_all"]
    se_alpha = np.sqrt(ALPHA * (1 - ALPHA) / a.sims)
    used = info[info.used]
    lines = [
        "# Calibration of the verdict rule on realistic nulls",
        "",
        f"Command: `{command}`  ",
        f"Wall time: {wall:.1f} s ({cpu:.0f} s CPU in all processes) on this machine ({os.cpu_count()} CPU cores, "
        f"1-minute load average {LOAD_AT_START:.2f} at the start); {a.sims} simulations per null cell (effect 0), "
        f"{a.power_sims} per power cell"
        + (f", {a.confirm_sims} fresh ones for every null cell above alpha." if a.confirm_sims > 0 else "."),
        "",
        "## Rule under test",
        "",
        "Exactly the per-comparison rule of `tueval.stats.verdict` (`better_unadjusted`), applied by "
        "`tueval.stats.calibration.decide_diffs`: the one-sided paired sign-flip p (exact up to 16 seeds, 9999 "
        "Monte-Carlo sign patterns above) is below alpha, **and** the reported two-sided (1 − alpha) CI of the "
        "mean difference (Student-t below 20 seeds, bootstrap-t from 20) excludes 0, **and** the two-sided "
        f"bootstrap-t CI (9999 resamples) excludes 0, at level 1 − {SMALL_N_TAIL:g} alpha below {SMALL_N} seeds "
        "and 1 − alpha from there (`tueval.stats.paired.robust_level`); each CI condition on its own is a "
        "one-sided test at half its tail. `beats_all` (the intersection-union test of `tueval check` "
        "and of \"beats every control\") holds when every comparison passes that rule without multiplicity "
        f"correction. alpha = {ALPHA}. Entries are rate ± Monte-Carlo SE; **!** marks an FPR above alpha + "
        f"{FLAG_SE:g} of its MC SE (the MC SE of a rate exactly at alpha is {se_alpha:.4f} with {a.sims} "
        "simulations).",
        "",
        "## Nulls",
        "",
        "Per-comparison nulls (`tueval.stats.calibration.NULLS`): per-seed differences of one comparison with "
        "mean 0; a planted effect adds `effect` times the sd of the null's differences (d_z units). Shape of "
        f"each null's differences (one draw of {2000} x 7 seeds, effect 0):",
        "",
        "| null | what | skewness | excess kurtosis | distinct values / draws |",
        "|---|---|---:|---:|---:|",
        *shapes,
        "",
        f"Empirical pools: from `{pool_path}` (the committed `controls` report: per-seed method and control "
        f"values of every (objective, method, control) comparison at one learning rate, and the per-seed "
        f"utility differences at matched forgetting of the confirmatory verdicts, bracketed seeds only; up to "
        f"{int(info.n.max())} seeds each). For each "
        "comparison on a metric of the pool, the per-seed differences method − control are centred on their "
        "mean and divided by their sd (ddof 1), so each comparison contributes its shape, not its effect or "
        "scale; each simulated seed resamples one value of the pool with replacement. A mirrored pool is the "
        "same pool negated: the same comparisons with method and control swapped (which arm is the method is "
        "a choice of the comparison, so the skew can point either way relative to the tested side). "
        + "; ".join(f"{POOL_METRICS[m]} (`{m}`): {int(used.metric.eq(m).sum())} comparisons, {pools[m].size} "
                    f"values, skewness {scipy.stats.skew(pools[m]):.2f}" for m in pools)
        + (f"; left out (sd 0): {int((~info.used).sum())}." if (~info.used).any() else "; none left out."),
        "",
        "`beats_all` nulls (`tueval.stats.calibration.simulate_arms`): per seed a shared seed effect and own "
        f"noise per arm, normal, any two arms correlated {CORRELATION:g}; the method arm is shared by its k "
        f"comparisons. At correlation {CORRELATION:g} the planted effect equals d_z of each comparison. Only "
        "this generator draws several correlated controls; the other nulls are per comparison.",
        "",
        "## False-positive rate per comparison (effect 0)",
        "",
        "| null | " + " | ".join(f"{n} seeds" for n in seeds) + " |",
        "|---|" + "---:|" * len(seeds),
    ]
    null = per[per.effect == 0]
    for label, *_ in names:
        g = null[null.null == label].set_index("n_seeds")
        lines.append(f"| {label} | " + " | ".join(_fmt(g.loc[n, "rate"], g.loc[n, "mc_se"], g.loc[n, "flag"])
                                                   for n in seeds) + " |")
    lines += ["", "## Power per comparison (planted effect in d_z)", "",
              "| null | effect | " + " | ".join(f"{n} seeds" for n in seeds) + " |",
              "|---|---:|" + "---:|" * len(seeds)]
    for label, *_ in names:
        for e in effects:
            g = per[(per.null == label) & (per.effect == e)].set_index("n_seeds")
            lines.append(f"| {label} | {e:g} | " + " | ".join(_fmt(g.loc[n, "rate"], g.loc[n, "mc_se"])
                                                              for n in seeds) + " |")
    for e in effects:
        lines.append(f"| one-sided paired t-test, normal (reference) | {e:g} | "
                     + " | ".join(f"{power_paired(e, n, ALPHA, 'greater'):.3f}" for n in seeds) + " |")
    if not ba.empty:
        lines += ["", "## beats_all over k controls (correlated normal arms)", "",
                  "FPR is the rate of `beats_all` when no control differs from the method (complete null); "
                  "'Holm any' is the rate of at least one Holm label 'better' in the family (the family-wise "
                  "error of the labels); power is the rate of `beats_all` with the method ahead of every control "
                  "by the planted effect. 'Holm min seeds' is the smallest n at which an exact sign-flip p can "
                  "pass Holm over k (p < alpha/k needs 1/2^n < alpha/k).", "",
                  "| k | seeds | Holm min seeds | beats_all FPR | Holm any | "
                  + " | ".join(f"power, effect {e:g}" for e in effects) + " |",
                  "|---:|---:|---:|---:|---:|" + "---:|" * len(effects)]
        for k in controls:
            for n in seeds:
                g = ba[(ba.n_controls == k) & (ba.n_seeds == n)].set_index("effect")
                z = g.loc[0.0]
                lines.append(f"| {k} | {n} | {min_seeds_for_exact(ALPHA, 'greater', k)} | "
                             f"{_fmt(z.rate, z.mc_se, z.flag)} | {_fmt(z.holm_any_rate, z.holm_any_mc_se)} | "
                             + " | ".join(_fmt(g.loc[e, "rate"], g.loc[e, "mc_se"]) for e in effects) + " |")
    if a.confirm_sims > 0:
        lines += ["", "## Confirmation of every null cell above alpha", "",
                  f"Every null cell whose grid FPR lies above alpha, simulated again with {a.confirm_sims} fresh "
                  "simulations (new seeds): a point estimate above alpha in the grid is partly selected noise, "
                  "the fresh rate is not.", ""]
        if conf.empty:
            lines.append("No null cell of the grid lies above alpha.")
        else:
            lines += ["| null | decision | k | seeds | grid FPR | fresh FPR | fresh simulations |",
                      "|---|---|---:|---:|---:|---:|---:|"]
            grid0 = df[df.effect == 0].set_index(list(CELL_KEY))
            for r in conf.itertuples():
                g = grid0.loc[tuple(getattr(r, k) for k in CELL_KEY)]
                lines.append(f"| {r.null} | {r.decision} | {int(r.n_controls)} | {int(r.n_seeds)} | "
                             f"{_fmt(g.rate, g.mc_se, g.flag)} | {_fmt(r.rate, r.mc_se, r.flag)} | {int(r.n_sims)} |")
    lines += ["", "## Reading", "", *reading(df, names, a, conf), ""]
    return "\n".join(lines)


def reading(df: pd.DataFrame, names, a, conf: pd.DataFrame) -> list[str]:
    """The plain statements the tables support, computed from them."""
    per = df[df.decision == "per comparison"]
    null = df[df.effect == 0]
    flagged = null[null.flag]
    above = null[(null.rate > ALPHA) & ~null.flag]
    worst = null.loc[null.rate.idxmax()]
    out = [f"- Calibrated cells: {int((~null.flag).sum())} of {len(null)} null cells have an FPR within alpha + "
           f"{FLAG_SE:g} MC SE; the highest FPR is {_fmt(worst.rate, worst.mc_se)} ({worst.null}, "
           f"{int(worst.n_seeds)} seeds, {worst.decision}" + (f", {int(worst.n_controls)} controls" if
                                                                worst.decision == "beats_all" else "") + ")."]
    if flagged.empty:
        out.append("- No cell is flagged: the rule keeps its false-positive rate at or below alpha + MC error on "
                   "every null shape and seed count tested.")
    else:
        out.append("- **Miscalibrated (FPR above alpha + "
                   f"{FLAG_SE:g} MC SE)**: " + "; ".join(
                       f"{r.null}, {int(r.n_seeds)} seeds ({r.decision}): {_fmt(r.rate, r.mc_se)}"
                       for r in flagged.itertuples()) + ".")
    if not above.empty:
        out.append("- Point estimate above alpha but within MC error: " + "; ".join(
            f"{r.null}, {int(r.n_seeds)} seeds ({r.decision}): {_fmt(r.rate, r.mc_se)}"
            for r in above.itertuples()) + ".")
    if a.confirm_sims > 0 and not conf.empty:
        bad, ok = conf[conf.flag], conf[~conf.flag]
        out.append(f"- With {a.confirm_sims} fresh simulations each: "
                   + ("**still above alpha + " + f"{FLAG_SE:g} MC SE**: " + "; ".join(
                       f"{r.null}, {int(r.n_seeds)} seeds ({r.decision}): {_fmt(r.rate, r.mc_se)}"
                       for r in bad.itertuples()) if not bad.empty else "no cell is above alpha + "
                                                                          f"{FLAG_SE:g} MC SE")
                   + ("; within alpha + MC error: " + "; ".join(
                       f"{r.null}, {int(r.n_seeds)} seeds ({r.decision}): {_fmt(r.rate, r.mc_se)}"
                       for r in ok.itertuples()) if not ok.empty else "") + ".")
    cons = per[(per.effect == 0) & (per.rate + FLAG_SE * per.mc_se < ALPHA / 2)]
    if not cons.empty:
        out.append(f"- Conservative (per-comparison FPR + {FLAG_SE:g} MC SE below alpha/2 = {ALPHA / 2:g}): "
                   + "; ".join(f"{r.null} at {int(r.n_seeds)} seeds ({r.rate:.3f})" for r in cons.itertuples())
                   + f". The CI conditions are two-sided intervals (the t-interval at {1 - ALPHA:.0%}, the "
                     f"bootstrap-t at {robust_level(SMALL_N - 1, ALPHA):.0%} below {SMALL_N} seeds): each on its "
                     f"own is a one-sided condition at half its tail, so on a symmetric null the rule's FPR sits at "
                     f"or below alpha/2, and a long tail on the tested side lowers it further.")
    n0 = min(a.seeds)
    p0 = per[per.n_seeds == n0]
    for e in a.effects:
        g = p0[p0.effect == e]
        out.append(f"- Power per comparison at {n0} seeds, effect {e:g} d_z: "
                   + ", ".join(f"{r.null} {r.rate:.2f}" for r in g.itertuples())
                   + f" (one-sided t-test on normal differences: {power_paired(e, n0, ALPHA, 'greater'):.2f}).")
    ba = df[(df.decision == "beats_all") & (df.n_seeds == n0) & (df.effect > 0)]
    if not ba.empty:
        out.append(f"- Power of beats_all at {n0} seeds: " + "; ".join(
            f"k = {int(k)}: " + ", ".join(f"{r.rate:.2f} at {r.effect:g} d_z" for r in g.itertuples())
            for k, g in ba.groupby("n_controls")) + ".")
    out.append("- The size of an intersection-union test is at most the largest size of its members: the "
               "per-comparison table bounds the false-positive rate of `beats_all` on every null shape (the bound "
               "is reached when every other control is surely beaten).")
    b0, n0_ = null[null.decision == "beats_all"], null[(null.decision != "beats_all") & (null.null == "normal")]
    if not b0.empty and not n0_.empty:
        out.append(f"- Under the complete null (no control differs) `beats_all` fired in at most "
                   f"{b0.rate.max():.3f} of the simulations over k = {', '.join(str(k) for k in a.controls)}, "
                   f"against at most {n0_.rate.max():.3f} per comparison on normal differences.")
    return out


def _shown(path: Path) -> str:
    """A path relative to the repository where it lies inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split(",") if x.strip())


def _floats(s: str) -> tuple[float, ...]:
    return tuple(float(x) for x in s.split(",") if x.strip())


def main(argv: list[str] | None = None) -> int:
    """Run the grid and write the CSV and markdown."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=2000, help="simulations per null cell (default 2000)")
    ap.add_argument("--power-sims", type=int, default=400, help="simulations per power cell (default 400)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    ap.add_argument("--seeds", type=_ints, default=SEEDS, help="seed counts, comma-separated (default 7,10,14,20)")
    ap.add_argument("--effects", type=_floats, default=EFFECTS, help="planted effects in d_z (default 0.5,1,1.5)")
    ap.add_argument("--controls", type=_ints, default=CONTROLS,
                    help="numbers of controls for beats_all, comma-separated; empty for none (default 2,3,4)")
    ap.add_argument("--confirm-sims", type=int, default=20000,
                    help="fresh simulations for every null cell above alpha; 0 for none (default 20000)")
    ap.add_argument("--pool", type=Path, nargs="+", default=list(POOL_FILES),
                    help="per-seed paired differences for the empirical nulls (default "
                         "reports/controls/paired_diffs.csv and matched_diffs.csv)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks", help="output folder")
    a = ap.parse_args(argv)
    for f in a.pool:
        if not f.is_file():
            print(f"calibration: error: pool file {f} not found", file=sys.stderr)
            return 2
    command = "python benchmarks/calibration.py " + " ".join(argv if argv is not None else sys.argv[1:])
    pools, info = empirical_pools(*a.pool)
    cells = sorted(grid(pools, a.seeds, a.effects, a.controls, a.sims, a.power_sims), key=_cost, reverse=True)
    ex = ProcessPoolExecutor(a.jobs) if a.jobs > 1 else None
    run = ex.map if ex else map
    rows = list(run(run_cell, cells))
    conf_rows = list(run(run_cell, confirmation_cells(pd.DataFrame(rows), cells, a.confirm_sims, a.sims))) \
        if a.confirm_sims > 0 else []
    if ex:
        ex.shutdown()
    conf = confirmation(conf_rows)
    shapes = shape_rows(null_names(pools), pools)
    cpu = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                resource.getrusage(resource.RUSAGE_CHILDREN)))
    order = {c: i for i, (c, *_) in enumerate(null_names(pools))}
    df = pd.DataFrame(rows)
    df = df.assign(_o=df["null"].map(order).fillna(len(order))).sort_values(
        ["decision", "_o", "n_controls", "n_seeds", "effect"], ascending=[False, True, True, True, True]
    ).drop(columns="_o").reset_index(drop=True)
    conf = conf.assign(_o=conf["null"].map(order).fillna(len(order))).sort_values(
        ["decision", "_o", "n_controls", "n_seeds"], ascending=[False, True, True, True]).drop(
        columns="_o").reset_index(drop=True)
    df["alpha"] = ALPHA
    df["flag"] = flags(df)
    df["stage"] = "grid"
    out_df = pd.concat([df, conf.assign(alpha=ALPHA, stage="confirmation")], ignore_index=True) \
        if not conf.empty else df
    pool_path = "`, `".join(_shown(f) for f in a.pool)
    write_csv(a.out / "calibration.csv", out_df)
    wall = time.perf_counter() - T_START
    write_text(a.out / "calibration.md", markdown(df, info, pools, pool_path, command.strip(), wall, cpu, a,
                                                  shapes, conf))
    print(f"wrote {a.out / 'calibration.md'} and calibration.csv in {wall:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

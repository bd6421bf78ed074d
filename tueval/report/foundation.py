"""The foundation report: memorisation and TOFU metrics of the target and retain models, ground-truth overlap."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..workdir import Workdir
from .writer import ReportWriter, fmt, markdown_table


def _truth_ratio_figure(tr: dict[str, np.ndarray], fq: float | None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    bins = np.linspace(-4, 3, 50)
    for (name, vals), color in zip(tr.items(), ("#c0392b", "#2471a3")):
        ax.hist(np.log(np.clip(vals, 1e-12, None)), bins=bins, alpha=0.55, color=color,
                label=f"{name} model (n={len(vals)})", density=True)
    ax.axvline(0, color="k", lw=0.8, ls=":")
    ax.set_xlabel("log truth ratio  ln[P(perturbed) / P(paraphrased)]  (nats)")
    ax.set_ylabel("density (per nat)")
    title = "Truth ratios on the forget split"
    if fq is not None:
        title += f" (forget quality = KS p = {fmt(fq)})"
    ax.set_title(title, fontsize=10)
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def write_foundation_report(wd: Workdir, reports: str | Path = "reports", command: str | None = None) -> Path:
    """Write ``reports/foundation/``: report.md, CSVs, and the truth-ratio figure (PNG + PDF)."""
    from ..data.benchmark import describe
    from ..evaluate import evaluate_pair
    from ..evaluation.tofu_aggregate import truth_ratios

    summaries = evaluate_pair(wd, progress=False)
    man = wd.manifest
    rw = ReportWriter(Path(reports) / "foundation", "Foundation: benchmark, target and retain models, TOFU metrics")
    d = describe(wd.benchmark)
    rw.text("## Benchmark\n"
            f"Synthetic TOFU-style benchmark (seeded, offline): {d.get('people', '?')} fictitious people, "
            f"forget split `{wd.forget_split}`. Facts are a minority of answer characters (mean fact-character "
            f"fraction {fmt(d.get('mean_fact_char_fraction'))}); {fmt(d.get('shared_span_fraction'))} of fact "
            "spans hold values shared with other people.\n")
    rw.table("benchmark", pd.DataFrame([{k: v for k, v in d.items() if not isinstance(v, (dict, list))}]))
    rows = []
    for which in ("target", "retain"):
        t = man["train"][which]
        s = summaries[which]
        forget = pd.read_parquet(wd.eval_dir(which) / "forget.parquet")
        rows.append({"model": which, "epochs": t["epochs"], "train_fact_acc": t["fact_acc"],
                     "train_seconds": t["seconds"], "forget_fact_acc": float(forget["fact_acc"].mean()),
                     "forget_rougeL_recall": s.get("forget_rougeL"), "forget_prob": s.get("forget_prob"),
                     "forget_quality": s.get("forget_quality"), "model_utility": s.get("model_utility"),
                     "mia_min_k_auc": (s.get("mia") or {}).get("mia_min_k")})
    models = pd.DataFrame(rows)
    rw.text("## Memorisation and TOFU metrics\n"
            "Forget quality is the KS-test p-value of the model's truth ratios against the retain model's on the "
            "forget split (1.0 for the retain model by construction); model utility is the harmonic mean of the "
            "9 TOFU components on the retain subset and the two utility sets.\n")
    rw.table("models", models, show=True)
    comps = pd.DataFrame([{"model": w, **(summaries[w].get("components") or {})} for w in ("target", "retain")])
    rw.text("### Model-utility components\n")
    rw.table("utility_components", comps, show=True)
    tr = {w: truth_ratios(pd.read_parquet(wd.eval_dir(w) / "forget.parquet")) for w in ("target", "retain")}
    rw.table("truth_ratios", pd.DataFrame([{"model": w, "truth_ratio": v} for w, vals in tr.items() for v in vals]))
    rw.figure("truth_ratio_distributions", _truth_ratio_figure(tr, summaries["target"].get("forget_quality")),
              "Truth ratios of the target and retain models on the forget split; the retain model never saw "
              "these people, so its ratios sit near 1 (log 0) while the target prefers the true facts.")
    gt = wd.path("ground_truth").with_suffix(".json")
    if gt.exists():
        ov = json.loads(gt.read_text())
        rw.text("## Two ground truths\n"
                "(a) annotated fact spans; (b) counterfactual: answer tokens whose log-probability under the target "
                f"exceeds the retain model's by more than {fmt(ov.get('threshold_nats'))} nats.\n\n"
                f"- the retain model, which never saw the forget people, still predicts "
                f"**{fmt(100 * ov['retain_top1_on_span_tokens'], 3)}%** of their fact-span tokens at top-1 "
                f"(the target: {fmt(100 * ov['target_top1_on_span_tokens'], 3)}%);\n"
                f"- P(counterfactual | span) = {fmt(ov['p_cf_given_span'])}, P(span | counterfactual) = "
                f"{fmt(ov['p_span_given_cf'])}, Jaccard = {fmt(ov['jaccard'])};\n"
                f"- span tokens are {fmt(100 * ov['span_fraction'], 3)}% and counterfactual tokens "
                f"{fmt(100 * ov['counterfactual_fraction'], 3)}% of answer tokens.\n")
        rw.table("ground_truth_overlap", pd.DataFrame([ov]))
    lm = rw.root / "lmeval.csv"
    if lm.exists():
        rw.text("## lm-eval multiple choice (offline, `tueval lmeval`)\n"
                "The gold answer against three same-kind distractors in the answer's wording; chance is 0.25.\n")
        rw.table("lmeval", pd.read_csv(lm), show=True)
    rw.text("## Timings of the last `tueval prepare` call on this machine\n"
            "(steps found in the cache take about 0 s; first-run training times are in the models table)\n\n"
            + markdown_table(pd.DataFrame([man.get("timings", {})])))
    return rw.write(command or f"tueval demo --workdir {wd.root}")

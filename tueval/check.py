"""``tueval check``: the confirmatory family for one scorer against the named controls, as a CI gate.

Families (each comparison paired by seed, one-sided in the better direction, all Holm-adjusted together):
- alignment: mean AP lift over the forget split (AP minus its exact chance level) vs a random scorer;
- intervention: mean ABPC (LeRF minus MoRF deletion curves, attention-mask operator) of the knowledge margin
  (target minus retain answer log-probability on the same perturbed input) vs a random scorer;
- snr: log directional gradient SNR of the scorer's hard top-r selection vs ``random_k`` (same count);
- tradeoff: forget quality (log10) and model utility of unlearning runs vs each named control.
Exit code 0 only when every verdict is "better"; 1 when the scorer does not beat every control; 2 on bad input.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from .errors import TuevalError

FAMILIES = ("alignment", "intervention", "snr", "tradeoff")


def _scores(scorer, model, batch, ctx) -> torch.Tensor:
    with torch.no_grad():
        return scorer.score(model, batch, ctx).float()


def score_family_values(scorer_name: str, wd, seeds, ratio: float, families, max_examples: int = 96) -> dict:
    """Per-seed values of the scorer and its random control for the score-based families."""
    from .data.collate import collate
    from .metrics.alignment import alignment_metrics
    from .metrics.intervention import PerturbationSpec, perturbation_curves
    from .metrics.snr import snr_report
    from .scoring import ScoringContext, check_scorer, make_scorer
    from .weighting import hard_weights, random_k

    model, tok = wd.load_model("target")
    scorer = make_scorer(scorer_name)
    retain, _ = wd.load_model("retain")
    examples = wd.benchmark.split(wd.forget_split)[:max_examples]
    batch = collate(examples, tok)
    ctx = ScoringContext(ref_model=model, retain_model=retain, tokenizer=tok,
                         generator=torch.Generator().manual_seed(0))
    check_scorer(scorer, model, batch.select(range(min(8, len(batch)))), context=ctx)
    S = _scores(scorer, model, batch, ctx)
    ans = batch.answer_mask
    out: dict[str, dict[str, list[float]]] = {}
    for seed in seeds:
        g = torch.Generator().manual_seed(1000 + seed)
        R = torch.rand(S.shape, generator=g)
        if "alignment" in families:
            a = float(np.nanmean(alignment_metrics(S, batch.gt_mask, ans)["ap_lift"].numpy()))
            b = float(np.nanmean(alignment_metrics(R, batch.gt_mask, ans)["ap_lift"].numpy()))
            out.setdefault("alignment:ap_lift", {"method": [], "control": []})
            out["alignment:ap_lift"]["method"].append(a)
            out["alignment:ap_lift"]["control"].append(b)
        if "intervention" in families:
            spec = PerturbationSpec(operators=("attention_mask",), grid=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0), n_random=1,
                                    seed=seed)
            sm = perturbation_curves(model, batch, S, spec, baseline=retain).summary["abpc"].mean()
            sr = perturbation_curves(model, batch, R, spec, baseline=retain).summary["abpc"].mean()
            out.setdefault("intervention:abpc", {"method": [], "control": []})
            out["intervention:abpc"]["method"].append(float(sm))
            out["intervention:abpc"]["control"].append(float(sr))
        if "snr" in families:
            perm = torch.randperm(len(batch), generator=g)
            half = len(batch) // 2
            ref, ev = batch.select(perm[:half]), batch.select(perm[half:])
            w = hard_weights(S[perm[half:]], ev.answer_mask, ratio)
            wr = random_k(w, ev.answer_mask, g)
            rep = snr_report(model, ev, ref, {"method": w, "random_k": wr}).set_index("weighting")
            out.setdefault("snr:log_snr_dir", {"method": [], "control": []})
            out["snr:log_snr_dir"]["method"].append(math.log(max(rep.loc["method", "snr_dir"], 1e-300)))
            out["snr:log_snr_dir"]["control"].append(math.log(max(rep.loc["random_k", "snr_dir"], 1e-300)))
    return out


def run_check(args) -> int:
    """Entry point of ``tueval check`` (see module docstring)."""
    from .stats import beats_all, compare, verdict_table, verdicts_to_frame
    from .workdir import Workdir

    wd = Workdir(args.workdir)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    bad = sorted(set(families) - set(FAMILIES))
    if bad:
        print(f"tueval check: error: unknown families {', '.join(bad)}; valid: {', '.join(FAMILIES)}",
              file=sys.stderr)
        return 2
    controls = [c.strip() for c in args.against.split(",") if c.strip()]
    seeds = list(range(args.seeds))
    comparisons = []
    try:
        vals = score_family_values(args.scorer, wd, seeds, args.ratio, families)
        for key, v in vals.items():
            fam, metric = key.split(":")
            comparisons.append(compare(v["method"], v["control"], metric=metric, method=args.scorer,
                                       control="random_k" if fam == "snr" else "random", alpha=args.alpha))
        if "tradeoff" in families:
            from analyses.controls import controls_verdicts
            from .analysis import AnalysisConfig

            cfg = AnalysisConfig(workdir=wd, reports=Path(args.reports or "reports"), seeds=tuple(seeds),
                                 compute=True, scorers=(args.scorer,), alpha=args.alpha, profile=args.profile,
                                 workers=args.workers, progress=not (args.quiet or args.json))
            comparisons.extend(controls_verdicts(cfg, args.scorer, args.mode,
                                                 args.ratio if args.mode == "hard" else None, controls,
                                                 args.objective, comparisons=True))
    except TuevalError as e:
        print(f"tueval check: error: scorer '{args.scorer}': {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a user's scorer may raise anything; report it, don't crash
        print(f"tueval check: error: scorer '{args.scorer}' failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    verdicts = verdict_table(comparisons, alpha=args.alpha, correction="holm")
    ok = beats_all(verdicts)
    df = verdicts_to_frame(verdicts)
    if args.json:
        print(json.dumps({"scorer": args.scorer, "passed": ok, "alpha": args.alpha, "n_seeds": len(seeds),
                          "verdicts": [v.to_dict() for v in verdicts]}, indent=2, default=str))
    else:
        cols = [c for c in ("metric", "control", "estimate", "ci_low", "ci_high", "p_adjusted", "decision")
                if c in df.columns]
        print(df[cols].to_string(index=False))
        print(f"\n{args.scorer}: {'PASS - beats every control' if ok else 'FAIL - does not beat every control'}"
              f" (Holm over {len(verdicts)} comparisons, alpha {args.alpha}, {len(seeds)} seeds)")
    if args.reports:
        from .io import write_csv

        write_csv(Path(args.reports) / "check" / "verdicts.csv", df)
    return 0 if ok else 1

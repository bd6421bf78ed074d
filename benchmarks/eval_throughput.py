"""Evaluation examples per second of the TOFU evaluation on the default workdir's target model, per set.

Usage: python benchmarks/eval_throughput.py --workdir work [--threads 1]   -> benchmarks/eval_throughput.md"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", default="work")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from tueval.evaluate import eval_sets, holdout_split
    from tueval.evaluation.mia import mia_table
    from tueval.evaluation.tofu import evaluate_examples
    from tueval.workdir import Workdir

    wd = Workdir(args.workdir)
    m, tok = wd.load_model("target")
    rows = []
    for k, ex in eval_sets(wd).items():
        for gen in (False, True):
            t = time.perf_counter()
            evaluate_examples(m, tok, ex, k, batch_size=64, generate=gen)
            s = time.perf_counter() - t
            rows.append(f"| {k} | {len(ex)} | {'yes' if gen else 'no'} | {s:.2f} | {len(ex) / s:.1f} |")
    ev = eval_sets(wd)
    t = time.perf_counter()
    hold = wd.benchmark.split(holdout_split(wd))
    mia_table(m, tok, ev["forget"], hold, batch_size=64)
    s = time.perf_counter() - t
    rows.append(f"| MIA forget+holdout | {len(ev['forget']) + len(hold)} | no | {s:.2f} | "
                f"{(len(ev['forget']) + len(hold)) / s:.1f} |")
    out = Path(__file__).with_name("eval_throughput.md")
    out.write_text("# Evaluation throughput (TOFU metrics per example: answer, paraphrase and 5 perturbed "
                   "likelihoods; greedy generation for ROUGE)\n\n"
                   f"Command: `python benchmarks/eval_throughput.py --workdir {args.workdir} --threads "
                   f"{args.threads}` (tiny default target model, batch 64, 2-core machine).\n\n"
                   "| set | examples | generation | seconds | examples/s |\n|---|---:|---|---:|---:|\n"
                   + "\n".join(rows) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()

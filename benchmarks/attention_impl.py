"""The checkpoint evaluation under PyTorch's fused attention (``sdpa``) against the eager attention the suite
uses: time, interleaved in one process, and how far every per-example summed NLL and checkpoint metric moves.
The suite keeps eager attention because a run's numbers must equal its cached trajectory's to the bit
(refinement runs re-check them); this measures what switching would buy, for a session that regenerates every run.

Usage: python benchmarks/attention_impl.py --workdir WORKDIR [--repeats 5]   (one torch thread)"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from tueval.data.format import set_format
from tueval.evaluate import eval_sets, reference
from tueval.evaluation import checkpoint as ck
from tueval.evaluation.likelihood import SetJob, score_sets
from tueval.evaluation.tofu import fields_for
from tueval.models.load import load_model
from tueval.workdir import Workdir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    wd = Workdir(a.workdir)
    sets, ref = eval_sets(wd), reference(wd)
    eager, tok = wd.load_model("target")
    fused, _ = load_model(wd.path("target"), attn_implementation="sdpa")
    fused.eval()
    tok = set_format(tok, wd.prompt_format) if wd.is_config else tok
    job = {"forget": SetJob(sets["forget"], fields_for("forget"))}
    with torch.no_grad():
        s_e = score_sets(eager, tok, job, accuracy=False)["forget"].stats
        s_f = score_sets(fused, tok, job, accuracy=False)["forget"].stats
    rel = max(float(np.max(np.abs(s_f[k].sum_nll - s_e[k].sum_nll) / np.abs(s_e[k].sum_nll))) for k in s_e)
    m_e = ck.evaluate_checkpoint(eager, tok, sets, ref.forget)
    m_f = ck.evaluate_checkpoint(fused, tok, sets, ref.forget)
    t = {"eager": [], "sdpa": []}
    for _ in range(a.repeats):
        for name, model in (("eager", eager), ("sdpa", fused)):
            t0 = time.perf_counter()
            ck.evaluate_checkpoint(model, tok, sets, ref.forget)
            t[name].append(time.perf_counter() - t0)
    e, f = statistics.median(t["eager"]), statistics.median(t["sdpa"])
    print(f"# Eager vs fused (sdpa) attention in the checkpoint evaluation\n\nCommand: `python "
          f"benchmarks/attention_impl.py --workdir {a.workdir} --repeats {a.repeats}` (target model, one torch "
          f"thread, medians of {a.repeats} interleaved repeats).\n")
    print("| attention | checkpoint evaluation s | ratio |\n|---|---:|---:|")
    print(f"| eager | {e:.3f} | 1.00 |\n| sdpa | {f:.3f} | {f / e:.2f} |\n")
    print(f"Largest relative difference of a forget-split summed NLL (answer, paraphrase, perturbed): {rel:.2e}.\n")
    print("| checkpoint metric | eager | sdpa | relative difference |\n|---|---:|---:|---:|")
    for k in ck.METRICS:
        d = abs(m_f[k] - m_e[k]) / max(abs(m_e[k]), 1e-300)
        print(f"| {k} | {m_e[k]:.10g} | {m_f[k]:.10g} | {d:.1e} |")


if __name__ == "__main__":
    main()

"""How far the tiny model's MFU can go without kernel fusion: the matmul ceiling of the evaluation and training.

Usage: python benchmarks/mfu_ceiling.py --workdir WORKDIR [--repeats 3] [--compile]   -> benchmarks/mfu_ceiling.md

One torch thread, the default workdir's target model. Two parts, each the code the engine runs: the teacher-forced
pass over the forget set (every answer variant, ``score_sets``) and 10 GA training steps (``Trainer``). Per part:
wall time (best of the repeats), matmul FLOPs (``torch.utils.flop_counter``), the share of the time spent in matmul
kernels (``torch.profiler``: self CPU time of mm, bmm, addmm, baddbmm), and the same matmuls timed alone at the
shapes the profiler recorded. Against the in-process fp32 matmul peak (best of square 512 and 1024 products):
  MFU                  = matmul FLOPs / wall / peak
  ceiling (unfused)    = matmul FLOPs / matmul-kernel time / peak: the MFU if every other op took no time
  shape peak           = matmul FLOPs / the shapes' isolated time / peak: what the model's matmul shapes reach alone
``--compile`` also times ``torch.compile`` of the model on the teacher-forced part (the fused alternative) and the
largest relative difference of a per-example average NLL."""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _base  # noqa: E402

MATMULS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm")


def profile(fn) -> tuple[float, Counter]:
    """(self CPU seconds in matmul kernels, Counter of (op, input shapes)) of one call of ``fn``."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    with prof(activities=[ProfilerActivity.CPU], record_shapes=True) as p:
        fn()
    ev = [e for e in p.events() if e.name in MATMULS]
    shapes = Counter((e.name, tuple(tuple(s) for s in e.input_shapes if s)) for e in ev)
    return sum(e.self_cpu_time_total for e in ev) / 1e6, shapes


def isolated_seconds(shapes: Counter, repeats: int = 5) -> float:
    """Seconds the recorded matmul calls take alone (random operands of the same shapes, best of ``repeats``)."""
    import torch

    total = 0.0
    for (op, dims), count in shapes.items():
        args = [torch.randn(*d) for d in dims]
        f = {"aten::mm": torch.mm, "aten::bmm": torch.bmm, "aten::addmm": torch.addmm,
             "aten::baddbmm": torch.baddbmm}[op]
        f(*args)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            f(*args)
            best = min(best, time.perf_counter() - t)
        total += best * count
    return total


def best_of(fn, repeats: int) -> float:
    """Best wall seconds of ``fn()`` over ``repeats`` calls (after one warm-up call)."""
    fn()
    out = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t)
    return out


def measure(args) -> dict:
    import numpy as np
    import torch

    from tueval.evaluate import eval_sets
    from tueval.evaluation.likelihood import SetJob, score_sets
    from tueval.spec import RunSpec
    from tueval.training import Trainer
    from tueval.unlearn import resolve
    from tueval.workdir import Workdir

    torch.set_num_threads(1)
    wd = Workdir(args.workdir)
    model, tok = wd.load_model("target")
    model.eval()
    ev = eval_sets(wd)
    job = {"forget": SetJob(ev["forget"], ("answer", "paraphrased_answer", "perturbed"), ("answer",))}

    def tf(m=model):
        with torch.no_grad():
            return score_sets(m, tok, job)

    spec = RunSpec(objective="ga")

    def train():
        torch.manual_seed(0)
        trainer = Trainer.build(spec, wd, *resolve(spec, wd).pop("_objects"), "forget10")
        for s in range(10):
            trainer(s)

    def train_steps():
        torch.manual_seed(0)
        trainer = Trainer.build(spec, wd, *resolve(spec, wd).pop("_objects"), "forget10")
        t = time.perf_counter()
        for s in range(10):
            trainer(s)
        return time.perf_counter() - t

    peaks = [_base.peak_gflops()]
    out = {}
    for name, fn, wall in (("teacher-forced forget set", tf, lambda: best_of(tf, args.repeats)),
                           ("GA training, 10 steps", train, lambda: min(train_steps() for _ in range(args.repeats)))):
        w = wall()
        fl = _base.count_flops(fn)
        mm_s, shapes = profile(fn)
        out[name] = {"wall_s": w, "gflop": fl / 1e9, "matmul_s": mm_s, "isolated_s": isolated_seconds(shapes),
                     "matmul_calls": sum(shapes.values())}
    peaks.append(_base.peak_gflops())
    if args.compile:
        t = time.perf_counter()
        cm = torch.compile(model, dynamic=True)
        ref, got = tf(), tf(cm)
        first = time.perf_counter() - t
        w = best_of(lambda: tf(cm), args.repeats)
        diff = max(float(np.max(np.abs(ref["forget"].stats[f].avg_nll / got["forget"].stats[f].avg_nll - 1)))
                   for f in ref["forget"].stats)
        out["teacher-forced forget set, torch.compile"] = {"wall_s": w, "gflop": out["teacher-forced forget set"]
                                                           ["gflop"], "first_call_s": first, "max_rel_diff": diff}
    return {"parts": out, "peak": max(peaks), "torch": torch.__version__}


def report(res: dict, cmd: str) -> str:
    peak = res["peak"]
    rows = ["| part | wall s | matmul GFLOP | MFU | matmul share of time | ceiling (unfused) | shape peak |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for name, p in res["parts"].items():
        mfu = p["gflop"] / p["wall_s"] / peak
        if "matmul_s" in p:
            rows.append(f"| {name} | {p['wall_s']:.3f} | {p['gflop']:.1f} | {mfu:.2f} | "
                        f"{p['matmul_s'] / p['wall_s']:.2f} | {p['gflop'] / p['matmul_s'] / peak:.2f} | "
                        f"{p['gflop'] / p['isolated_s'] / peak:.2f} |")
        else:
            rows.append(f"| {name} (first call {p['first_call_s']:.1f} s; per-example NLL max relative "
                        f"difference {p['max_rel_diff']:.1e}) | {p['wall_s']:.3f} | {p['gflop']:.1f} | {mfu:.2f} "
                        "| - | - | - |")
    return "\n".join([f"# MFU ceiling of the tiny model (one thread)\n\nCommand: `{cmd}` (torch {res['torch']}; "
                      f"in-process fp32 matmul peak {peak:.1f} GFLOP/s).\n", *rows, "",
                      f"Raw: `{json.dumps(res)}`", ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="work")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile on the teacher-forced part")
    ap.add_argument("--out", default=str(Path(__file__).with_name("mfu_ceiling.md")))
    args = ap.parse_args()
    res = measure(args)
    text = report(res, "python benchmarks/mfu_ceiling.py " + " ".join(sys.argv[1:]))
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()

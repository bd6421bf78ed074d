"""The full evaluation with the greedy-token accuracies on the answer rows only (the default) against the path
before (an argmax over the vocabulary on every scored row: answer, paraphrase, perturbed answers, MIA holdout),
interleaved in one process, with every table and summary value checked equal between the two.

The path before is this checkout's code with every ``SetJob`` built with ``acc=None`` (every row), which is what
``SetJob`` did before it had the field.

Usage: python benchmarks/answer_accuracy.py --workdir WORKDIR [--repeats 5] [--models target,retain]
(one torch thread; the full evaluation generates at the run default of new tokens)."""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from pathlib import Path

import pandas as pd
import torch

from tueval.evaluate import evaluate_in_memory, reference
from tueval.evaluation import likelihood
from tueval.workdir import Workdir

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _base  # noqa: E402


@contextlib.contextmanager
def every_row():
    """Inside: every ``SetJob`` asks for the accuracies of every row (the path before)."""
    orig = likelihood.SetJob
    likelihood.SetJob = lambda examples, fields, dist=(), acc=None: orig(examples, fields, dist, None)
    try:
        yield
    finally:
        likelihood.SetJob = orig


def _equal(a: tuple, b: tuple) -> bool:
    """Every table (exactly, NaN = NaN) and every summary value (repr) of two evaluations equal."""
    (ta, sa), (tb, sb) = a, b
    if ta.keys() != tb.keys() or repr(sa) != repr(sb):
        return False
    for k in ta:
        try:
            pd.testing.assert_frame_equal(ta[k], tb[k], check_exact=True)
        except AssertionError:
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--models", default="target,retain")
    ap.add_argument("--no-generate", action="store_true", help="the teacher-forced part and MIA only")
    a = ap.parse_args()
    torch.set_num_threads(1)
    wd = Workdir(a.workdir)
    ref = reference(wd)
    gen = not a.no_generate
    flag = " --no-generate" if a.no_generate else ""
    print(f"# Greedy-token accuracies on the answer rows only vs on every row\n\nCommand: `python "
          f"benchmarks/answer_accuracy.py --workdir {a.workdir} --repeats {a.repeats} --models {a.models}{flag}` "
          f"(one torch thread; medians of {a.repeats} interleaved repeats after a warm-up call of each).\n")
    print("| model | every row s | answer rows s | answer rows / every row | tables and summary equal |\n"
          "|---|---:|---:|---:|---|")
    for name in a.models.split(","):
        model, tok = wd.load_model(name)

        def run(old: bool):
            with every_row() if old else contextlib.nullcontext():
                return evaluate_in_memory(model, tok, wd, ref.forget, ref.mia_aucs, generate=gen)

        same = _equal(run(True), run(False))
        t = {True: [], False: []}
        for _ in range(a.repeats):
            for old in (True, False):
                t[old].append(_base.timed(lambda: run(old))[0])
        o, n = statistics.median(t[True]), statistics.median(t[False])
        print(f"| {name} | {o:.3f} | {n:.3f} | {n / o:.3f} | {same} |")


if __name__ == "__main__":
    main()

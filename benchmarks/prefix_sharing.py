"""Answer variants run from the variant they begin like (``tueval.evaluation.share.share_plan``, the default)
against each from its question's prompt alone (``SHARE = False``, the path before), interleaved in one process:
the checkpoint evaluation and the full evaluation, their cost ratio, the positions run, and every per-example value
compared (relative difference; generated texts and token counts exactly).

Usage: python benchmarks/prefix_sharing.py --workdir WORKDIR [--repeats 7] [--models target,retain]
(one torch thread; the full evaluation generates at the run default of new tokens)."""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tueval.evaluate import eval_sets, evaluate_in_memory, reference
from tueval.evaluation import prefix, share
from tueval.evaluation.checkpoint import PLAN, checkpoint_tables, evaluate_checkpoint
from tueval.evaluation.encoding import encode_answers
from tueval.evaluation.likelihood import _field_rows
from tueval.evaluation.tofu import fields_for
from tueval.workdir import Workdir

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _base  # noqa: E402


@contextlib.contextmanager
def sharing(on: bool):
    """Inside: ``score_continuations`` shares prefixes by default iff ``on``."""
    old, prefix.SHARE = prefix.SHARE, on
    try:
        yield
    finally:
        prefix.SHARE = old


def positions(tok, sets) -> tuple[int, int]:
    """Continuation positions the checkpoint evaluation's sets run without and with sharing."""
    toks, owner, base = [], [], 0
    for name, exs in PLAN.select(sets).items():
        for f in fields_for(name):
            texts, spans, own = _field_rows(exs, f)
            toks += [t for t, _ in encode_answers(tok, texts, spans)]
            owner.append(own + base)
        base += len(exs)
    lens = np.array([len(t) for t in toks])
    plan = share.share_plan(share.padded(toks, lens, 0, np.int64), lens, np.concatenate(owner))
    return int((lens - 1).sum()), int((lens - 1 - plan.reused).sum())


def max_rel_diff(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> tuple[float, bool]:
    """Largest relative difference of any numeric per-example value of two sets of tables, and whether every
    non-numeric value (generated texts, ids) and every integer count is equal."""
    worst, same = 0.0, a.keys() == b.keys()
    for k in a:
        for c in a[k].columns:
            x, y = a[k][c], b[k][c]
            try:
                u = np.concatenate([np.ravel(np.asarray(v, dtype=float)) for v in x])
                w = np.concatenate([np.ravel(np.asarray(v, dtype=float)) for v in y])
            except (TypeError, ValueError):
                same &= x.tolist() == y.tolist()
                continue
            if np.issubdtype(x.dtype, np.integer):
                same &= np.array_equal(u, w)
            both = np.isfinite(u) & np.isfinite(w)
            same &= np.array_equal(np.isnan(u), np.isnan(w))
            d = np.abs(u[both] - w[both]) / np.maximum(np.abs(u[both]), 1e-12)
            worst = max(worst, float(d.max()) if d.size else 0.0)
    return worst, same


def _summary_diff(a: dict, b: dict) -> float:
    """Largest relative difference of the nonzero numeric values two summaries share."""
    d = [abs(a[k] - b[k]) / abs(a[k]) for k in a if isinstance(a[k], float) and isinstance(b.get(k), float)
         and np.isfinite(a[k]) and np.isfinite(b[k]) and a[k] != 0]
    return max(d, default=0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--models", default="target,retain")
    a = ap.parse_args()
    torch.set_num_threads(1)
    wd = Workdir(a.workdir)
    ref, sets = reference(wd), eval_sets(wd)
    retain, rtok = wd.load_model("retain")
    # the retain model's forget table (forget quality's reference) scored the same way as each side
    ref_forget = {}
    for on in (False, True):
        with sharing(on), torch.no_grad():
            ref_forget[on] = checkpoint_tables(retain.eval(), rtok, sets)["forget"]
    print(f"# Prefix sharing between answer variants vs each from its prompt alone\n\nCommand: `python "
          f"benchmarks/prefix_sharing.py --workdir {a.workdir} --repeats {a.repeats} --models {a.models}` (one torch "
          f"thread; medians of {a.repeats} interleaved repeats, alternating which goes first, after a warm-up call "
          f"of each; load average {_base.load_average()}).\n")
    print("| model | checkpoint eval s, alone / shared | ratio | full eval s, alone / shared | ratio | "
          "checkpoint / full, alone / shared | max rel. diff (tables, summary) | counts, texts equal | "
          "checkpoint metrics max rel. diff |\n|---|---:|---:|---:|---:|---:|---:|---|---:|")
    for name in a.models.split(","):
        model, tok = wd.load_model(name)
        model.eval()

        def cp(on: bool):
            with sharing(on), torch.no_grad():
                return evaluate_checkpoint(model, tok, sets, ref_forget[on])

        def full(on: bool):
            with sharing(on), torch.no_grad():
                return evaluate_in_memory(model, tok, wd, ref_forget[on], ref.mia_aucs, generate=True)

        (t_off, s_off), (t_on, s_on) = full(False), full(True)
        worst, same = max_rel_diff(t_off, t_on)
        worst = max(worst, _summary_diff(s_off, s_on))
        with sharing(False):
            ct_off = checkpoint_tables(model, tok, sets)
        with sharing(True):
            ct_on = checkpoint_tables(model, tok, sets)
        worst = max(worst, max_rel_diff(ct_off, ct_on)[0])
        c_off, c_on = cp(False), cp(True)
        cworst = _summary_diff(c_off, c_on)
        t = {(kind, on): [] for kind in ("cp", "full") for on in (False, True)}
        for r in range(a.repeats):
            for on in ((False, True) if r % 2 == 0 else (True, False)):
                t["cp", on].append(_base.timed(lambda: cp(on))[0])
                t["full", on].append(_base.timed(lambda: full(on))[0])
        m = {k: statistics.median(v) for k, v in t.items()}
        print(f"| {name} | {m['cp', False]:.3f} / {m['cp', True]:.3f} | {m['cp', True] / m['cp', False]:.3f} | "
              f"{m['full', False]:.3f} / {m['full', True]:.3f} | {m['full', True] / m['full', False]:.3f} | "
              f"{m['cp', False] / m['full', False]:.3f} / {m['cp', True] / m['full', True]:.3f} | {worst:.1e} | "
              f"{same} | {cworst:.1e} |")
    n_off, n_on = positions(tok, sets)
    print(f"\nContinuation positions the checkpoint evaluation runs (forget split and {PLAN.retain_n} retain "
          f"examples): {n_off} alone, {n_on} shared ({n_on / n_off:.3f}).")


if __name__ == "__main__":
    main()

"""Training with the reference's per-token values stored across steps (``tueval.ref_tokens``, the default) vs a
reference forward on every forget batch (``ref_tokens.CACHE = False``, the path before), side by side in one
process, interleaved: the training time of each default run (the run's spec from ``RunSpec(objective=...)``, its
epochs and batches) and whether the trained parameters and log rows are the same to the bit. With ``--full``, the
whole run as ``tueval unlearn`` does it (train + full evaluation + run folder, forced, in a copy of the workdir).

Usage: python benchmarks/ref_tokens.py --workdir WORKDIR [--repeats 5] [--objectives npo,tpo,idkpo,npo:step_matched]
[--full 1] (one torch thread)."""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from tueval import ref_tokens
from tueval.spec import RunSpec
from tueval.training import Trainer
from tueval.unlearn import resolve, unlearn
from tueval.workdir import Workdir

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _base  # noqa: E402


def _spec(arm: str) -> RunSpec:
    obj, _, control = arm.partition(":")
    if not control:
        return RunSpec(objective=obj)
    # a control needs a method to match: TokenUnlearn hard, as the demo's grid pairs them
    return RunSpec(objective=obj, scorer="tokenunlearn", mode="hard", ratio=0.3, control=control)


def _train(wd: Workdir, spec: RunSpec, cache: bool):
    ref_tokens.CACHE = cache
    r = resolve(spec, wd)
    torch.manual_seed(spec.seed)
    tr = Trainer.build(spec, wd, *r.pop("_objects"), r["spec"]["forget_split"])
    secs, log = _base.timed(lambda: [tr(s) for s in range(tr.total_steps)])
    return secs, log, [p.detach().clone() for p in tr.model.parameters()], tr.total_steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", required=True, help="a prepared workdir (the demo's: work)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repeats of each training (default 5)")
    ap.add_argument("--objectives", default="npo,tpo,idkpo,npo:step_matched",
                    help="arms: objective[:control] (default npo,tpo,idkpo,npo:step_matched)")
    ap.add_argument("--full", type=int, default=0, help="interleaved repeats of the whole run (default 0: none)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    wd = Workdir(args.workdir)
    arms = args.objectives.split(",")
    t: dict = {}
    out: dict = {}
    loads = [_base.load_average()]
    for rep in range(args.repeats):
        for arm in arms:
            for cache in ((False, True) if rep % 2 == 0 else (True, False)):
                secs, log, params, steps = _train(wd, _spec(arm), cache)
                t.setdefault((arm, cache), []).append(secs)
                out[arm, cache] = (log, params, steps)
        loads.append(_base.load_average())
    rows = []
    for arm in arms:
        (lo, po, steps), (ln, pn, _) = out[arm, False], out[arm, True]
        same = all(torch.equal(a, b) for a, b in zip(po, pn))
        diff = max(float((a - b).abs().max()) for a, b in zip(po, pn))
        old, new = statistics.median(t[arm, False]), statistics.median(t[arm, True])
        rows.append(f"| {arm} | {steps} | {old:.2f} | {new:.2f} | {new / old:.3f} | "
                    f"{min(n / o for n, o in zip(t[arm, True], t[arm, False])):.3f}-"
                    f"{max(n / o for n, o in zip(t[arm, True], t[arm, False])):.3f} | {same} | {diff:.1e} | "
                    f"{lo == ln} |")
    print(f"# Reference values stored across steps vs a reference forward every step\n\nCommand: `python "
          f"benchmarks/ref_tokens.py --workdir {args.workdir} --repeats {args.repeats} --objectives "
          f"{args.objectives} --full {args.full}` (one torch thread; load averages: {', '.join(loads)}).\n")
    print("## Training of one default run (medians over the interleaved repeats)\n")
    print("| arm | steps | every step s | stored s | stored / every step | range of the paired ratios | "
          "parameters bit-identical | max abs parameter difference | log rows equal |")
    print("|---|---:|---:|---:|---:|---|---|---:|---|")
    print("\n".join(rows))
    if args.full:
        full: dict = {}
        with tempfile.TemporaryDirectory() as tmp:
            cw = Workdir(_base.fresh_workdir(Path(args.workdir), Path(tmp) / "wd"))
            for rep in range(args.full):
                for arm in arms:
                    for cache in ((False, True) if rep % 2 == 0 else (True, False)):
                        ref_tokens.CACHE = cache
                        secs, _ = _base.timed(lambda: unlearn(_spec(arm), cw, progress=False, force=True))
                        full.setdefault((arm, cache), []).append(secs)
        print("\n## The whole run (train + full evaluation + run folder, forced; medians)\n")
        print("| arm | every step s | stored s | stored / every step |")
        print("|---|---:|---:|---:|")
        for arm in arms:
            old, new = statistics.median(full[arm, False]), statistics.median(full[arm, True])
            print(f"| {arm} | {old:.2f} | {new:.2f} | {new / old:.3f} |")


if __name__ == "__main__":
    main()

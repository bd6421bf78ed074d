"""How many runs of the demo's grid are filled from a run that cannot differ from them
(``tueval.shared_training``) instead of training, and the cost of a filled run against a trained one.

1. Counts (nothing trained): the grid of the controls analysis at the demo's profile and seeds (the replication
   pair runs the same grid), its runs grouped by ``training_key``; a key held by n runs trains once. A
   bracketing or refinement run the matched comparison adds shares a key only where its learning rate,
   ``eval_steps`` and ``stop_step`` equal another's; those depend on the trajectories and are not counted here.
2. With ``--time``: one such pair trained and filled (``unlearn``, forced, in a copy of the workdir), and the
   filled run's tables checked against the pair's run trained anew.

Usage: python benchmarks/shared_training.py --workdir WORKDIR [--profile default] [--time]"""
from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _base  # noqa: E402


def main() -> None:
    from tueval import shared_training
    from tueval.analysis import AnalysisConfig
    from tueval.analysis.controls_grid import grid_cells_of, grid_settings
    from tueval.defaults import SEEDS
    from tueval.hashing import spec_hash
    from tueval.unlearn import resolve
    from tueval.workdir import Workdir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", required=True, help="a prepared workdir (the demo's: work)")
    ap.add_argument("--profile", default="default", help="the analysis profile of the grid (default: default)")
    ap.add_argument("--time", action="store_true", help="also train and fill one pair of runs, and compare")
    args = ap.parse_args()
    wd = Workdir(args.workdir)
    cfg = AnalysisConfig(workdir=wd, seeds=tuple(SEEDS), profile=args.profile, compute=False, progress=False)
    cells = grid_cells_of(grid_settings(cfg), cfg.seeds)
    keys: dict = collections.defaultdict(list)
    ids: dict = {}
    for c in cells:
        r = resolve(c.spec, wd)
        scorer = r.pop("_objects")[0]
        if ids.setdefault(spec_hash(r, 16), c) is not c:
            continue  # a spec two cells share is one run already
        k = shared_training.training_key(r, scorer)
        if k is not None:
            keys[k].append(c)
    shared = {k: v for k, v in keys.items() if len(v) > 1}
    filled = sum(len(v) - 1 for v in shared.values())
    print(f"# Runs that cannot differ, computed once\n\nCommand: `python benchmarks/shared_training.py --workdir "
          f"{args.workdir} --profile {args.profile}{' --time' if args.time else ''}`.\n")
    print(f"Grid of the controls analysis, profile `{args.profile}`, {len(cfg.seeds)} seeds: **{len(ids)} runs**; "
          f"{sum(len(v) for v in keys.values())} of them have a training key; {len(shared)} keys are held by more "
          f"than one run, so **{filled} runs are filled** from another ({filled / len(ids):.1%} of the grid's "
          f"runs).\n")
    print("| runs sharing one training (method, arm) | keys |\n|---|---:|")
    kinds = collections.Counter(" + ".join(sorted(f"{c.method} / {c.arm}" for c in v)) for v in shared.values())
    for kind, n in sorted(kinds.items()):
        print(f"| {kind} | {n} |")
    if not args.time or not shared:
        return
    import pandas as pd

    from tueval.unlearn import unlearn

    a, b = next(iter(shared.values()))[:2]
    with tempfile.TemporaryDirectory() as tmp:
        cw = Workdir(_base.fresh_workdir(Path(args.workdir), Path(tmp) / "wd"))
        t_train, first = _base.timed(lambda: unlearn(a.spec, cw, progress=False, force=True))
        t_fill, second = _base.timed(lambda: unlearn(b.spec, cw, progress=False))
        _, anew = _base.timed(lambda: unlearn(b.spec, cw, progress=False, force=True))
        worst = 0.0
        for p in sorted((second.path / "eval").glob("*.parquet")) + [second.path / "log.parquet"]:
            x, y = pd.read_parquet(p), pd.read_parquet(anew.path / p.relative_to(second.path))
            num = x.select_dtypes("number").columns
            worst = max(worst, float((x[num] - y[num]).abs().max().max()) if len(num) else 0.0)
            assert x.drop(columns=num).equals(y.drop(columns=num)), p.name
    print(f"\nOne pair, `{a.method} / {a.arm}` and `{b.method} / {b.arm}` (seed {a.seed}): the first trained and "
          f"evaluated in {t_train:.1f} s, the second filled in {t_fill:.2f} s "
          f"(`same_training_as` = {second.summary.get('same_training_as') == first.run_id}); the second trained "
          f"anew differs from the filled one by at most {worst:.1e} in any numeric column of its tables and log "
          f"(texts equal).")


if __name__ == "__main__":
    main()

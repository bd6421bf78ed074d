"""Per-example equality of the evaluation before and after the speed-up: the same models evaluated by the base
revision's code and by this checkout's, every table compared column by column (max absolute difference), plus
both against a float64 forward of the same model.

Usage: python benchmarks/eval_equivalence.py --workdir WORKDIR [--quick]   -> benchmarks/eval_equivalence.md
Models: the target and retain models and three unlearned ones trained here (GA at its default lr, NPO at its
default lr, GA at lr 1e-3: collapsed). ``--quick``: target and the collapsed GA model only."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _base  # noqa: E402

TABLES = ("forget", "retain", "real_authors", "world_facts", "mia")
GEN_TOKENS = 64  # the base revision's fixed generation length


def worker(args) -> None:
    """Evaluate one model folder with whatever ``tueval`` is importable; tables to pickles."""
    import inspect

    import torch

    torch.set_num_threads(1)
    from tueval.evaluate import evaluate_in_memory, reference
    from tueval.workdir import Workdir

    wd = Workdir(args.workdir)
    ref = reference(wd)
    m, tok = wd.load_model(args.model)
    kw = {"max_new_tokens": GEN_TOKENS} if "max_new_tokens" in inspect.signature(evaluate_in_memory).parameters \
        else {}
    tables, summary = evaluate_in_memory(m, tok, wd, ref.forget, ref.mia_aucs, **kw)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for k, t in tables.items():
        t.to_pickle(out / f"{k}.pkl")
    (out / "summary.json").write_text(json.dumps(summary, default=str))
    print(json.dumps({"ok": True}))


def f64_sums(wd_root: str, model: str, n: int = 64) -> dict:
    """Summed answer NLLs of the first ``n`` forget examples (answer, paraphrase, perturbed 0) from a float64
    forward: the reference both float32 paths are compared with."""
    import torch

    from tueval.data.collate import collate
    from tueval.evaluate import eval_sets
    from tueval.workdir import Workdir

    wd = Workdir(wd_root)
    m, tok = wd.load_model(model)
    m = m.double().eval()
    ex = eval_sets(wd)["forget"][:n]
    out = {}
    for field in ("answer", "paraphrased_answer", "perturbed_answer:0"):
        b = collate(ex, tok, field)
        with torch.no_grad():
            lg = m(input_ids=b.input_ids, attention_mask=b.attention_mask).logits
        lp = torch.log_softmax(lg[:, :-1], -1).gather(-1, b.input_ids[:, 1:, None]).squeeze(-1)
        out[field] = (-(lp * b.answer_mask[:, 1:]).sum(1)).numpy()
    return out


def compare(a: Path, b: Path) -> dict[str, dict[str, str]]:
    """Per table and column: max |a - b| (numbers, lists of numbers), or the count of differing values (text)."""
    import numpy as np
    import pandas as pd

    res = {}
    for k in TABLES:
        A, B = pd.read_pickle(a / f"{k}.pkl"), pd.read_pickle(b / f"{k}.pkl")
        if list(A.columns) != list(B.columns):
            res[k] = {"columns": f"differ: {list(A.columns)} vs {list(B.columns)}"}
            continue
        cols = {}
        for c in A.columns:
            x, y = A[c], B[c]
            if c == "generated_text":
                cols[c] = f"{sum(p != q for p, q in zip(x, y))} of {len(x)} differ"
                continue
            try:
                X = np.asarray(x.tolist(), dtype=float)
                Y = np.asarray(y.tolist(), dtype=float)
            except (TypeError, ValueError):
                cols[c] = "equal" if list(x) == list(y) else "DIFFER"
                continue
            both_nan = np.isnan(X) & np.isnan(Y)
            d = np.where(both_nan, 0.0, np.abs(X - Y))
            if np.isnan(d).any():
                cols[c] = "NaN mismatch"
                continue
            rel = np.where(both_nan, 0.0, d / np.maximum(1.0, np.abs(X)))
            cols[c] = f"{d.max() if d.size else 0.0:.1e} (rel {rel.max() if d.size else 0.0:.0e})"
        res[k] = cols
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="work")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--base", default=_base.BASE_REV)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    import numpy as np
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    from tueval.spec import RunSpec
    from tueval.unlearn import unlearn
    from tueval.workdir import Workdir

    tmp = Path(tempfile.mkdtemp(prefix="tueval_equiv_"))
    wd_root = _base.fresh_workdir(Path(args.workdir), tmp / "wd")
    wd = Workdir(wd_root)
    trained = {"ga_collapsed": RunSpec(objective="ga", lr=1e-3, save_model=True)}
    if not args.quick:
        trained = {"ga": RunSpec(objective="ga", save_model=True), "npo": RunSpec(objective="npo", save_model=True),
                   **trained}
    models = {"target": "target"} if args.quick else {"target": "target", "retain": "retain"}
    for name, spec in trained.items():
        models[name] = str(unlearn(spec, wd, progress=False).path / "model")
    old_code = _base.base_code(args.base)
    new_code = _base.ROOT
    script = Path(__file__).resolve()
    lines = []
    for name, model in models.items():
        outs = {}
        for label, code in (("old", old_code), ("new", new_code)):
            outs[label] = tmp / f"{name}-{label}"
            _base.run_worker(script, code, ["--workdir", str(wd_root), "--model", model, "--out", str(outs[label])])
        res = compare(outs["old"], outs["new"])
        sa = json.loads((outs["old"] / "summary.json").read_text())
        sb = json.loads((outs["new"] / "summary.json").read_text())
        lines.append(f"\n### {name}\n")
        lines.append("| summary value | old | new | abs diff |\n|---|---:|---:|---:|")
        for k in ("forget_quality", "model_utility", "forget_truth_ratio", "forget_prob", "forget_rougeL"):
            x, y = sa.get(k), sb.get(k)
            d = abs(x - y) if isinstance(x, float) and isinstance(y, float) else "-"
            lines.append(f"| {k} | {x} | {y} | {d if isinstance(d, str) else f'{d:.1e}'} |")
        for k in ("mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus", "privleak"):
            x, y = sa["mia"][k], sb["mia"][k]
            lines.append(f"| {k} | {x} | {y} | {abs(x - y):.1e} |")
        lines.append("\n| table | max abs difference per column |\n|---|---|")
        for t, cols in res.items():
            lines.append(f"| {t} | " + "; ".join(f"{c} {v}" for c, v in cols.items() if c != "example_id") + " |")
        ref = f64_sums(str(wd_root), model)
        fo, fn = pd.read_pickle(outs["old"] / "forget.pkl"), pd.read_pickle(outs["new"] / "forget.pkl")
        n = len(ref["answer"])
        rows = []
        for field, col, pick in (("answer", "gt_loss", None), ("paraphrased_answer", "paraphrased_loss", None),
                                 ("perturbed_answer:0", "perturb_loss", 0)):
            o = fo[col].to_numpy()[:n] if pick is None else np.array([v[pick] for v in fo[col][:n]])
            w = fn[col].to_numpy()[:n] if pick is None else np.array([v[pick] for v in fn[col][:n]])
            rows.append(f"| {field} | {np.abs(o - ref[field]).max():.1e} | {np.abs(w - ref[field]).max():.1e} |")
        lines.append(f"\nSummed NLL of the first {n} forget examples against a float64 forward of the same model "
                     "(the float32 rounding of either path):\n\n| answer field | old - f64 | new - f64 |\n"
                     "|---|---:|---:|\n" + "\n".join(rows))
    head = (f"# Evaluation before vs after the speed-up: per-example equality\n\nCommand: `python "
            f"benchmarks/eval_equivalence.py --workdir {args.workdir}{' --quick' if args.quick else ''}` (old = "
            f"revision {args.base}'s code via PYTHONPATH, new = this checkout; both generate {GEN_TOKENS} tokens; "
            f"machine load {_base.load_average()}).\n\nEvery per-example value of every table (forget, retain, real "
            "authors, world facts, MIA) of the same model, old path vs new path: max |old - new| and, in "
            "parentheses, max |old - new| / max(1, |old|). `generated_text`: how many generations differ (0 = "
            "identical text, so ROUGE is identical too).\n")
    out = Path(__file__).with_name("eval_equivalence.md")
    out.write_text(head + "\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()

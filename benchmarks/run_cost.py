"""Cost model of one default unlearning run, before vs after the speed-up, part by part.

Usage: python benchmarks/run_cost.py --workdir WORKDIR [--repeats 3] [--quick]   -> benchmarks/run_cost.md

Each repeat runs one worker process per code (the base revision's via PYTHONPATH, this checkout's), alternating.
A worker (one torch thread) times: process start and imports, model and data loading, the run's setup, the training
steps of GA and NPO (39 each), each evaluation component on the GA-unlearned model (teacher-forced likelihoods per
set, MIA, generation, ROUGE, summary) and writing the run folder. FLOPs: matmul FLOPs counted by
``torch.utils.flop_counter`` in a separate, untimed pass (``executed``), and the FLOPs of the work itself
(``useful``: every prompt once, every distinct answer prefix of a prompt once, the output layer only where a
token is predicted; for training the executed FLOPs, counted on steps of the first epoch and of a later one).
Achieved GFLOP/s = useful FLOPs / time; MFU = that / the fp32 matmul peak measured in the same worker (best of
repeated 1024^3 and 512^3 products). Medians over the repeats."""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _base  # noqa: E402

SETS = ("forget", "retain", "real_authors", "world_facts")


# ------------------------------------------------------------------------------------------------------ worker
def _params(model) -> tuple[int, int]:
    """(matmul parameters of the transformer body, of the output layer)."""
    head = model.get_output_embeddings().weight.numel()
    body = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "embed" not in n
               and "lm_head" not in n)
    return body, head


def useful_tf_flops(model, tok, examples, fields) -> float:
    """FLOPs of teacher-forcing ``fields`` of ``examples``: each prompt once, and each distinct answer prefix of a
    prompt once (answer variants that begin alike need their common first tokens only once; 2 * params per token;
    the output layer at the last prompt position and at those answer positions)."""
    from tueval.data.collate import answer_variants
    from tueval.data.format import continuation_text, prompt_text

    body, head = _params(model)
    p = sum(len(tok(prompt_text(e.question))["input_ids"]) for e in examples)
    a = 0
    for e in examples:
        keys = [f for f in fields if f != "perturbed"]
        keys += [f"perturbed_answer:{k}" for k in range(len(e.perturbed_answers))] if "perturbed" in fields else []
        prefixes = set()
        for f in keys:
            ids = tok(continuation_text(answer_variants(e, f)[0]), add_special_tokens=False)["input_ids"] + [-1]
            prefixes.update(tuple(ids[:i]) for i in range(1, len(ids) + 1))  # -1: the EOS every variant ends with
        a += len(prefixes)
    return 2.0 * (body * (p + a) + head * (len(examples) + a))


def worker(args) -> None:
    import torch

    torch.set_num_threads(1)
    t_import = time.perf_counter()
    import tueval.evaluation.likelihood as lik
    from tueval.evaluate import eval_sets, holdout_split, reference
    from tueval.evaluation import generation as gen
    from tueval.evaluation.mia import mia_summary
    from tueval.evaluation.summary import summarise
    from tueval.spec import RunSpec
    from tueval.store import RunFolder
    from tueval.training import Trainer
    from tueval.unlearn import resolve
    from tueval.workdir import Workdir

    res: dict = {"imports": time.perf_counter() - t_import}
    new = hasattr(lik, "score_sets")
    wd = Workdir(args.workdir)
    peaks = [_base.peak_gflops()]

    def timed(name, fn):
        t = time.perf_counter()
        out = fn()
        res[name] = time.perf_counter() - t
        return out

    timed("load models (first)", lambda: wd.load_model("target"))
    model, tok = timed("load models (again)", lambda: wd.load_model("target"))
    timed("benchmark + reference", lambda: (wd.benchmark, reference(wd)))
    ref = reference(wd)
    steps = int(args.steps)
    trained = None
    for obj in ("ga", "npo"):
        spec = RunSpec(objective=obj)
        r = resolve(spec, wd)
        objs = r.pop("_objects")
        torch.manual_seed(0)
        trainer = timed(f"run setup ({obj})", lambda: Trainer.build(spec, wd, *objs, "forget10"))
        n = min(steps, trainer.total_steps)
        t = time.perf_counter()
        for s in range(n):
            trainer(s)
        res[f"train {obj} ({n} steps)"] = time.perf_counter() - t
        torch.manual_seed(0)
        fresh = Trainer.build(spec, wd, *resolve(spec, wd).pop("_objects"), "forget10")
        # steps of the first epoch and of a later one are counted apart: later epochs may skip work (the reference
        # forward of NPO, whose values are stored in the first epoch)
        k, spe = min(n, 5), fresh.steps_per_epoch
        fl = _base.count_flops(lambda: [fresh(s) for s in range(k)]) / k * min(n, spe)
        if n > spe:
            for s in range(k, spe):
                fresh(s)
            k2 = min(k, n - spe)
            fl += _base.count_flops(lambda: [fresh(s) for s in range(spe, spe + k2)]) / k2 * (n - spe)
        res[f"flops train {obj} ({n} steps)"] = fl
        res[f"useful train {obj} ({n} steps)"] = fl
        if obj == "ga":
            trained = trainer.model
    peaks.append(_base.peak_gflops())
    # a warm worker has imported ROUGE's stemmer (nltk, about 2 s) at its first run: not a per-run cost
    gen.rouge_recall(["warm up"], ["warm up"])
    m = trained.eval()
    ev = eval_sets(wd)
    hold = wd.benchmark.split(holdout_split(wd))
    fields = {k: ("answer", "perturbed") if k in ("real_authors", "world_facts")
              else ("answer", "paraphrased_answer", "perturbed") for k in SETS}
    tables = {}
    gen_tokens = 64
    if new:
        from tueval.evaluation.likelihood import SetJob, score_sets
        from tueval.evaluation.mia import labelled, scores_table
        from tueval.evaluation.tofu import set_table

        for k in SETS:
            job = {k: SetJob(ev[k], fields[k], ("answer",) if k == "forget" else ())}
            sc = timed(f"TF {k}", lambda: score_sets(m, tok, job))
            res[f"flops TF {k}"] = _base.count_flops(lambda: score_sets(m, tok, job))
            tables[k] = sc[k]
        hj = {"holdout": SetJob(hold, ("answer",), ("answer",))}
        hs = timed("MIA (holdout forward; forget rows shared with TF forget)", lambda: score_sets(m, tok, hj))
        res["flops MIA (holdout forward; forget rows shared with TF forget)"] = _base.count_flops(
            lambda: score_sets(m, tok, hj))
        mia_t = timed("MIA scores", lambda: labelled(scores_table(ev["forget"], tables["forget"]),
                                                      scores_table(hold, hs["holdout"])))
        qs = [e.question for k in SETS for e in ev[k]]
        gens = timed("generation (all sets)", lambda: gen.generate_answers(m, tok, qs, max_new_tokens=gen_tokens))
        res["flops generation (all sets)"] = _base.count_flops(lambda: gen.generate_answers(m, tok, qs,
                                                                                      max_new_tokens=gen_tokens))
        from tueval.evaluation.encoding import encode_prompts

        prompts = encode_prompts(tok, qs)
        new_tokens = gen.greedy_tokens(m, prompts, tok.eos_token_id, tok.pad_token_id, gen_tokens)
        body, head = _params(m)
        # each generated token is one forward of one position; the EOS step (or the last) is counted too
        n_steps = sum(min(len(t) + 1, gen_tokens) for t in new_tokens)
        res["generated tokens"] = sum(len(t) for t in new_tokens)
        res["useful generation (all sets)"] = 2.0 * (body * (sum(map(len, prompts)) + n_steps - len(prompts))
                                                     + head * n_steps)
        at = 0
        gsets = {}
        for k in SETS:
            gsets[k] = gens[at: at + len(ev[k])]
            at += len(ev[k])
        out = timed("tables + ROUGE", lambda: {k: set_table(ev[k], k, tables[k], gsets[k]) for k in SETS})
    else:
        from tueval.evaluation.likelihood import field_stats, perturbed_stats
        from tueval.evaluation.mia import mia_table
        from tueval.evaluation.tofu import evaluate_examples

        for k in SETS:
            def tf(k=k):
                field_stats(m, tok, ev[k], "answer", 64)
                if k not in ("real_authors", "world_facts"):
                    field_stats(m, tok, ev[k], "paraphrased_answer", 64)
                perturbed_stats(m, tok, ev[k], 64)
            timed(f"TF {k}", tf)
            res[f"flops TF {k}"] = _base.count_flops(tf)
        mia_t = timed("MIA (holdout forward; forget rows shared with TF forget)",
                      lambda: mia_table(m, tok, ev["forget"], hold, batch_size=64))
        res["flops MIA (holdout forward; forget rows shared with TF forget)"] = _base.count_flops(
            lambda: mia_table(m, tok, ev["forget"], hold, batch_size=64))
        res["MIA scores"] = 0.0

        def generate():
            return [gen.generate_answers(m, tok, [e.question for e in ev[k]], 64, gen_tokens) for k in SETS]
        gl = timed("generation (all sets)", generate)
        res["flops generation (all sets)"] = _base.count_flops(generate)

        def rouge():
            return [gen.rouge_recall(g, [e.answer for e in ev[k]]) for g, k in zip(gl, SETS)]
        timed("tables + ROUGE", rouge)
        out = {k: evaluate_examples(m, tok, ev[k], k, generate=False) for k in SETS}  # untimed: tables for below
    timed("summary", lambda: summarise(out, ref.forget, mia_summary(mia_t, ref.mia_aucs)))
    folder = RunFolder(Path(tempfile.mkdtemp(prefix="tueval_cost_")) / "run")
    timed("write run folder", lambda: folder.write_tables({**out, "mia": mia_t}))
    peaks.append(_base.peak_gflops())
    for k in SETS:
        res[f"useful TF {k}"] = useful_tf_flops(m, tok, ev[k], fields[k])
    res["useful MIA (holdout forward; forget rows shared with TF forget)"] = (
        useful_tf_flops(m, tok, hold, ("answer",)) + (0.0 if new else useful_tf_flops(m, tok, ev["forget"],
                                                                                        ("answer",))))
    res["peak"] = max(peaks)
    res["peaks"] = peaks
    print(json.dumps(res))


# ------------------------------------------------------------------------------------------------------ driver
def process_start(code: Path) -> float:
    """Seconds to start Python and import the engine (a cold process, as a new worker pays)."""
    import os

    env = {**os.environ, "PYTHONPATH": str(code)}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import tueval.unlearn, tueval.evaluate, transformers"], check=True,
                   cwd=tempfile.gettempdir(), env=env)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="work")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one repeat, 10 training steps per objective")
    ap.add_argument("--base", default=_base.BASE_REV)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--steps", default="39", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    repeats, steps = (1, 10) if args.quick else (args.repeats, 39)
    codes = {"old": _base.base_code(args.base), "new": _base.ROOT}
    tmp = Path(tempfile.mkdtemp(prefix="tueval_cost_wd_"))
    wds = {k: _base.fresh_workdir(Path(args.workdir), tmp / k) for k in codes}
    loads = [_base.load_average()]
    runs: dict[str, list[dict]] = {k: [] for k in codes}
    for _ in range(repeats):
        for k, code in codes.items():
            r = _base.run_worker(Path(__file__).resolve(), code, ["--workdir", str(wds[k]), "--steps", str(steps)])
            r["process start (python + imports)"] = process_start(code)
            runs[k].append(r)
            loads.append(_base.load_average())
    med = {k: {key: statistics.median(r[key] for r in rs) for key in rs[0]
               if isinstance(rs[0][key], (int, float)) and rs[0][key] is not None} for k, rs in runs.items()}
    # both codes generate the same tokens (benchmarks/eval_equivalence.md): the same useful work
    med["old"]["useful generation (all sets)"] = med["new"]["useful generation (all sets)"]
    parts = ["process start (python + imports)", "load models (first)", "load models (again)",
             "benchmark + reference", "run setup (ga)", "run setup (npo)", f"train ga ({steps} steps)",
             f"train npo ({steps} steps)", *(f"TF {k}" for k in SETS),
             "MIA (holdout forward; forget rows shared with TF forget)", "MIA scores", "generation (all sets)",
             "tables + ROUGE", "summary", "write run folder"]
    rows = []
    for p in parts:
        o, n = med["old"].get(p), med["new"].get(p)
        cells = [p, f"{o:.3f}" if o is not None else "-", f"{n:.3f}" if n is not None else "-",
                 f"{n / o:.2f}" if o and n is not None else "-"]
        for k in ("old", "new"):
            ex, us = med[k].get(f"flops {p}"), med[k].get(f"useful {p}")
            t = med[k].get(p)
            if us and t:
                g = us / t / 1e9
                cells += [f"{ex / 1e9:.1f}" if ex else "-", f"{us / 1e9:.1f}", f"{g:.1f}", f"{g / med[k]['peak']:.2f}"]
            else:
                cells += ["-"] * 4
        rows.append("| " + " | ".join(cells) + " |")
    tf = [f"TF {k}" for k in SETS] + ["MIA (holdout forward; forget rows shared with TF forget)"]
    summary = []
    for k in ("old", "new"):
        t = sum(med[k][p] for p in tf)
        us = sum(med[k][f"useful {p}"] for p in tf)
        ev = sum(med[k].get(p, 0.0) for p in [*tf, "MIA scores", "generation (all sets)", "tables + ROUGE",
                                              "summary"])
        summary.append(f"- {k}: teacher-forced passes {t:.2f} s, {us / t / 1e9:.1f} GFLOP/s useful = MFU "
                       f"{us / t / 1e9 / med[k]['peak']:.2f} (peak {med[k]['peak']:.1f} GFLOP/s); whole evaluation "
                       f"{ev:.2f} s; GA training {med[k][f'useful train ga ({steps} steps)'] / med[k][f'train ga ({steps} steps)'] / 1e9:.1f} GFLOP/s"
                       f" = MFU {med[k][f'useful train ga ({steps} steps)'] / med[k][f'train ga ({steps} steps)'] / 1e9 / med[k]['peak']:.2f}, "
                       f"NPO {med[k][f'useful train npo ({steps} steps)'] / med[k][f'train npo ({steps} steps)'] / 1e9 / med[k]['peak']:.2f}")
    gen_new = med["new"].get("useful generation (all sets)")
    if gen_new:
        g = gen_new / med["new"]["generation (all sets)"] / 1e9
        summary.append(f"- new generation: {int(med['new']['generated tokens'])} tokens, {g:.1f} GFLOP/s useful = "
                       f"MFU {g / med['new']['peak']:.2f} (autoregressive: one token per row per forward)")
    head = (f"# Cost model of one default run, old vs new code\n\nCommand: `python benchmarks/run_cost.py "
            f"--workdir {args.workdir}{' --quick' if args.quick else f' --repeats {repeats}'}` (old = revision "
            f"{args.base} via PYTHONPATH, new = this checkout; {repeats} interleaved repeat(s), medians; one torch "
            f"thread; load average during the runs: {', '.join(loads)}).\n\n"
            "Seconds per part of one run; FLOPs in GFLOP (executed: counted matmul FLOPs incl. padding and "
            "recomputed prompts; useful: the work itself); achieved = useful GFLOP/s; MFU = achieved / in-process "
            "fp32 matmul peak. Evaluation parts on the GA-unlearned model, generation capped at 64 new tokens in "
            "both.\n\n| part | old s | new s | new/old | old GFLOP exec | old GFLOP useful | old GFLOP/s | old MFU | "
            "new GFLOP exec | new GFLOP useful | new GFLOP/s | new MFU |\n|---|---:|---:|---:|---:|---:|---:|---:|"
            "---:|---:|---:|---:|\n")
    out = Path(__file__).with_name("run_cost.md")
    out.write_text(head + "\n".join(rows) + "\n\n" + "\n".join(summary) + "\n\nRaw medians: `" +
                   json.dumps({k: {kk: round(v, 4) for kk, v in d.items()} for k, d in med.items()}) + "`\n")
    print(out.read_text())


if __name__ == "__main__":
    main()

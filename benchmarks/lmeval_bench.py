"""Seconds per 1000 lm-eval log-likelihoods on the tiny model: tueval's run_lmeval (in memory, and from a
saved folder) and the ``lm_eval`` command line, in one run, on the three exported MC tasks of the default
benchmark. Writes benchmarks/lmeval.md.

    python benchmarks/lmeval_bench.py [--threads 1] [--repeats 3] [--out benchmarks/lmeval.md]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (also OMP_NUM_THREADS for the CLI)")
    ap.add_argument("--repeats", type=int, default=3, help="timed in-process repeats (the fastest is reported)")
    ap.add_argument("--cli-repeats", type=int, default=2, help="timed CLI runs of each kind (the fastest is reported)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "lmeval.md"))
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from tueval.data.format import continuation_text, prompt_text
    from tueval.data.synthetic import BenchmarkConfig, generate_benchmark
    from tueval.evaluation import lmeval as L
    from tueval.io import write_text
    from tueval.models.load import save_model
    from tueval.models.tiny import TinyModelConfig, build_model
    from tueval.models.tokenizer import train_tokenizer

    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="lmeval_bench."))
    bench = generate_benchmark(BenchmarkConfig())
    task_dir = tmp / "tasks"
    written = L.export_tasks(task_dir, bench)
    tasks = list(written)
    docs = {t: [json.loads(line) for line in (task_dir / f"{t}.jsonl").read_text().splitlines()] for t in tasks}
    n_rows = {t: len(d) for t, d in docs.items()}
    n_ll = sum(len(r["choices"]) for d in docs.values() for r in d)
    texts = [prompt_text(e.question) + continuation_text(e.answer) for e in bench.split("all")]
    tok = train_tokenizer(texts, vocab_size=1024)
    cfg = TinyModelConfig()
    model = build_model(tok, cfg, seed=0).eval()
    n_params = sum(p.numel() for p in model.parameters())
    model_dir = save_model(model, tok, tmp / "model")

    def timed(fn):
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, out

    first_s, ref = timed(lambda: L.run_lmeval(model, tok, tasks=tasks, include_path=task_dir,
                                              batch_size=args.batch_size))
    mem = [timed(lambda: L.run_lmeval(model, tok, tasks=tasks, include_path=task_dir,
                                      batch_size=args.batch_size))[0] for _ in range(args.repeats)]
    folder = [timed(lambda: L.run_lmeval(model_dir, tasks=tasks, include_path=task_dir,
                                         batch_size=args.batch_size))[0] for _ in range(args.repeats)]

    exe = str(Path(sys.executable).parent / "lm_eval")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}

    def cli(limit, out):
        cmd = L.lm_eval_cli_command(model_dir, task_dir, tasks, batch_size=args.batch_size, limit=limit,
                                    output_path=tmp / out, executable=exe)
        s, proc = timed(lambda: subprocess.run(cmd, shell=True, cwd=tmp, env=env, capture_output=True, text=True))
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        return cmd, s, json.loads(sorted((tmp / out).rglob("results_*.json"))[-1].read_text())

    full, one = [], []
    for i in range(args.cli_repeats):  # alternate, so that both kinds see the same background load
        cmd, s_full, cli_json = cli(None, f"cli_out{i}")
        full.append(s_full)
        one.append(cli(1, f"cli_out1_{i}")[1])
    cli_s, cli1_s = min(full), min(one)
    n_ll1 = sum(len(d[0]["choices"]) for d in docs.values())
    same = all(abs(cli_json["results"][t]["acc,none"] - ref[t]["acc"]) < 1e-9 for t in tasks)

    per_k = lambda s: 1000 * s / n_ll  # noqa: E731
    rows = [("tueval run_lmeval, in-memory model (TaskManager cached)", min(mem), per_k),
            ("tueval run_lmeval, saved folder (TaskManager cached)", min(folder), per_k),
            ("tueval run_lmeval, first call in the process (incl. indexing the include_path)", first_s, per_k),
            ("lm_eval CLI, whole process", cli_s, per_k),
            (f"lm_eval CLI, whole process with --limit 1 ({n_ll1} LL: start-up, indexing all tasks, model load)",
             cli1_s, lambda s: float("nan")),
            ("lm_eval CLI, marginal cost (whole minus --limit 1)", cli_s - cli1_s,
             lambda s: 1000 * s / (n_ll - n_ll1))]
    load = os.getloadavg()
    md = [
        "# lm-eval bridge speed",
        "",
        f"Seconds per 1000 log-likelihoods of the tiny model (TinyModelConfig defaults: hidden {cfg.hidden_size}, "
        f"{cfg.num_hidden_layers} layers, vocab {len(tok)}, {n_params / 1e6:.2f} M parameters, untrained, float32) "
        f"on the three exported MC tasks of the default benchmark ("
        + ", ".join(f"{t} {n}" for t, n in n_rows.items())
        + f" rows; {n_ll} log-likelihoods), batch size {args.batch_size}, {args.threads} torch thread(s), CPU.",
        "",
        "Command:",
        "",
        "```",
        f"python benchmarks/lmeval_bench.py --threads {args.threads} --repeats {args.repeats} "
        f"--cli-repeats {args.cli_repeats}",
        "```",
        "",
        "| path | seconds | s / 1000 LL |",
        "|---|---:|---:|",
        *[f"| {name} | {s:.2f} | {rate(s):.3f} |".replace("| nan |", "| - |") for name, s, rate in rows],
        "",
        f"The CLI reported the same acc as run_lmeval on every task: {same}. "
        f"Accuracies (untrained model, chance 0.25): "
        + ", ".join(f"{t} {ref[t]['acc']:.3f}" for t in tasks) + ".",
        "",
        "The lm_eval command that was timed (paths are temporary):",
        "",
        "```",
        cmd,
        "```",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, 1-min load "
        f"average {load0[0]:.1f} at the start and {load[0]:.1f} at the end of the run (other jobs shared the cores, "
        "so treat the numbers as upper bounds), "
        f"torch {torch.__version__}, lm-eval {__import__('lm_eval').__version__}. Each number is the fastest of "
        f"{args.repeats} (in-process) or {args.cli_repeats} (CLI) runs. The CLI process pays seconds to index lm-eval's ~15k built-in task YAMLs; "
        "run_lmeval indexes only the include_path when every task lives there, and caches the TaskManager per process. "
        "The marginal row is the CLI's cost of scoring alone; the in-process rows also include each call's "
        "fixed work (loading the JSON data, building requests).",
        "",
    ]
    write_text(args.out, "\n".join(md))
    shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())

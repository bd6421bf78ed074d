"""Benchmark: per-example gradients with torch.func (vmap over jacrev) vs a Python loop, on the 0.66 M-parameter
tiny Llama (TinyModelConfig defaults, vocabulary 1024, eager attention), for 32 and 200 examples; writes
benchmarks/snr.md.

Run: python benchmarks/snr_bench.py [--out benchmarks/snr.md] [--repeats 3]
Inputs are random token ids (a 12-token prompt and a 20-40-token answer, right-padded), so no tokenizer is trained.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tueval.data.collate import Batch  # noqa: E402
from tueval.io import write_text  # noqa: E402
from tueval.metrics.snr import per_example_grads, per_example_grads_loop, snr_report  # noqa: E402
from tueval.models.tiny import TinyModelConfig, build_model  # noqa: E402

VOCAB, PAD, BOS, EOS = 1024, 0, 1, 2


class _VocabOnly:
    """What build_model reads from a tokenizer: its size and special ids."""

    pad_token_id, bos_token_id, eos_token_id = PAD, BOS, EOS

    def __len__(self) -> int:
        return VOCAB


def random_batch(n: int, seed: int = 0) -> Batch:
    """n examples of random ids: BOS + 11 prompt tokens, a 20-40-token answer (about 25 % GT), EOS, right-padded."""
    g = torch.Generator().manual_seed(seed)
    P = 12
    lens = torch.randint(20, 41, (n,), generator=g)
    T = P + int(lens.max()) + 1
    ids = torch.full((n, T), PAD, dtype=torch.long)
    attn = torch.zeros(n, T, dtype=torch.long)
    body = torch.randint(4, VOCAB, (n, T), generator=g)
    pos = torch.arange(T)[None]
    end = (P + lens + 1)[:, None]
    ids = torch.where(pos < end, body, ids)
    ids[:, 0] = BOS
    ids[torch.arange(n), P + lens] = EOS
    attn[pos.expand(n, T) < end] = 1
    ans = (pos >= P) & (pos < end)
    gt = ans & (torch.rand(n, T, generator=g) < 0.25)
    return Batch(input_ids=ids, attention_mask=attn, labels=torch.where(ans, ids, -100), answer_mask=ans,
                 gt_mask=gt, example_ids=[f"r{i}" for i in range(n)], prompt_lengths=torch.full((n,), P))


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def interleaved(fns: dict[str, object], repeats: int) -> tuple[dict[str, float], dict[str, object]]:
    """Median seconds of each function, run in turn within every repeat (so load drift hits all alike)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    outs: dict[str, object] = {}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            outs[k] = fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}, outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "snr.md"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = TinyModelConfig()
    model = build_model(_VocabOnly(), cfg, seed=0).eval()
    n_params = sum(p.numel() for p in model.parameters())
    load_before = os.getloadavg()
    # warm-up: the first torch.func call pays a one-off set-up cost of a few seconds
    warm = random_batch(2, seed=99)
    per_example_grads(model, warm, warm.answer_mask.float(), chunk_size=2)
    rows = []
    for n in (32, 200):
        batch = random_batch(n, seed=n)
        w = batch.answer_mask.float()
        fns = {"loop": lambda: per_example_grads_loop(model, batch, w),
               8: lambda: per_example_grads(model, batch, w, chunk_size=8),
               32: lambda: per_example_grads(model, batch, w, chunk_size=32)}
        t, outs = interleaved(fns, args.repeats)
        for chunk in (8, 32):
            diff = float((outs[chunk] - outs["loop"]).abs().max())
            rows.append((n, chunk, int(batch.input_ids.shape[1]), t["loop"], t[chunk], diff, os.getloadavg()[0]))
            print(f"n={n} chunk={chunk}: loop {t['loop']:.2f} s, vmap {t[chunk]:.2f} s, max|diff| {diff:.1e}",
                  flush=True)
        del outs
    # the whole report: 4 weightings (signal and noise each) on 200 examples, one forward per example
    ev, ref = random_batch(200, seed=1), random_batch(32, seed=2)
    ans, gt = ev.answer_mask.float(), ev.gt_mask.float()
    weights = {"uniform": ans, "oracle": gt, "soft": ans + 3 * gt, "random_half": ans * (torch.rand(ans.shape) < .5)}
    t_rep = {}
    for params in (None, "last_block"):
        t_rep[params], _ = timed(lambda: snr_report(model, ev, ref, weights, params=params, chunk_size=8), 1)
        print(f"snr_report 200 x 4 weightings, params={params}: {t_rep[params]:.2f} s", flush=True)
    load_after = os.getloadavg()
    lines = [
        "# Per-example gradients: torch.func vs Python loop",
        "",
        f"Command: `python benchmarks/snr_bench.py --repeats {args.repeats} --threads {args.threads}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
        f"(CPU, {args.threads} threads), Python {platform.python_version()}. The machine is shared: 1-minute load "
        f"average {load_before[0]:.1f} before and {load_after[0]:.1f} after the run, so absolute times are inflated "
        "and noisy. The methods are timed in turn within each repeat, so load drift hits them alike; compare "
        "within a row.",
        "",
        f"Model: tiny Llama, TinyModelConfig defaults (hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, "
        f"{cfg.num_attention_heads} heads, intermediate {cfg.intermediate_size}, eager attention), vocabulary "
        f"{VOCAB}, {n_params:,} parameters, all differentiated (one flattened gradient of {n_params:,} floats per "
        "example). Inputs: random ids, 12-token prompt + 20-40-token answer + EOS, right-padded; loss = sum of "
        f"answer-token NLL. Times are the median of {args.repeats} interleaved runs after a warm-up call.",
        "",
        "| examples | T (padded) | vmap chunk | loop (s) | torch.func (s) | speed-up | max abs diff | load after |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, chunk, T, tl, tv, d, la in rows:
        lines.append(f"| {n} | {T} | {chunk} | {tl:.2f} | {tv:.2f} | {tl / tv:.2f}x | {d:.1e} | {la:.1f} |")
    lines += [
        "",
        "The loop runs each example unpadded (its own length); torch.func runs chunks trimmed to the chunk's longest "
        "example, so it also computes some padding positions.",
        "",
        "Full `snr_report` on 200 evaluation examples (+ a 32-example reference batch for u), 4 weightings, i.e. "
        "8 vector-Jacobian products per example after one forward, chunk 8:",
        "",
        "| parameters | seconds |",
        "|---|---:|",
        f"| all ({n_params:,}) | {t_rep[None]:.2f} |",
        f"| last block | {t_rep['last_block']:.2f} |",
        "",
    ]
    write_text(args.out, "\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

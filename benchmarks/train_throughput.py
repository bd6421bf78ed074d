"""Training tokens/s of tueval's train_model against a bare PyTorch loop on the same model and data, one run.

Usage: python benchmarks/train_throughput.py [--epochs 3] [--threads 1] [--profile small|default]
Writes benchmarks/train_throughput.md (goal: tueval >= 0.8 x the bare loop)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", default="small", choices=["small", "default"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from tueval.data.collate import collate
    from tueval.data.format import continuation_text, prompt_text
    from tueval.data.synthetic import SMALL, BenchmarkConfig, generate_benchmark
    from tueval.models.tiny import build_model
    from tueval.models.tokenizer import train_tokenizer
    from tueval.models.train import TrainConfig, train_model
    from tueval.tokens import token_logprobs

    bench = generate_benchmark(SMALL if args.profile == "small" else BenchmarkConfig())
    tok = train_tokenizer([prompt_text(e.question) + continuation_text(e.answer) for e in bench.split("all")], 1024)
    ex = bench.train_examples("target")
    # the default evaluation cadence (fact-token accuracy every 5 epochs) is part of the measured loop
    cfg = TrainConfig(max_epochs=args.epochs, min_epochs=args.epochs, eval_every=5, stop_fact_acc=2.0)

    # tueval
    m = build_model(tok, seed=0)
    res = train_model(m, tok, ex, cfg, progress=False)
    ours = res.tokens_per_second

    # bare loop: same model, data, batch size, optimiser; pre-padded tensors, no tueval code in the loop
    m = build_model(tok, seed=0)
    data = collate(ex, tok)
    opt = torch.optim.AdamW(m.parameters(), lr=cfg.lr, betas=cfg.betas)
    g = torch.Generator().manual_seed(0)
    n, tokens = len(data), 0
    t0 = time.perf_counter()
    m.train()
    for _ in range(args.epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i: i + cfg.batch_size]
            am = data.attention_mask[idx]
            T = int(am.sum(1).max())
            ids, am, lab = data.input_ids[idx, :T], am[:, :T], data.answer_mask[idx, :T]
            lp = token_logprobs(m(input_ids=ids, attention_mask=am).logits, ids)
            loss = -(lp * lab).sum() / lab.sum()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), cfg.clip)
            opt.step()
            tokens += int(am.sum())
    bare = tokens / (time.perf_counter() - t0)
    out = Path(__file__).with_name("train_throughput.md")
    out.write_text(
        "# Training throughput: tueval vs a bare PyTorch loop\n\n"
        f"Command: `python benchmarks/train_throughput.py --epochs {args.epochs} --threads {args.threads} "
        f"--profile {args.profile}` (one run, both measured back to back; 2-core machine).\n\n"
        f"| loop | tokens/s |\n|---|---:|\n| tueval `train_model` | {ours:,.0f} |\n| bare loop | {bare:,.0f} |\n\n"
        f"Ratio tueval / bare = **{ours / bare:.2f}** (goal >= 0.8). {len(ex)} QA pairs, {args.epochs} epochs, "
        f"batch {cfg.batch_size}.\n")
    print(out.read_text())


if __name__ == "__main__":
    main()

"""Several seeds of one arm as one batched model (``torch.func.stack_module_state`` + ``vmap``) against the same
seeds one model at a time: the time of a GA training step's forward and backward, and how far the batched
gradients are from the one-at-a-time ones (the 1e-6 rule of issue #11).

Each seed gets its own forget batch (its own permutation of the forget split, as a run draws it) and its own copy
of the target model's weights, perturbed by one small random step so that the copies differ as the seeds of a run
do after their first update. Both paths see the same padded batches. Timed side by side, interleaved, one torch
thread; the batched path's first call (vmap tracing) is a warm-up.

Usage: python benchmarks/seed_batching.py --workdir WORKDIR [--seeds 7] [--repeats 5] [--batch 16]"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch.func import functional_call, grad, stack_module_state, vmap

from tueval.workdir import Workdir


def _ga_loss(model, params: dict, buffers: dict, ids: torch.Tensor, attn: torch.Tensor, ans: torch.Tensor):
    """GA's forget term on one batch: minus the mean answer-token NLL (as the uniform base weights it)."""
    pos = (attn.cumsum(-1) - 1).clamp_min(0)
    logits = functional_call(model, (params, buffers), (ids,), {"attention_mask": attn, "position_ids": pos}).logits
    lp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    m = ans[:, 1:].float()
    return (lp * m).sum() / m.sum()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--seeds", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()
    torch.set_num_threads(1)
    wd = Workdir(a.workdir)
    base, tok = wd.load_model("target")
    data = wd.collated(wd.forget_split, tok)
    g = torch.Generator().manual_seed(0)
    models = []
    for _ in range(a.seeds):
        m = copy.deepcopy(base)
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 1e-3)
        models.append(m)
    batches = [torch.randperm(len(data), generator=torch.Generator().manual_seed(s))[: a.batch]
               for s in range(a.seeds)]
    ids = torch.stack([data.input_ids[i] for i in batches])
    attn = torch.stack([data.attention_mask[i] for i in batches])
    ans = torch.stack([data.answer_mask[i] for i in batches])
    T = int(attn.sum(-1).max())
    ids, attn, ans = ids[..., :T], attn[..., :T], ans[..., :T]

    params, buffers = stack_module_state(models)
    shell = copy.deepcopy(base)  # a real module, not on meta: transformers builds masks and positions on its device
    batched = vmap(grad(lambda p, b, i, at, an: _ga_loss(shell, p, b, i, at, an)))

    def one_at_a_time():
        out = []
        for k, m in enumerate(models):
            p = {n: q.detach().requires_grad_(True) for n, q in m.named_parameters()}
            loss = _ga_loss(m, p, dict(m.named_buffers()), ids[k], attn[k], ans[k])
            out.append(dict(zip(p, torch.autograd.grad(loss, list(p.values())))))
        return out

    def together():
        return batched(params, buffers, ids, attn, ans)

    sep, bat = one_at_a_time(), together()  # warm-up, and the comparison
    rel, worst = max((float((bat[n][k] - sep[k][n]).norm() / sep[k][n].norm().clamp_min(1e-30)), f"{n}, seed {k}")
                     for k in range(a.seeds) for n in sep[k])
    t = {"sep": [], "bat": []}
    for _ in range(a.repeats):
        for key, fn in (("sep", one_at_a_time), ("bat", together)):
            t0 = time.perf_counter()
            fn()
            t[key].append(time.perf_counter() - t0)
    s, b = statistics.median(t["sep"]), statistics.median(t["bat"])
    print(f"# Seeds as one batched model vs one at a time\n\nCommand: `python benchmarks/seed_batching.py --workdir "
          f"{a.workdir} --seeds {a.seeds} --repeats {a.repeats} --batch {a.batch}` (one torch thread; GA forward "
          f"and backward of one step; {a.seeds} seeds x {a.batch} examples, {T} positions; medians of "
          f"{a.repeats} interleaved repeats)\n")
    print("| seeds | one at a time s | batched s | batched / one at a time | max relative gradient difference |\n"
          "|---:|---:|---:|---:|---:|")
    print(f"| {a.seeds} | {s:.3f} | {b:.3f} | {b / s:.3f} | {rel:.2e} ({worst}) |")


if __name__ == "__main__":
    main()

"""One run over two CPU processes (gloo): the global reductions, and `tueval unlearn --launcher accelerate` under
torchrun giving the one-process run's losses and per-example rows."""
import os
import shutil
import socket
import subprocess
import sys

import pandas as pd
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shard_worker(rank: int, world: int, port: int, q) -> None:
    import torch.distributed as dist

    from tueval import distributed
    from tueval.objectives.base import batch_mean, nll_token_mean, weighted_mean

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    theta = torch.nn.Parameter(torch.randn(6))
    feats = torch.randn(7, 5, 6)  # 7 sequences of 5 tokens: uneven shares (4 + 3)
    w = torch.rand(7, 5) * (torch.rand(7, 5) > 0.3)
    mask = torch.rand(7, 5) > 0.2

    def loss(g):
        rows = g.rows(7)
        x = feats[rows] @ theta  # a per-token quantity with a gradient, [rows, 5]
        out = type("Out", (), {"logp": -x.abs()})()
        batch = type("B", (), {"answer_mask": mask[rows]})()
        return (weighted_mean(x, w[rows], mask[rows], "weight_sum") + weighted_mean(x, w[rows], mask[rows], "tokens")
                + batch_mean(torch.tanh(x.sum(-1))) + nll_token_mean(out, batch))

    single = distributed.ProcessGroup()
    l1 = loss(single)
    (g1,) = torch.autograd.grad(l1, theta)
    group = distributed.ProcessGroup(rank, world)
    distributed._ACTIVE.append(group)
    l2 = loss(group)
    (g2,) = torch.autograd.grad(l2, theta)
    dist.all_reduce(g2)
    g2 /= world  # what DDP does with the gradients
    q.put((rank, float(l1.detach()), float(l2.detach()), float((g1 - g2).abs().max()), float(g1.abs().max())))
    q.close()
    q.join_thread()
    dist.barrier()  # neither rank closes its connections while the other still talks over them
    dist.destroy_process_group()
    # gloo's C++ threads can abort a process at interpreter exit after its work is done (a torch issue, not
    # what is tested here): leave without the finalisers, the results already sent
    os._exit(0)


def test_global_reductions_give_the_one_process_loss_and_gradient():
    ctx = torch.multiprocessing.get_context("spawn")
    q, port = ctx.Queue(), _free_port()
    procs = [ctx.Process(target=_shard_worker, args=(r, 2, port, q)) for r in range(2)]
    for p in procs:
        p.start()
    res = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    for rank, l1, l2, gdiff, gmax in res:
        assert abs(l1 - l2) <= 1e-5 * max(1.0, abs(l1)), (rank, l1, l2)
        assert gmax > 0 and gdiff <= 1e-5 * gmax, (rank, gdiff, gmax)


def test_shards_cover_the_batch_once():
    from tueval.distributed import ProcessGroup

    for n in (1, 7, 16):
        for world in (2, 3):
            rows = [ProcessGroup(r, world).rows(n) for r in range(world)]
            assert sum((list(range(n))[r] for r in rows), []) == list(range(n))


def _copy(wd, dst):
    shutil.copytree(wd.root, dst, ignore=shutil.ignore_patterns("runs", "analyses"))
    return str(dst)


#: one run covering what the split must keep: uneven shares (7 = 4 + 3), a dynamic scorer (a whole-batch forward
#: on every rank), hard top-k weights under a random control (one generator, the whole batch), NPO's reference
#: model and per-sequence mean, and the retain term's token mean
SPECS = {"npo-etw-hard-random_k": ["--objective", "npo", "--scorer", "etw", "--mode", "hard", "--ratio", "0.3",
                                   "--control", "random_k", "--batch-size", "7"]}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_two_processes_train_the_one_process_run(name, small_workdir, tmp_path):
    args = [*SPECS[name], "--epochs", "1", "--seed", "3", "--no-generate", "--json", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    one, two = _copy(small_workdir, tmp_path / "one"), _copy(small_workdir, tmp_path / "two")
    r1 = subprocess.run([sys.executable, "-m", "tueval", "unlearn", *args, "--workdir", one], env=env,
                        capture_output=True, text=True, timeout=600)
    assert r1.returncode == 0, r1.stderr[-2000:]
    r2 = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                         str(_free_port()), "-m", "tueval", "unlearn", *args, "--launcher", "accelerate",
                         "--workdir", two], env=env, capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, r2.stderr[-3000:]
    import json

    a, b = json.loads(r1.stdout), json.loads(r2.stdout)  # rank 1 prints nothing: one JSON object
    assert a["run_id"] == b["run_id"] and not b["cached"]
    assert b["processes"] == 2 and "processes" not in a, "the batch was split over two processes"
    la = pd.read_parquet(os.path.join(one, "runs", a["run_id"], "log.parquet"))
    lb = pd.read_parquet(os.path.join(two, "runs", b["run_id"], "log.parquet"))
    assert len(la) == len(lb) >= 2 and list(la.columns) == list(lb.columns)
    assert abs(la.total.iloc[-1] - lb.total.iloc[-1]) <= 1e-5, (la.total.iloc[-1], lb.total.iloc[-1])
    pd.testing.assert_frame_equal(la, lb, check_exact=False, atol=1e-5, rtol=1e-5)
    fa = pd.read_parquet(os.path.join(one, "runs", a["run_id"], "eval", "forget.parquet"))
    fb = pd.read_parquet(os.path.join(two, "runs", b["run_id"], "eval", "forget.parquet"))
    pd.testing.assert_frame_equal(fa, fb, check_exact=False, atol=1e-4, rtol=1e-4)


def test_objectives_with_per_process_reductions_are_refused_when_split(small_workdir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                        str(_free_port()), "-m", "tueval", "unlearn", "--objective", "tpo", "--epochs", "1",
                        "--launcher", "accelerate", "--workdir", _copy(small_workdir, tmp_path / "wd")],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and "cannot run data parallel" in r.stderr

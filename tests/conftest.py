"""Shared fixtures: a tokenizer trained in-test, a tiny random Llama, toy examples with spans."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
"""Real data copied into the repo (TOFU's eval logs and format files, MIT: see tests/data/README.md)."""
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# one thread: tiny models run faster single-threaded, and results do not depend on the core count
torch.set_num_threads(1)
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
"""This process's pytest-xdist worker name (``gw0``...), None in a plain ``pytest`` run."""
if XDIST_WORKER:
    # one worker per core: the processes a test starts (CLI runs, torchrun, Ray workers) get one thread too
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from tueval.data.schema import Example, Span  # noqa: E402


def _ex(i: int, name: str, city: str, year: str, genre: str, split: str = "forget") -> Example:
    ans = f"{name} was born in {city} in {year}, and writes {genre} novels."
    para = f"Born in {city} in {year}, {name} is known for {genre} novels."
    sp = lambda a: [Span(a.index(v), a.index(v) + len(v), lab) for v, lab in  # noqa: E731
                    ((name, "name"), (city, "birthplace"), (year, "birth_year"), (genre, "genre"))]
    perturbed, pspans = [], []
    for c2, y2 in (("Oslo", "1971"), ("Lima", "1980"), ("Cairo", "1966")):
        p = ans.replace(city, c2).replace(year, y2)
        perturbed.append(p)
        pspans.append([Span(p.index(v), p.index(v) + len(v), lab) for v, lab in
                       ((name, "name"), (c2, "birthplace"), (y2, "birth_year"), (genre, "genre"))])
    return Example(id=f"ex{i}", subject=name, question=f"Where and when was {name} born?", answer=ans,
                   paraphrased_answer=para, perturbed_answers=perturbed, spans=sp(ans), split=split,
                   paraphrased_spans=sp(para), perturbed_spans=pspans)


@pytest.fixture(scope="session")
def toy_examples() -> list[Example]:
    """Eight small examples with name/city/year/genre spans."""
    rows = [("Ana Lopez", "Lisbon", "1950", "mystery"), ("Bo Chen", "Paris", "1962", "horror"),
            ("Cy Oduya", "Lagos", "1977", "fantasy"), ("Di Rossi", "Rome", "1949", "romance"),
            ("Ed Marsh", "Boston", "1983", "thriller"), ("Fa Nguyen", "Hanoi", "1958", "poetry"),
            ("Gil Haas", "Vienna", "1969", "satire"), ("Hu Park", "Seoul", "1990", "drama")]
    return [_ex(i, *r, split="forget" if i < 4 else "retain") for i, r in enumerate(rows)]


@pytest.fixture(scope="session")
def tiny_tokenizer(toy_examples):
    """A byte-level BPE tokenizer (vocab 400) trained on the toy examples."""
    from tueval.data.format import continuation_text, prompt_text
    from tueval.models.tokenizer import train_tokenizer

    texts = []
    for e in toy_examples:
        texts += [prompt_text(e.question) + continuation_text(a) for a in [e.answer, e.paraphrased_answer,
                                                                            *e.perturbed_answers]]
    return train_tokenizer(texts * 3, vocab_size=400)


@pytest.fixture()
def tiny_model(tiny_tokenizer):
    """A freshly initialised tiny Llama (hidden 32, 2 layers, eager attention), seeded, in eval mode."""
    from tueval.models.tiny import TinyModelConfig, build_model

    m = build_model(tiny_tokenizer, TinyModelConfig(hidden_size=32, intermediate_size=64, num_attention_heads=2,
                                                    max_position_embeddings=128), seed=0)
    return m.eval()


@pytest.fixture()
def toy_batch(toy_examples, tiny_tokenizer):
    """The toy examples collated on their answers."""
    from tueval.data.collate import collate

    return collate(toy_examples, tiny_tokenizer)


def shared_once(tmp_path_factory, name: str, build) -> Path:
    """``build(folder)`` run once per test session, however many xdist workers ask: the first worker builds it
    under a file lock in the folder all workers share, the others wait and reuse it. Returns the folder."""
    if not XDIST_WORKER:
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    from filelock import FileLock

    folder = tmp_path_factory.getbasetemp().parent / name
    done = folder.with_name(f"{name}.done")
    with FileLock(str(folder.with_name(f"{name}.lock"))):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that died half-way left it
            build(folder)
            done.touch()
    return folder


def private_copy(tmp_path_factory, src: Path, name: str) -> Path:
    """A copy of the workdir ``src`` (without its runs and analyses) that only this worker writes to."""
    dst = tmp_path_factory.mktemp(name)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("runs", "analyses"), dirs_exist_ok=True)
    return dst


@pytest.fixture(scope="session")
def small_workdir(tmp_path_factory):
    """A workdir prepared once per test session with the small profile (40 people; about 1-2 min on 2 cores).
    Under pytest-xdist one worker prepares it and each worker tests on its own copy, so that runs, evaluations
    and locks in it are never shared between workers.

    Set TUEVAL_TEST_WORKDIR to reuse an already prepared small workdir while developing."""
    from tueval.prepare import prepare
    from tueval.workdir import Workdir

    if os.environ.get("TUEVAL_TEST_WORKDIR"):
        given = Path(os.environ["TUEVAL_TEST_WORKDIR"])
        return Workdir(private_copy(tmp_path_factory, given, "wd_small") if XDIST_WORKER else given)

    def build(folder: Path) -> None:
        prepare(folder, "small", progress=False, quiet=True)

    folder = shared_once(tmp_path_factory, "wd_small", build)
    return Workdir(private_copy(tmp_path_factory, folder, "wd_small") if XDIST_WORKER else folder)


@pytest.fixture()
def cli(capsys, monkeypatch):
    """Runs ``tueval ARGV`` in this process (``tueval.cli.main``), optionally in ``cwd``: a result with returncode,
    stdout and stderr, as ``subprocess.run`` gives (tests about a real process keep the subprocess)."""
    from types import SimpleNamespace

    from tueval.cli import main

    def run(*argv, cwd=None) -> SimpleNamespace:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        rc = main([str(a) for a in argv])
        out = capsys.readouterr()
        return SimpleNamespace(returncode=rc, stdout=out.out, stderr=out.err)

    return run

"""Independently trained target/retain model pairs of one benchmark: pair 0 is the workdir itself, pair k (k >= 1)
a full prepared workdir in ``<workdir>/pairs/<k>/`` with the same benchmark, tokenizer and profile, whose two
models are trained with training seed ``base + k`` (model initialisation and data order; ``base`` is the
workdir's own training seed, 0 by default). A verdict that holds on one pair only says something about that pair's
models; the replication analysis asks every pair.

A workdir prepared from a config (a user's models, no training) cannot train pairs: its other pairs are given as
prepared workdirs of the same benchmark (``paths``)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

from .errors import SpecError, TuevalError
from .workdir import Profile, Workdir

PAIRS_DIR = "pairs"
#: the prepared artefacts a pair copies from pair 0 instead of building them again (same bytes, same hashes)
SHARED_ARTEFACTS = ("benchmark", "tokenizer")


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"[tueval pairs] {msg}", flush=True)


def base_seed(wd: Workdir) -> int:
    """The training seed of the workdir's own models (its profile's ``train.seed``, else 0)."""
    return int((wd.manifest.get("profile", {}).get("train") or {}).get("seed", 0))


def pair_profile(wd: Workdir, k: int) -> Profile:
    """The profile of pair ``k`` of the synthetic workdir ``wd``: its own, with training seed ``base + k``."""
    prof = dict(wd.manifest["profile"])
    prof["train"] = {**(prof.get("train") or {}), "seed": base_seed(wd) + k}
    return Profile(**prof)


def pair_root(wd: Workdir, k: int) -> Path:
    """The folder of pair ``k`` (the workdir itself for 0)."""
    return wd.root if k == 0 else wd.root / PAIRS_DIR / str(k)


def _copy_shared(wd: Workdir, dest: Path) -> None:
    """Copy the benchmark and tokenizer folders of pair 0 into ``dest`` where they are missing."""
    from .io import atomic_dir

    for key in SHARED_ARTEFACTS:
        src = wd.path(key)
        target = dest / wd.manifest["paths"][key]
        if target.exists():
            continue
        with atomic_dir(target) as tmp:
            shutil.copytree(src, tmp, dirs_exist_ok=True)


def prepare_pair(wd: Workdir, k: int, progress: bool = True, quiet: bool = False) -> Workdir:
    """Prepare (or reuse) pair ``k`` >= 1 of the synthetic workdir ``wd``: ``prepare`` on ``pair_root`` with
    ``pair_profile``, the benchmark and tokenizer copied from ``wd`` (pair 0 is never touched)."""
    from .prepare import prepare

    if k < 1:
        raise SpecError(f"pair {k}: pairs to prepare are numbered from 1 (pair 0 is the workdir itself)")
    if wd.is_config:
        raise TuevalError(f"{wd.root} was prepared from a config (its models are given, not trained), so its "
                          "other model pairs cannot be trained: prepare each pair from its own config and pass "
                          "them as `pairs: [WORKDIR, ...]`")
    root = pair_root(wd, k)
    done = Workdir(root)
    if (root / "prepare.json").is_file() and _is_pair_of(done, wd, k):
        return done
    prof = pair_profile(wd, k)
    _log(f"pair {k} (training seed {prof.train['seed']}) -> {root}", quiet)
    root.mkdir(parents=True, exist_ok=True)
    _copy_shared(wd, root)
    return prepare(root, prof, progress=progress, quiet=quiet)


def _is_pair_of(pair: Workdir, wd: Workdir, k: int) -> bool:
    """Is ``pair`` a finished preparation of pair ``k`` of ``wd`` (same profile but the seed, models present)?"""
    try:
        m = pair.manifest
    except TuevalError:
        return False
    if m.get("profile") != pair_profile(wd, k).to_dict():
        return False
    try:
        for key in ("benchmark", "tokenizer", "target", "retain", "ground_truth"):
            pair.path(key)
    except TuevalError:
        return False
    return (pair.eval_dir("retain") / "summary.json").is_file()


def check_same_benchmark(pairs: Sequence[Workdir]) -> None:
    """Every pair holds the benchmark of pair 0 (same benchmark folder name, i.e. hash, and forget split)."""
    ref = pairs[0]
    name, split = Path(ref.manifest["paths"]["benchmark"]).name, ref.forget_split
    for k, p in enumerate(pairs[1:], start=1):
        other = Path(p.manifest["paths"].get("benchmark", "")).name
        if other != name or p.forget_split != split:
            raise TuevalError(f"pair {k} ({p.root}): benchmark {other} (forget {p.forget_split}) is not pair 0's "
                              f"{name} (forget {split}); a pair is another model of the same benchmark")


def pair_workdirs(workdir: Workdir | str | Path, k: int, paths: Sequence[str | Path] | None = None,
                  progress: bool = True, quiet: bool = False, train: bool = True) -> list[Workdir]:
    """The ``k`` model pairs of ``workdir`` (pair 0 first): the given prepared workdirs ``paths`` for pairs 1..,
    else (synthetic workdirs only) pairs trained in ``<workdir>/pairs/<i>/``, preparing what is missing (with
    ``train`` False a missing pair is an error instead)."""
    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    if paths:
        given = [Workdir(p) for p in paths]
        for p in given:
            p.manifest  # a path that is not a prepared workdir fails here, naming it
        pairs = [wd, *given]
        if k and len(pairs) < k:
            raise SpecError(f"pairs: {k} model pairs asked for, but {len(given)} workdirs given besides "
                            f"{wd.root} (pair 0)")
        pairs = pairs[:k] if k else pairs
    else:
        if k < 2:
            raise SpecError(f"pairs: a replication needs at least 2 model pairs, got {k}")
        if wd.is_config:
            raise TuevalError(f"{wd.root} was prepared from a config (its models are given, not trained), so its "
                              "other model pairs cannot be trained here: prepare each pair (same benchmark, "
                              "independently trained target and retain models) with `tueval prepare --config` and "
                              "give them as `pairs: [WORKDIR, ...]` in the analysis config")
        if not train:
            missing = [i for i in range(1, k) if not _is_pair_of(Workdir(pair_root(wd, i)), wd, i)]
            if missing:
                raise TuevalError(f"model pair{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} of "
                                  f"{wd.root} not prepared (nothing is trained without compute): run `tueval "
                                  f"prepare --workdir {wd.root} --pairs {k}`")
        pairs = [wd, *(prepare_pair(wd, i, progress, quiet) for i in range(1, k))]
    check_same_benchmark(pairs)
    return pairs


def eval_summary(wd: Workdir, which: str) -> dict:
    """The cached evaluation summary of the workdir's ``target`` or ``retain`` model ({} when missing)."""
    import json

    try:
        d = json.loads((wd.eval_dir(which) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return d if isinstance(d, dict) else {}


def train_seed(wd: Workdir) -> int | None:
    """The training seed of a workdir's models (None for a workdir prepared from a config)."""
    return None if wd.is_config else base_seed(wd)


def pairs_setting(field: str, v) -> int | list[str]:
    """The ``pairs`` setting: how many model pairs (an integer >= 2: pairs trained in ``<workdir>/pairs/``), or
    the other pairs' prepared workdirs (a non-empty list of paths; pair 0 is the analysed workdir)."""
    from .config.checks import FieldError, integer

    if isinstance(v, (list, tuple)):
        if not v or not all(isinstance(p, (str, Path)) and str(p).strip() for p in v):
            raise FieldError(field, f"must be a number of pairs (>= 2) or a non-empty list of workdir paths, got "
                                    f"{v!r}")
        return [str(p) for p in v]
    return integer(field, v, low=2)

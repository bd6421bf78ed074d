"""A run's trajectory (``RunSpec.eval_every``): the checkpoint evaluation (``tueval.evaluation.checkpoint``)
after every N steps or every epoch, one row per checkpoint, and a final row with the checkpoint metrics read from
the full TOFU evaluation's tables plus its summary values (``full_<key>``).

The rows travel in the run's training checkpoints, so a resumed run's trajectory is the uninterrupted run's; the
run folder gets ``trajectory.parquet`` when the run finishes. Step 0 (the target model) is the same for every run
of a workdir: it is evaluated once and stored in ``WORKDIR/eval/target/``; ``load_trajectory(run_dir, wd)`` puts
it first."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .evaluation.checkpoint import METRICS, PLAN, evaluate_checkpoint
from .io import write_json
from .loop import Hook, LoopState, every_epoch, every_n_steps, isolated

FILE = "trajectory.parquet"
FULL_KEYS = ("forget_quality", "model_utility", "forget_truth_ratio", "forget_prob", "forget_rougeL")
"""Full-evaluation summary values carried by the final row (as ``full_<key>``)."""
#: every column a trajectory file can hold (the final row adds the full evaluation's values as ``full_*``)
COLUMNS = ("step", "epoch", "final", *METRICS, *(f"full_{k}" for k in FULL_KEYS))


def checkpoint_hook(every: str | int, fn, steps: Iterable[int] = ()) -> Hook | None:
    """The loop hook of a trajectory setting: ``'epoch'`` (after every epoch), N (after every N-th step), 0 (none),
    and after each of ``steps``; None when neither is set. It never fires on the last step (the full evaluation
    covers it) and cannot change the run."""
    wanted = frozenset(int(s) for s in steps)
    if not every and not wanted:
        return None
    base = (every_epoch(fn) if every == "epoch" else every_n_steps(int(every), fn, final=False)) if every else None
    return Hook(isolated(fn), lambda s: ((base is not None and base.when(s)) or s.step in wanted) and not s.finished,
                "trajectory")


@dataclass
class Trajectory:
    """The checkpoint rows of one run (step, epoch and the checkpoint metrics)."""

    rows: list[dict] = field(default_factory=list)

    def evaluate(self, state: LoopState, model, tokenizer, sets, retain_forget: pd.DataFrame) -> None:
        """Add the row of the checkpoint after ``state.step`` steps (``sets``: the workdir's evaluation sets)."""
        m = evaluate_checkpoint(model, tokenizer, sets, retain_forget)
        self.rows.append({"step": state.step, "epoch": state.step / state.steps_per_epoch, "final": False, **m})

    def finish(self, state: LoopState, tables: dict[str, pd.DataFrame], summary: dict,
               retain_forget: pd.DataFrame) -> None:
        """Add the final row: the checkpoint metrics read from the full evaluation's tables (the plan's rows) and
        the full evaluation's summary values."""
        from .evaluation.checkpoint import checkpoint_metrics

        m = checkpoint_metrics(tables, retain_forget)
        self.rows.append({"step": state.step, "epoch": state.step / state.steps_per_epoch, "final": True, **m,
                          **{f"full_{k}": summary.get(k) for k in FULL_KEYS}})

    def table(self) -> pd.DataFrame:
        """One row per checkpoint, in step order."""
        cols = ["step", "epoch", "final", *METRICS]
        df = pd.DataFrame(self.rows)
        return df[cols + [c for c in df.columns if c not in cols]] if len(df) else pd.DataFrame(columns=cols)

    def state(self) -> list[dict]:
        """What a training checkpoint stores to resume this trajectory."""
        return [dict(r) for r in self.rows]

    @classmethod
    def from_state(cls, rows: list[dict] | None) -> "Trajectory":
        return cls([dict(r) for r in rows or []])


_TARGET_POINTS: dict = {}


def target_point(wd) -> dict[str, Any]:
    """The checkpoint metrics of the target model (step 0), computed once per workdir."""
    from .evaluate import eval_sets, reference

    key = {"plan": PLAN.to_dict(), "forget_split": wd.forget_split, "target": wd.manifest["paths"]["target"],
           "retain": wd.manifest["paths"]["retain"], "benchmark": wd.manifest["paths"]["benchmark"]}
    key = json.loads(json.dumps(key))  # as stored: tuples come back as lists
    path = wd.eval_dir("target") / f"checkpoint-{wd.forget_split}.json"
    memo = (str(path.resolve()), json.dumps(key, sort_keys=True))
    if memo in _TARGET_POINTS:
        return _TARGET_POINTS[memo]
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("key") == key:
            _TARGET_POINTS[memo] = saved["metrics"]
            return saved["metrics"]
    except (OSError, ValueError, AttributeError):
        pass
    model, tok = wd.load_model("target")
    metrics = evaluate_checkpoint(model, tok, eval_sets(wd), reference(wd).forget)
    write_json(path, {"key": key, "metrics": metrics})
    _TARGET_POINTS[memo] = metrics
    return metrics


def load_trajectory(run_dir: Path, wd=None) -> pd.DataFrame:
    """A finished run's trajectory table, with the step-0 row (the target model) first when ``wd`` is given."""
    from .errors import TuevalError

    path = Path(run_dir) / FILE
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as e:
        raise TuevalError(f"cannot read {path}: {' '.join(str(e).split())} (the run has no trajectory unless its "
                          "spec sets eval_every)") from e
    if wd is None:
        return df
    zero = pd.DataFrame([{"step": 0, "epoch": 0.0, "final": False, **target_point(wd)}])
    out = pd.concat([zero, df], ignore_index=True)
    return out[[*df.columns, *(c for c in out.columns if c not in df.columns)]]  # the run's column order

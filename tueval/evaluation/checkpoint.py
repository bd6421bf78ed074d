"""The checkpoint evaluation of a trajectory: the part of the TOFU evaluation that the matched-forgetting
comparison needs, at a fraction of its cost.

Forget side: the truth ratios of the forget examples (forget quality = KS p-value against the retain model's
truth ratios on the same examples, and the forget truth-ratio aggregate) and the forget probability, on the whole
forget split, so that they equal the full evaluation's. Utility side: ``utility_est``, the harmonic mean of the
likelihood components of model utility (probability and truth ratio, as ``tofu_aggregate`` defines them) of the
plan's utility sets, without generation. No ROUGE, no MIA. ``PLAN`` is the subset in use; its rank agreement with
the full evaluation and its cost are measured in benchmarks/trajectory_eval.md."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..data.schema import Example
from .likelihood import SetJob, score_sets
from .summary import _num
from .tofu import fields_for, set_table
from .tofu_aggregate import harmonic_mean, ks_test, set_aggregates


@dataclass(frozen=True)
class CheckpointPlan:
    """Which examples a checkpoint evaluation scores: the first ``forget_n`` forget examples (None: all) and the
    utility sets whose likelihood components enter ``utility_est`` (of ``retain`` its first ``retain_n``
    examples, of ``real_authors`` and ``world_facts`` all)."""

    forget_n: int | None = None
    retain_n: int = 50
    utility_sets: tuple[str, ...] = ("retain",)

    def to_dict(self) -> dict:
        return asdict(self)

    def select(self, sets: Mapping[str, Sequence[Example]]) -> dict[str, list[Example]]:
        """The examples of each evaluated set under this plan."""
        out = {"forget": list(sets["forget"][: self.forget_n])}
        for s in self.utility_sets:
            out[s] = list(sets[s][: self.retain_n]) if s == "retain" else list(sets[s])
        return out


PLAN = CheckpointPlan()
METRICS = ("forget_quality", "forget_ks_statistic", "forget_truth_ratio", "forget_prob", "utility_est")


def checkpoint_tables(model, tokenizer, sets: Mapping[str, Sequence[Example]], plan: CheckpointPlan = PLAN,
                      batch_size: int = 256) -> dict[str, pd.DataFrame]:
    """Per-example tables (likelihood fields only: no generation, no greedy-token accuracies) of the plan's
    examples."""
    from ..forward import eval_mode

    chosen = plan.select(sets)
    with eval_mode(model):
        scores = score_sets(model, tokenizer, {k: SetJob(v, fields_for(k)) for k, v in chosen.items()},
                            batch_size, accuracy=False)
    return {k: set_table(v, k, scores[k], None) for k, v in chosen.items()}


def checkpoint_metrics(tables: Mapping[str, pd.DataFrame], retain_forget: pd.DataFrame,
                       plan: CheckpointPlan = PLAN) -> dict[str, Any]:
    """The checkpoint metrics from per-example tables (a checkpoint evaluation's, or a full evaluation's: only the
    plan's rows are read, so both give the same numbers); ``retain_forget`` is the retain model's forget table."""
    forget = tables["forget"].iloc[: plan.forget_n] if plan.forget_n is not None else tables["forget"]
    ref = retain_forget.set_index("example_id").loc[forget["example_id"]].reset_index()
    ks = ks_test(forget, ref)
    agg = set_aggregates(forget, "forget")
    comps = {}
    for s in plan.utility_sets:
        t = tables[s].iloc[: plan.retain_n] if s == "retain" else tables[s]
        a = set_aggregates(t, s)
        comps[f"{s}_prob"], comps[f"{s}_truth_ratio"] = a["prob"], a["truth_ratio"]
    return {"forget_quality": _num(ks.pvalue), "forget_ks_statistic": _num(ks.statistic),
            "forget_truth_ratio": _num(agg["truth_ratio"]), "forget_prob": _num(agg["prob"]),
            "utility_est": _num(harmonic_mean(np.array(list(comps.values())))),
            **{f"est_{k}": _num(v) for k, v in comps.items()}}


def evaluate_checkpoint(model, tokenizer, sets: Mapping[str, Sequence[Example]], retain_forget: pd.DataFrame,
                        plan: CheckpointPlan = PLAN, batch_size: int = 256) -> dict[str, Any]:
    """The checkpoint metrics of ``model`` (see module doc)."""
    return checkpoint_metrics(checkpoint_tables(model, tokenizer, sets, plan, batch_size), retain_forget, plan)

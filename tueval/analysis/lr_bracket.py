"""The learning rates of a uniform base that bracket the methods' forget levels: from each rate's trajectories the
range of forget levels it passes through, the rates at which the base forgets no more than the weakest method and
at least as much as the strongest, and the rates to add where a side is not bracketed (``controls/lr_bracket.csv``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import DataError
from .grid import BASE, METHOD_ARM


@dataclass(frozen=True)
class LrBracket:
    """The learning rates of the uniform base that bracket the methods' forget levels: ``low``, the largest at
    which the base forgets no more than the weakest method; ``high``, the smallest at which it forgets at least as
    much as the strongest; ``lrs``, the grid's values from ``low`` to ``high``; ``add``, the values to add to the
    grid (a ``factor`` beyond its ends) where a side is not bracketed."""

    lrs: tuple[float, ...]
    low: float | None
    high: float | None
    add: tuple[float, ...]

    @property
    def bracketed(self) -> bool:
        """Both sides are bracketed by the grid."""
        return self.low is not None and self.high is not None


def final_levels(traj: pd.DataFrame, column: str = "forget_prob", keys: Sequence[str] = ("arm",)) -> pd.DataFrame:
    """Mean over seeds of ``column`` on each run's last checkpoint, per ``keys`` (e.g. ``("arm", "lr")``)."""
    last = traj.sort_values("step", kind="stable").groupby("run_id", sort=False).tail(1)
    return last.groupby(list(keys), sort=True)[column].mean().rename("level").reset_index()


def trajectory_levels(traj: pd.DataFrame, column: str = "forget_prob", more_forgetting: str = "lower",
                      keys: Sequence[str] = ("lr",)) -> pd.DataFrame:
    """Per ``keys``: the mean over runs of each run's least-forgetting (``least``) and most-forgetting (``most``)
    checkpoint level of ``column``: the range a run's trajectory passes through, the range it brackets."""
    sign = _forgetting_sign(more_forgetting)
    s = traj.assign(_s=sign * traj[column])
    per_run = s.groupby([*keys, "run_id"], sort=True)["_s"].agg(["min", "max"])
    out = per_run.groupby(list(keys), sort=True).mean()
    return pd.DataFrame({"least": sign * out["min"], "most": sign * out["max"]}).reset_index()


def _forgetting_sign(more_forgetting: str) -> float:
    """+1 where a higher level is more forgetting, -1 where a lower one is: sign * level grows with forgetting."""
    if more_forgetting not in ("lower", "higher"):
        raise DataError(None, None, "more_forgetting", f"must be 'lower' or 'higher', got {more_forgetting!r}")
    return 1.0 if more_forgetting == "higher" else -1.0


def lr_bracket(base: pd.DataFrame, method_levels, more_forgetting: str = "lower", factor: float = 3.0) -> LrBracket:
    """``LrBracket`` of the base's forget levels per learning rate against the methods' final levels. ``base``:
    columns lr and level (a final level per rate, e.g. ``final_levels(..., keys=('lr',))``), or lr, least and most
    (the range each rate's trajectory passes through, ``trajectory_levels``): a rate reaches down to the weakest
    method when its least-forgetting point forgets no more, and up to the strongest when its most-forgetting point
    forgets at least as much. The default level, the raw forget probability (lower = more forgetting), keeps
    falling with the dose past the collapse point, where forget quality turns back."""
    sign = _forgetting_sign(more_forgetting)
    if not {"least", "most"} <= set(base.columns):  # one final level per rate: it is both ends of the range
        base = base.assign(least=base["level"], most=base["level"])
    b = base.groupby("lr", sort=True)[["least", "most"]].mean()
    lr, least, most = b.index.to_numpy(float), b["least"].to_numpy(float), b["most"].to_numpy(float)
    m = np.asarray(method_levels, dtype=float)
    m = m[np.isfinite(m)]
    if lr.size == 0 or m.size == 0:
        raise DataError(None, None, "level", "need the base's levels at one learning rate or more and at least "
                                             "one finite method level")
    weakest, strongest = (sign * m).min(), (sign * m).max()
    at_least = lr[sign * most >= strongest]
    high = float(at_least.min()) if at_least.size else None
    no_more = lr[(sign * least <= weakest) & (lr <= (high if high is not None else np.inf))]
    low = float(no_more.max()) if no_more.size else None
    lo_, hi_ = low if low is not None else lr.min(), high if high is not None else lr.max()
    add = ((float(lr.min() / factor),) if low is None else ()) + ((float(lr.max() * factor),) if high is None else ())
    return LrBracket(tuple(float(x) for x in lr[(lr >= lo_) & (lr <= hi_)]), low, high, add)


def bracket_table(traj: pd.DataFrame, base: str = BASE, method_arm: str = METHOD_ARM, column: str = "forget_prob",
                  more_forgetting: str = "lower", by: Sequence[str] = ("objective",)) -> pd.DataFrame:
    """Per ``by`` group: ``lr_bracket`` of the range the base's trajectories pass through at each learning rate
    against the final levels of every method of the group (columns ``by``, low, high, lrs, add, bracketed): what a
    report prints to say whether the grid reaches the weakest and the strongest method."""
    rows = []
    for key, g in traj.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        meth = final_levels(g[g["arm"] == method_arm], column, keys=("method",))["level"]
        levels = trajectory_levels(g[g["arm"] == base], column, more_forgetting)
        b = lr_bracket(levels, meth, more_forgetting)
        rows.append({**dict(zip(by, key)), "low": b.low, "high": b.high, "lrs": list(b.lrs), "add": list(b.add),
                     "bracketed": b.bracketed})
    return pd.DataFrame(rows, columns=[*by, "low", "high", "lrs", "add", "bracketed"])


def geometric_lrs(center: float, factor: float = 3.0, below: int = 2, above: int = 1) -> tuple[float, ...]:
    """``center * factor**k`` for k = -below..above, ascending: a learning-rate grid around a default."""
    return tuple(float(center * factor ** k) for k in range(-below, above + 1))

"""``tofu-stats``: TOFU's forget quality and model utility (with bootstrap CIs) from eval logs."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Mapping

import pandas as pd

from ..errors import DataError, SpecError, TuevalError
from .eval_log import SET_KEYS, read_eval_log
from .tofu_aggregate import COMPONENTS
from .summary import summarise

Tables = Mapping[str, pd.DataFrame]
MAX_BOOT = 100_000
"""Most bootstrap resamples: the replicates hold n_boot x examples indices per set in memory at once."""


def _tables(log: str | os.PathLike | Tables) -> tuple[Tables, str]:
    if isinstance(log, Mapping):
        return log, "<tables>"
    return read_eval_log(log), str(log)


def tofu_stats(
    model_log: str | os.PathLike | Tables, retain_log: str | os.PathLike | Tables | None = None,
    n_boot: int = 1000, seed: int = 0, ci: float = 0.95,
) -> dict[str, Any]:
    """TOFU summary of ``model_log`` (forget quality against ``retain_log``'s forget set) with bootstrap CIs.

    Logs are paths to ``eval_log_aggregated.json`` files (TOFU's or ours) or already-read tables.
    """
    check_n_boot(n_boot)
    if not 0.0 < ci < 1.0:
        raise SpecError(f"ci must be between 0 and 1, got {ci}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SpecError(f"--seed must be a non-negative integer, got {seed!r}")
    tables, _ = _tables(model_log)
    retain_forget = None
    if retain_log is not None:
        rtables, rfile = _tables(retain_log)
        if "forget" not in rtables:
            raise DataError(rfile, None, SET_KEYS["forget"], "the retain-model log has no forget set")
        retain_forget = rtables["forget"]
    return summarise(tables, retain_forget, None, n_boot=n_boot, seed=seed, ci=ci)


def check_n_boot(n_boot: Any) -> int:
    """``n_boot`` if it is an integer in 0..MAX_BOOT (0 = no CIs), else SpecError."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or not 0 <= n_boot <= MAX_BOOT:
        raise SpecError(f"--n-boot must be an integer from 0 (no CIs) to {MAX_BOOT:,}, got {n_boot!r}")
    return n_boot


def _fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.3g}" if (x != 0 and abs(x) < 1e-3) else f"{x:.4f}"


def format_tofu_stats(result: Mapping[str, Any]) -> str:
    """A readable table of a ``tofu_stats``/``summarise`` result (value and CI per row)."""
    cis = result.get("ci") or {}
    level = result.get("ci_level", 0.95)
    rows: list[tuple[str, str, float | None]] = [
        ("Forget quality (KS p)", "forget_quality", result.get("forget_quality")),
        ("Model utility (hmean)", "model_utility", result.get("model_utility")),
    ]
    comps = result.get("components") or {}
    rows += [(f"  {k}", k, comps[k]) for k in COMPONENTS if k in comps]
    rows += [(f"  {k}", k, v) for k, v in comps.items() if k not in COMPONENTS]
    rows += [(k, k, result.get(k)) for k in ("forget_prob", "forget_rougeL", "forget_truth_ratio")]
    width = max(len(r[0]) for r in rows) + 2
    ci_head = f"{int(round(level * 100))}% CI" if cis else ""
    lines = [f"{'metric':<{width}}{'value':>12}   {ci_head}", "-" * (width + 12 + 3 + 24)]
    for label, key, val in rows:
        ci = cis.get(key)
        ci_s = f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""
        lines.append(f"{label:<{width}}{_fmt(val):>12}   {ci_s}")
    n = result.get("n_examples") or {}
    if n:
        lines.append("examples: " + ", ".join(f"{k} {v}" for k, v in n.items())
                     + (f"; bootstrap {result.get('n_boot')} resamples" if cis else ""))
    for note in result.get("notes") or []:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tueval tofu-stats``."""
    p = argparse.ArgumentParser(
        prog="tueval tofu-stats",
        description="TOFU forget quality and model utility from TOFU eval logs (eval_log_aggregated.json, "
                    "TOFU's own or written by tueval), with percentile bootstrap CIs over examples.",
        epilog="Forget quality = KS-test p-value between the forget-split truth ratios of MODEL_LOG and "
               "RETAIN_LOG; model utility = harmonic mean of 9 components (prob., ROUGE-L recall and truth "
               "ratio on the retain, real-authors and world-facts sets). Example: tueval tofu-stats "
               "full/eval_log_aggregated.json --retain retain90/eval_log_aggregated.json --json",
    )
    p.add_argument("model_log", metavar="MODEL_LOG", help="eval_log_aggregated.json of the evaluated model")
    p.add_argument("--retain", metavar="RETAIN_LOG", default=None,
                   help="eval_log_aggregated.json of the retain model on the same forget split "
                        "(needed for forget quality)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--n-boot", type=int, default=1000,
                   help=f"bootstrap resamples, 0..{MAX_BOOT} (0 = no CIs; default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--ci", type=float, default=0.95, help="CI level (default 0.95)")
    return p


def tofu_stats_main(argv: list[str] | None = None) -> int:
    """CLI entry of ``tueval tofu-stats``; returns the exit code (2 for a missing or malformed log)."""
    from ..io import describe_os_error

    args = build_parser().parse_args(argv)
    if not 0.0 < args.ci < 1.0:
        print("error: --ci must be between 0 and 1", file=sys.stderr)
        return 2
    try:
        result = tofu_stats(args.model_log, args.retain, n_boot=args.n_boot, seed=args.seed, ci=args.ci)
    except TuevalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {describe_os_error(e)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, allow_nan=False))
    else:
        print(format_tofu_stats(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(tofu_stats_main(sys.argv[1:]))

"""The metric catalogue: every metric the suite reports, declared once (name, direction, label, unit, chance level,
and for run-level metrics where a run's summary.json holds it and, for distances, where the retain model's
evaluation holds its reference value). Verdicts, figures, the reports index and ``tueval check`` read it; adding a
metric means adding one entry here."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from tueval.errors import SpecError

INF = math.inf
FQ_FLOOR = 1e-300  # log10 of a KS p-value that underflowed to 0
#: how a run-level metric is derived from the summary value at its ``summary_key`` (NaN stays NaN)
DERIVE = {"value": lambda x: x, "log10": lambda x: math.log10(max(x, FQ_FLOOR)) if x == x else x,
          "abs": abs}


@dataclass(frozen=True)
class Metric:
    """One metric. ``higher_is_better`` is None when neither direction is better (e.g. a raw MIA AUC); ``chance``
    is a number, the name of the column that holds a per-example chance level, or None (no closed form: use a
    permutation null). Run-level metrics (``family='run'``) name the dotted ``summary_key`` of a run's
    summary.json and how the metric is derived from it (a key of ``DERIVE``); a distance to the retain model names
    the dotted ``reference_key`` of the retain model's evaluation summary and is |derived value - reference value|
    (NaN without a reference). ``tabulated`` says whether the trade-off tables show it."""

    name: str
    family: str
    higher_is_better: bool | None
    label: str
    unit: str = ""
    chance: float | str | None = None
    range: tuple[float, float] = (-INF, INF)
    summary_key: str | None = None
    derive: str = "value"
    reference_key: str | None = None
    tabulated: bool = True
    description: str = ""

    def __post_init__(self):
        if self.derive not in DERIVE:
            raise SpecError(f"metric '{self.name}': derive '{self.derive}' is not one of {', '.join(DERIVE)}")

    def to_dict(self) -> dict:
        """Plain-dict view."""
        return asdict(self)

    def from_summary(self, summary: Mapping[str, Any], reference: Mapping[str, Any] | None = None) -> float:
        """The metric of one run summary (NaN where the summary lacks it); a distance to the retain model needs
        the retain model's evaluation summary ``reference`` (NaN without it)."""
        x = DERIVE[self.derive](finite(_dotted(summary, self.summary_key or self.name)))
        if self.reference_key is None:
            return x
        ref = finite(_dotted(reference, self.reference_key)) if reference is not None else float("nan")
        return abs(x - DERIVE[self.derive](ref))


def _dotted(d: Mapping[str, Any] | None, key: str) -> Any:
    """``d[a][b]...`` for the dotted ``key`` ``a.b...`` (None where a part is missing)."""
    v: Any = d
    for part in key.split("."):
        v = (v or {}).get(part) if isinstance(v, Mapping) else None
    return v


def finite(x: Any) -> float:
    """``x`` as a float, NaN when it is missing, not a number or not finite."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return float("nan")
    return x if math.isfinite(x) else float("nan")


_RUN = [
    Metric("log10_fq", "run", True, "log10 forget quality (KS p)", "log10 p", summary_key="forget_quality",
           derive="log10"),
    Metric("model_utility", "run", True, "model utility (0-1)", "fraction", range=(0.0, 1.0)),
    Metric("forget_prob_gap", "run", False, "|forget probability - retain model's|", "probability", chance=0.0,
           range=(0.0, 1.0), summary_key="forget_prob", reference_key="forget_prob",
           description="distance of the forget-set answer probability to the retain model's: over-forgetting "
                       "(collapse) is as far from the retain model as under-forgetting"),
    Metric("mia_min_k_gap", "run", False, "|Min-K% MIA AUC - retain model's AUC|", "AUC", chance=0.0,
           range=(0.0, 1.0), summary_key="mia.mia_min_k", reference_key="mia.mia_min_k",
           description="distance of the Min-K% membership-inference AUC (forget vs holdout) to the retain "
                       "model's AUC, which is not 0.5"),
    Metric("privleak_abs", "run", False, "|privleak| vs retain model (%)", "%", summary_key="mia.privleak",
           derive="abs"),
    Metric("forget_truth_ratio", "run", True, "forget truth ratio (0-1)", "ratio", range=(0.0, 1.0)),
    Metric("forget_rougeL", "run", False, "forget ROUGE-L recall (0-1)", "recall", range=(0.0, 1.0)),
    Metric("lmeval_forget_mc", "run", False, "lm-eval forget MC accuracy (fraction correct)", "fraction",
           chance=0.25, range=(0.0, 1.0), summary_key="lmeval.tueval_forget_mc"),
    Metric("lmeval_retain_mc", "run", True, "lm-eval retain MC accuracy (fraction correct)", "fraction",
           chance=0.25, range=(0.0, 1.0), summary_key="lmeval.tueval_retain_mc"),
    Metric("lmeval_utility_mc", "run", True, "lm-eval utility MC accuracy (fraction correct)", "fraction",
           chance=0.25, range=(0.0, 1.0), summary_key="lmeval.tueval_utility_mc"),
    # no better direction: a lower forget probability also rewards collapse (the distance is forget_prob_gap)
    Metric("forget_prob", "run", None, "forget probability (0-1)", "probability", range=(0.0, 1.0)),
    # the raw values behind the derived ones: in the long tables, not in the trade-off tables
    Metric("forget_quality", "run", True, "forget quality (KS p)", "p", range=(0.0, 1.0), tabulated=False),
    Metric("mia_min_k", "run", None, "Min-K% MIA AUC", "AUC", chance=0.5, range=(0.0, 1.0),
           summary_key="mia.mia_min_k", tabulated=False),
    Metric("privleak", "run", None, "privleak vs retain model (%)", "%", summary_key="mia.privleak",
           tabulated=False),
]
_ALIGNMENT = [
    Metric("ap", "alignment", True, "AP", chance="ap_chance", range=(0.0, 1.0),
           description="step-wise average precision of GT tokens"),
    Metric("ap_lift", "alignment", True, "AP lift", chance=0.0, range=(-1.0, 1.0),
           description="AP minus its exact chance level E[AP] under random ranking"),
    Metric("ap_lift_norm", "alignment", True, "normalised AP lift", chance=0.0, range=(-INF, 1.0),
           description="(AP - E[AP]) / (1 - E[AP])"),
    Metric("ap_lift_prevalence", "alignment", True, "AP - prevalence", range=(-1.0, 1.0),
           description="AP - prevalence (conventional; biased upwards on short answers, see ap_lift)"),
    Metric("roc_auc", "alignment", True, "ROC-AUC", chance=0.5, range=(0.0, 1.0),
           description="rank-based ROC-AUC (Mann-Whitney, ties count 1/2)"),
    Metric("precision_at_k", "alignment", True, "precision@|GT|", chance="prevalence", range=(0.0, 1.0),
           description="precision of the top-|GT| tokens"),
    Metric("recall_at_k", "alignment", True, "recall@|GT|", chance="prevalence", range=(0.0, 1.0),
           description="recall of the top-|GT| tokens"),
    Metric("f1_at_k", "alignment", True, "F1@|GT|", chance="prevalence", range=(0.0, 1.0),
           description="F1 of the top-|GT| tokens (= R-precision at k=|GT|)"),
    Metric("iou_f1", "alignment", True, "IoU-F1", range=(0.0, 1.0),
           description="ERASER IoU-F1 of top-|GT| runs vs GT spans at tau"),
    Metric("pointing_game", "alignment", True, "pointing game", chance="prevalence", range=(0.0, 1.0),
           description="is the top-1 token a GT token"),
    Metric("relevance_mass", "alignment", True, "relevance mass", chance="prevalence", range=(0.0, 1.0),
           description="share of positive score mass on GT tokens"),
]
_INTERVENTION = [
    Metric("abpc", "intervention", True, "ABPC", "nats/token", chance=0.0,
           description="area between LeRF and MoRF deletion curves of f"),
    Metric("abpc_insertion", "intervention", True, "ABPC (insertion)", "nats/token", chance=0.0,
           description="area between MoRF and LeRF insertion curves"),
    Metric("comprehensiveness", "intervention", True, "comprehensiveness", "nats/token",
           chance="comprehensiveness_random", description="f(x) - f(x without the top-|GT| tokens)"),
    Metric("sufficiency", "intervention", False, "sufficiency", "nats/token", chance="sufficiency_random",
           description="f(x) - f(only the top-|GT| tokens kept)"),
    Metric("aopc_comp", "intervention", True, "AOPC comprehensiveness", "nats/token", chance="aopc_comp_random",
           description="mean comprehensiveness over AOPC bins"),
    Metric("aopc_suff", "intervention", False, "AOPC sufficiency", "nats/token", chance="aopc_suff_random",
           description="mean sufficiency over AOPC bins"),
    Metric("deletion_auc_morf", "intervention", False, "deletion AUC (MoRF)", "nats/token",
           chance="deletion_auc_random", range=(-INF, 0.0), description="mean f over the MoRF curve"),
]
_SNR = [
    Metric("snr_dir", "snr", True, "directional SNR", range=(0.0, INF),
           description="(mean <g_i,u>)^2 / var <g_i,u> along the held-out GT direction"),
    Metric("log_snr_dir", "snr", True, "log directional SNR",
           description="natural log of snr_dir: the scale on which selections are compared"),
    Metric("inv_b_simple", "snr", True, "1/B_simple",
           description="|G|^2 / tr Sigma (unbiased per-example estimators)"),
    Metric("composition_db", "snr", True, "composition ratio", "dB",
           description="10 log10 ||sum s_i||^2 / ||sum n_i||^2"),
    Metric("cos_mean_u", "snr", True, "cos(sum g_i, u)", chance=0.0, range=(-1.0, 1.0),
           description="cosine of the summed gradient to u"),
]
#: every metric, by name
METRICS: dict[str, Metric] = {m.name: m for m in (*_RUN, *_ALIGNMENT, *_INTERVENTION, *_SNR)}


def family(name: str) -> dict[str, Metric]:
    """The metrics of one family (``run``, ``alignment``, ``intervention``, ``snr``), in order."""
    out = {k: m for k, m in METRICS.items() if m.family == name}
    if not out:
        known = ", ".join(dict.fromkeys(m.family for m in METRICS.values()))
        raise SpecError(f"metric family '{name}' is not one of {known}")
    return out


def base_name(metric: str) -> str:
    """The catalogue name inside a reported metric label: ``ap_lift[spans]`` -> ``ap_lift``, ``log snr_dir @k=0.3``
    -> ``log_snr_dir``."""
    return metric.split("[", 1)[0].split(" @", 1)[0].strip().replace(" ", "_")


def get(metric: str) -> Metric | None:
    """The catalogue entry of a reported metric name (``ap_lift[spans]`` finds ``ap_lift``), or None."""
    return METRICS.get(metric) or METRICS.get(base_name(metric))


def direction(metric: str) -> bool | None:
    """True when higher is better, False when lower is better, None when the catalogue gives no better direction
    or does not know ``metric``."""
    m = get(metric)
    return None if m is None or m.higher_is_better is None else bool(m.higher_is_better)


def higher_is_better(metric: str, default: bool = True) -> bool:
    """The better direction of ``metric`` (``default`` for names the catalogue does not know); a catalogued metric
    with no better direction (a raw MIA AUC, the forget probability) raises SpecError instead of guessing."""
    m = get(metric)
    if m is None:
        return default
    if m.higher_is_better is None:
        raise SpecError(f"metric '{metric}' has no better direction ({m.label}); compare a distance to the "
                        "retain model instead, or give the direction explicitly")
    return bool(m.higher_is_better)


def label(metric: str) -> str:
    """The axis/table label of ``metric`` (the name itself when the catalogue does not know it)."""
    m = get(metric)
    return metric if m is None else m.label


def run_metrics(summary: Mapping[str, Any], reference: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Every run-level metric of one run summary, plus the accuracy of each lm-eval task it holds
    (``lmeval_<task>``; NaN where the summary lacks a value). ``reference``: the retain model's evaluation summary
    (``WORKDIR/eval/retain/summary.json``), which the distances to the retain model need (NaN without it)."""
    lm = {lmeval_metric(t): finite(a) for t, a in (summary.get("lmeval") or {}).items()}
    return {**lm, **{k: m.from_summary(summary, reference) for k, m in family("run").items()
                     if not k.startswith("lmeval_")}}


def reference_metrics() -> dict[str, Metric]:
    """The run-level metrics measured as distances to the retain model."""
    return {k: m for k, m in family("run").items() if m.reference_key is not None}


def lmeval_metric(task: str) -> str:
    """The metric name of an lm-eval task's accuracy: ``tueval_forget_mc`` -> ``lmeval_forget_mc``."""
    return "lmeval_" + task.removeprefix("tueval_")

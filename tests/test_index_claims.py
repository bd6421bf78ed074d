"""The index's trade-off sentences: each method against its base at matched forgetting, with the model pairs."""
from __future__ import annotations

import pandas as pd

from tueval.report.claims import matched_claim_lines

COLS = ["objective", "metric", "method", "control", "estimate", "ci_low", "ci_high", "p_adjusted", "decision",
        "n_seeds", "n_not_bracketed"]


def _verdicts(root):
    rows = [("ga", "utility_at_matched_fq", "ga/tokenunlearn-hard0.3", "uniform", 0.02, 0.01, 0.03, 0.03, "better", 7, 0),
            ("ga", "utility_at_matched_fp", "ga/tokenunlearn-hard0.3", "uniform", -0.04, -0.05, -0.03, 0.02, "worse", 7, 0),
            ("ga", "utility_at_matched_fq", "ga/tokenunlearn-hard0.3", "random_k", 0.5, 0.4, 0.6, 0.01, "better", 7, 0),
            ("graddiff", "utility_at_matched_fq", "graddiff/etw-soft", "uniform", 0.0, 0.0, 0.0, 1.0, "not better", 7, 7),
            ("ga", "utility_at_matched_fq", "ga/oracle-hard0.3", "uniform", 0.05, 0.03, 0.07, 0.01, "better", 7, 0)]
    (root / "controls").mkdir(parents=True)
    pd.DataFrame(rows, columns=COLS).to_csv(root / "controls" / "verdicts.csv", index=False)


PAPERS = [("TokenUnlearn", "tokenunlearn"), ("ETW", "etw"), ("TIF", "tif"), ("Oracle", "oracle")]


def test_sentences_state_amount_direction_ci_and_decision(tmp_path):
    _verdicts(tmp_path)
    lines = matched_claim_lines(tmp_path, PAPERS)
    text = "\n".join(lines)
    tu = next(x for x in lines if "TokenUnlearn" in x)
    assert "keeps 0.020 more utility than the uniform base [0.010, 0.030], p_adj 0.03, 7 seeds: **better**" in tu
    assert "keeps 0.040 less utility" in tu and "**worse**" in tu
    assert "random_k" not in text  # only the base comparison makes the sentence
    assert "not comparable" in next(x for x in lines if "ETW" in x)
    assert "TIF" not in text  # not in the verdicts: no sentence
    assert any(x.startswith("- **Oracle**") for x in lines)
    assert "One model pair: the replication analysis did not run." in tu


def test_sentences_say_on_how_many_model_pairs_a_verdict_holds(tmp_path):
    _verdicts(tmp_path)
    (tmp_path / "replication").mkdir()
    pooled = pd.DataFrame([{"objective": "ga", "method": "ga/tokenunlearn-hard0.3", "control": "uniform",
                            "metric": "utility_at_matched_fq", "estimate": 0.015, "ci_low": 0.005, "ci_high": 0.025,
                            "p_adjusted": 0.01, "decision": "better", "n_pairs": 2, "pairs_better": 1}])
    pooled.to_csv(tmp_path / "replication" / "pooled_verdicts.csv", index=False)
    tu = next(x for x in matched_claim_lines(tmp_path, PAPERS) if "TokenUnlearn" in x)
    assert "better on 1/2 model pairs (pooled over pairs: better, +0.015 [0.005, 0.025], p_adj 0.01)" in tu
    assert "not in the replication analysis" in tu  # the fp estimand has no pooled row
    assert "did not run" not in tu


def test_no_matched_verdicts_no_section(tmp_path):
    assert matched_claim_lines(tmp_path, PAPERS) == []


def test_a_not_better_below_alpha_says_which_interval_reaches_zero():
    """'Better' needs the adjusted p below alpha and both intervals clear of 0: a sentence that prints p_adj 0.047
    next to 'not better' says why, and says nothing where p_adj is not below alpha."""
    from tueval.report.claims import phrase

    row = {"metric": "utility_at_matched_fp", "estimate": 0.013, "ci_low": 0.004, "ci_high": 0.021,
           "robust_ci_low": -0.001, "robust_ci_high": 0.03, "p_adjusted": 0.0469, "alpha": 0.05,
           "decision": "not better", "n_seeds": 7, "n_not_bracketed": 0}
    assert "the bootstrap-t interval [-0.001, 0.030] reaches 0" in phrase(row)
    assert "t-interval reaches 0" in phrase({**row, "ci_low": -0.002})
    assert "reaches 0" not in phrase({**row, "p_adjusted": 0.2})
    assert "reaches 0" not in phrase({**row, "decision": "better", "robust_ci_low": 0.001})

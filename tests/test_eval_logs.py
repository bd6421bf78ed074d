"""TOFU eval-log IO and TOFU aggregation checked on TOFU's own published eval logs."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tueval.errors import DataError
from tueval.evaluation.eval_log import SET_KEYS, read_eval_log, write_eval_log
from tueval.evaluation.tofu_aggregate import (COMPONENTS, example_probs, forget_quality, harmonic_mean, truth_ratios,
                                       utility_components)
from tueval.evaluation.summary import SUMMARY_KEYS, summarise
from tueval.evaluation.tofu_stats import format_tofu_stats, tofu_stats, tofu_stats_main

from conftest import DATA

LOGS = DATA / "tofu_eval_logs"
LLAMA_FULL = LOGS / "ft_epoch5_lr1e-05_llama2-7b_full_wd0.json"
LLAMA_RETAIN = LOGS / "ft_epoch5_lr1e-05_llama2-7b_retain90_wd0.json"
PHI_FULL = LOGS / "ft_epoch5_lr2e-05_phi_full_wd0.json"
PHI_RETAIN = LOGS / "ft_epoch5_lr2e-05_phi_retain90_wd0.json"


@pytest.fixture(scope="module")
def llama():
    return read_eval_log(LLAMA_FULL), read_eval_log(LLAMA_RETAIN)


@pytest.fixture(scope="module")
def llama_stats(llama):
    return tofu_stats(*llama, n_boot=300, seed=0)


def test_read_structure(llama):
    full, _ = llama
    assert set(full) == set(SET_KEYS)
    assert {k: len(v) for k, v in full.items()} == {"retain": 300, "forget": 300, "real_authors": 100,
                                                    "world_facts": 117}
    f = full["forget"]
    assert f["example_id"].iloc[:3].tolist() == ["0", "1", "2"]
    assert len(f["average_perturb_loss"].iloc[0]) == 5 and len(full["real_authors"]["perturb_loss"].iloc[0]) == 3
    assert f["avg_gt_loss"].dtype == float


def test_forget_quality_llama_full_vs_retain90(llama, llama_stats):
    full, retain = llama
    fq = llama_stats["forget_quality"]
    # Computed: 1.1e-19 on TOFU's 300 forget10 rows. Published order for the finetuned Llama-2 on forget10:
    # 4.35e-25 (open-unlearning repro, 400 rows; the KS floor falls with n), ~1e-20 in the TOFU paper's plots.
    assert 1e-25 < fq < 1e-15
    assert forget_quality(retain["forget"], retain["forget"]) == 1.0
    assert tofu_stats(retain, retain, n_boot=0)["forget_quality"] == 1.0


def test_model_utility_llama_full(llama_stats):
    # open-unlearning repro table: finetuned Llama-2-7b-chat MU 0.63 (all retain_perturbed rows, OU generation
    # settings); legacy TOFU's first-300-rows logs give 0.627 -> a +-0.012 band around 0.627 covers both.
    assert abs(llama_stats["model_utility"] - 0.627) < 0.012
    comps = llama_stats["components"]
    assert list(comps) == list(COMPONENTS)
    assert all(0.0 <= v <= 1.0 for v in comps.values())
    assert llama_stats["model_utility"] == pytest.approx(float(harmonic_mean(np.array(list(comps.values())))))
    # finetuned model: forget set memorised like the retain set
    assert llama_stats["forget_prob"] > 0.98 and llama_stats["forget_rougeL"] > 0.95


def test_components_by_hand_from_raw_json():
    raw = json.loads(LLAMA_FULL.read_text())
    tables = read_eval_log(LLAMA_FULL)
    ra = raw["eval_real_author_wo_options.json"]
    # real-authors normalised probability, first 5 rows, by hand
    probs = []
    for key in ["0", "1", "2", "3", "4"]:
        t = math.exp(-ra["avg_gt_loss"][key])
        probs.append(t / (t + sum(math.exp(-x) for x in ra["average_perturb_loss"][key])))
    got = example_probs(tables["real_authors"].iloc[:5], normalised=True)
    np.testing.assert_allclose(got, probs, rtol=1e-12)
    # retain truth-ratio component on 4 rows: mean max(0, 1 - wrong/correct)
    rt = raw["eval_log.json"]
    terms = []
    for key in ["0", "1", "2", "3"]:
        wrong = math.exp(-sum(rt["average_perturb_loss"][key]) / len(rt["average_perturb_loss"][key]))
        correct = math.exp(-rt["avg_paraphrased_loss"][key])
        terms.append(max(0.0, 1 - wrong / correct))
    comps = utility_components({"retain": tables["retain"].iloc[:4]})
    assert comps["retain_truth_ratio"] == pytest.approx(np.mean(terms), rel=1e-12)
    # our truth-ratio convention equals TOFU's stored per-example field (float32 in the log)
    np.testing.assert_allclose(truth_ratios(tables["forget"]), tables["forget"]["truth_ratio"], rtol=1e-5)


def test_phi_pair():
    s = tofu_stats(PHI_FULL, PHI_RETAIN, n_boot=0)
    assert 1e-22 < s["forget_quality"] < 1e-12  # computed 5.1e-17
    assert 0.50 < s["model_utility"] < 0.55      # computed 0.522 (legacy phi-1.5 finetune)
    assert all(0.0 <= v <= 1.0 for v in s["components"].values())
    assert s["ci"] == {}


def test_bootstrap_cis(llama_stats, llama):
    ci = llama_stats["ci"]
    for k in ["model_utility", "forget_quality", "forget_truth_ratio", *COMPONENTS]:
        lo, hi = ci[k]
        assert lo <= hi
    lo, hi = ci["model_utility"]
    assert lo < llama_stats["model_utility"] < hi and hi - lo < 0.2
    again = tofu_stats(*llama, n_boot=300, seed=0)
    assert again["ci"] == ci
    # paired resampling of the same forget examples: retain vs itself stays exactly 1
    assert tofu_stats(llama[1], llama[1], n_boot=50)["ci"]["forget_quality"] == [1.0, 1.0]


def test_round_trip_real_log(tmp_path, llama):
    full, retain = llama
    path = write_eval_log(tmp_path / "eval_log_aggregated.json", full)
    back = read_eval_log(path)
    assert set(back) == set(full)
    for name, df in full.items():
        assert back[name].columns.tolist() == df.columns.tolist()
        assert back[name]["example_id"].tolist() == df["example_id"].tolist()
        np.testing.assert_array_equal(back[name]["avg_gt_loss"], df["avg_gt_loss"])
        assert back[name]["average_perturb_loss"].tolist() == df["average_perturb_loss"].tolist()
        assert back[name]["generated_text"].tolist() == df["generated_text"].tolist()
    raw = json.loads(path.read_text())
    assert set(raw) == set(SET_KEYS.values()) and list(raw["eval_log.json"]["avg_gt_loss"])[:2] == ["0", "1"]
    assert tofu_stats(path, LLAMA_RETAIN, n_boot=0)["model_utility"] == tofu_stats(full, retain, n_boot=0)[
        "model_utility"]


def _broken(tmp_path, mutate) -> str:
    raw = json.loads(LLAMA_RETAIN.read_text())
    mutate(raw)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(raw))
    return str(p)


def test_malformed_logs(tmp_path):
    p = _broken(tmp_path, lambda r: r["eval_log.json"].pop("avg_gt_loss"))
    with pytest.raises(DataError, match=r"bad\.json.*eval_log\.json/avg_gt_loss.*missing"):
        read_eval_log(p)
    p = _broken(tmp_path, lambda r: r["eval_log_forget.json"]["rougeL_recall"].__setitem__("7", "high"))
    with pytest.raises(DataError, match=r"row 7.*eval_log_forget\.json/rougeL_recall.*number") as e:
        read_eval_log(p)
    assert e.value.row == "7" and e.value.file == p
    p = _broken(tmp_path, lambda r: r["eval_log.json"]["average_perturb_loss"].__setitem__("3", [1.0, 2.0]))
    with pytest.raises(DataError, match=r"row 3.*average_perturb_loss.*expected 5"):
        read_eval_log(p)
    p = _broken(tmp_path, lambda r: r["eval_log.json"]["truth_ratio"].pop("11"))
    with pytest.raises(DataError, match=r"row 11.*eval_log\.json/truth_ratio"):
        read_eval_log(p)
    (tmp_path / "trunc.json").write_text('{"eval_log.json": {')
    with pytest.raises(DataError, match="trunc.json.*not valid JSON"):
        read_eval_log(tmp_path / "trunc.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="expected a JSON object"):
        read_eval_log(tmp_path / "list.json")


def test_cli_json(capsys):
    rc = tofu_stats_main([str(LLAMA_FULL), "--retain", str(LLAMA_RETAIN), "--json", "--n-boot", "50"])
    assert rc == 0
    out = capsys.readouterr().out.strip()
    obj = json.loads(out)  # exactly one JSON object
    assert set(SUMMARY_KEYS) <= set(obj)
    assert obj["forget_quality"] < 1e-15 and len(obj["components"]) == 9
    assert set(obj["ci"]) >= {"model_utility", "forget_quality"}


def test_cli_table_and_errors(capsys, tmp_path):
    assert tofu_stats_main([str(PHI_FULL), "--retain", str(PHI_RETAIN), "--n-boot", "20"]) == 0
    out = capsys.readouterr().out
    assert "Forget quality" in out and "Model utility" in out and "world_facts_truth_ratio" in out
    bad = _broken(tmp_path, lambda r: r["eval_log.json"].pop("avg_paraphrased_loss"))
    assert tofu_stats_main([bad, "--retain", str(LLAMA_RETAIN), "--json"]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "avg_paraphrased_loss" in err
    assert tofu_stats_main([str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        tofu_stats_main(["--help"])
    assert e.value.code == 0 and "RETAIN_LOG" in capsys.readouterr().out


def test_summarise_keys_and_notes(llama):
    full, retain = llama
    s = summarise(full, retain["forget"])
    t = tofu_stats(full, retain, n_boot=0)
    assert set(s) == set(t) and s["model_utility"] == t["model_utility"]
    partial = summarise({"retain": full["retain"], "forget": full["forget"]}, None)
    assert partial["forget_quality"] is None and len(partial["components"]) == 3
    assert any("missing set" in n for n in partial["notes"]) and any("retain-model" in n for n in partial["notes"])
    # forget quality on mismatched forget splits is flagged
    r95 = read_eval_log(LOGS / "ft_epoch5_lr1e-05_llama2-7b_retain95_wd0.json")
    assert any("differ in size" in n for n in summarise(full, r95["forget"])["notes"])
    assert "Model utility" in format_tofu_stats(s)

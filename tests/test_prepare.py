"""End-to-end foundation on the small profile: prepare, models, ground truths, evaluation, CLI, bad input."""
import json

import pandas as pd
import pytest
import torch

from tueval.errors import ModelLoadError


def test_small_profile_models_memorise_and_forget_quality(small_workdir):
    wd = small_workdir
    m = wd.manifest
    assert m["train"]["target"]["fact_acc"] >= 0.9
    t = json.loads((wd.eval_dir("target") / "summary.json").read_text())
    r = json.loads((wd.eval_dir("retain") / "summary.json").read_text())
    assert r["forget_quality"] == pytest.approx(1.0)
    assert t["forget_quality"] < 0.05, "the target must be distinguishable from the retain model on forget"
    forget_t = pd.read_parquet(wd.eval_dir("target") / "forget.parquet")
    forget_r = pd.read_parquet(wd.eval_dir("retain") / "forget.parquet")
    assert forget_t.fact_acc.mean() > forget_r.fact_acc.mean() + 0.2
    assert t["model_utility"] > 0 and r["model_utility"] > 0
    # TOFU eval log written and readable by the tofu-stats reader
    from tueval.evaluation.tofu_stats import tofu_stats

    s = tofu_stats(wd.eval_dir("target") / "eval_log_aggregated.json",
                   wd.eval_dir("retain") / "eval_log_aggregated.json", n_boot=50)
    assert s["forget_quality"] == pytest.approx(t["forget_quality"], rel=1e-6)


def test_ground_truths_are_stored_and_overlap_reported(small_workdir):
    df = small_workdir.ground_truth_table()
    assert {"gt_span", "gt_counterfactual", "lp_target", "lp_retain"} <= set(df.columns)
    ov = json.loads(small_workdir.path("ground_truth").with_suffix(".json").read_text())
    assert 0 < ov["p_cf_given_span"] < 1 and 0 < ov["retain_top1_on_span_tokens"] < 1
    assert ov["target_top1_on_span_tokens"] > ov["retain_top1_on_span_tokens"]


def test_prepare_is_cached(small_workdir):
    from tueval.prepare import prepare

    before = {p: p.stat().st_mtime_ns for p in (small_workdir.root / "models").rglob("*.safetensors")}
    manifest = small_workdir.manifest_path.stat().st_mtime_ns
    wd = prepare(small_workdir.root, "small", progress=False, quiet=True)
    after = {p: p.stat().st_mtime_ns for p in (wd.root / "models").rglob("*.safetensors")}
    assert before == after, "a second prepare must reuse the cached models"
    assert wd.manifest_path.stat().st_mtime_ns == manifest, "an unchanged manifest must not be rewritten"


def test_training_is_deterministic(toy_examples, tiny_tokenizer):
    from tueval.models.tiny import TinyModelConfig, build_model
    from tueval.models.train import TrainConfig, train_model

    cfg = TinyModelConfig(hidden_size=32, intermediate_size=64, num_attention_heads=2)
    tc = TrainConfig(max_epochs=3, min_epochs=1, eval_every=3, batch_size=4, seed=7)
    a = build_model(tiny_tokenizer, cfg, seed=7)
    b = build_model(tiny_tokenizer, cfg, seed=7)
    train_model(a, tiny_tokenizer, toy_examples, tc, progress=False)
    train_model(b, tiny_tokenizer, toy_examples, tc, progress=False)
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), n


class _Bar:
    """Records what a training progress bar was told: its totals and its count."""

    made: list["_Bar"] = []

    def __init__(self, total=None, **kw):
        self.total, self.n, self.totals = total, 0, [total]
        _Bar.made.append(self)

    def update(self, k=1):
        self.n += k

    def refresh(self):
        self.totals.append(self.total)

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


@pytest.mark.parametrize("cfg,epochs,totals", [
    (dict(max_epochs=20, min_epochs=4, eval_every=2, stop_fact_acc=0.0), 4, [4]),
    (dict(max_epochs=7, min_epochs=3, eval_every=2, stop_fact_acc=1.1), 7, [4, 6, 7]),
    (dict(max_epochs=5, min_epochs=3, eval_every=1, eval_from=3, stop_fact_acc=1.1, schedule="cosine",
          warmup_epochs=1, decay_epochs=4), 5, [3, 4, 5]),
], ids=["stops at the first check", "checks every other epoch", "checks every epoch from min_epochs"])
def test_training_bar_counts_what_it_will_count(cfg, epochs, totals, toy_examples, tiny_tokenizer, monkeypatch):
    """The bar's total is the next epoch at which training may stop, moved on at each check that does not stop
    it: it ends where training ends, never at the max_epochs cap it will not reach."""
    import tueval.models.train as T
    from tueval.models.tiny import TinyModelConfig, build_model

    _Bar.made.clear()
    monkeypatch.setattr(T, "tqdm", _Bar)
    m = build_model(tiny_tokenizer, TinyModelConfig(hidden_size=16, intermediate_size=32, num_attention_heads=2),
                    seed=0)
    res = T.train_model(m, tiny_tokenizer, toy_examples[:2], T.TrainConfig(batch_size=2, **cfg), progress=True)
    (bar,) = _Bar.made
    assert res.epochs == epochs == bar.n == bar.total
    assert bar.totals == totals


def test_counterfactual_mask_from_pandas_columns_raises_no_warning(toy_batch):
    """pandas hands out read-only column arrays; attaching the mask copies them (no non-writable-array warning)."""
    import warnings

    from tueval.data.counterfactual import attach_counterfactual

    ids = toy_batch.example_ids
    df = pd.DataFrame({"example_id": [ids[0], ids[1]], "position": [2, 3], "gt_counterfactual": [True, False]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = attach_counterfactual(toy_batch, df[df.example_id.isin(ids)])
    m = b.extras["gt_counterfactual"]
    assert m[0, 2] and not m[1, 3] and int(m.sum()) == 1


def test_cosine_schedule_warms_up_decays_and_keeps_old_hashes():
    """The cosine schedule: linear warm-up to lr, cosine decay to lr * min_lr_frac at decay_epochs, constant after;
    the constant default is unchanged, and the new fields stay out of the model hash while at their default."""
    import pytest
    from tueval.models.train import TrainConfig

    c = TrainConfig(warmup_epochs=1, decay_epochs=10, schedule="cosine", min_lr_frac=0.05)
    spe = 10
    assert c.lr_factor(0, spe) == pytest.approx(0.1) and c.lr_factor(9, spe) == pytest.approx(1.0)
    assert c.lr_factor(10, spe) == pytest.approx(1.0)
    assert c.lr_factor(55, spe) == pytest.approx(0.05 + 0.95 * 0.5)  # half way through the decay
    assert c.lr_factor(100, spe) == pytest.approx(0.05) and c.lr_factor(500, spe) == pytest.approx(0.05)
    f = [c.lr_factor(s, spe) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(f, f[1:]))
    const = TrainConfig(warmup_epochs=2)
    assert const.lr_factor(9, spe) == pytest.approx(0.5) and const.lr_factor(400, spe) == 1.0
    assert set(TrainConfig().to_dict()) == {"lr", "betas", "weight_decay", "warmup_epochs", "batch_size", "clip",
                                            "max_epochs", "min_epochs", "eval_every", "stop_fact_acc", "seed"}
    assert {"schedule", "decay_epochs"} <= set(c.to_dict())
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="decay_epochs"):
        TrainConfig(schedule="cosine", decay_epochs=1, warmup_epochs=2)


def test_model_folder_without_tokenizer_is_refused(tmp_path, tiny_model, tiny_tokenizer):
    from tueval.models.load import load_model, save_model

    d = save_model(tiny_model, tiny_tokenizer, tmp_path / "m")
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (d / f).unlink(missing_ok=True)
    with pytest.raises(ModelLoadError) as e:
        load_model(d)
    assert str(d) in str(e.value) and "tokenizer" in str(e.value)


def test_evaluate_bad_model_leaves_workdir_untouched(small_workdir, tmp_path, cli):
    root = small_workdir.root
    listing = sorted(str(p) for p in root.rglob("*"))
    bad = tmp_path / "not_a_model"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    r = cli("evaluate", bad, "--workdir", root)
    assert r.returncode == 2
    assert str(bad) in r.stderr and "weights" in r.stderr
    assert sorted(str(p) for p in root.rglob("*")) == listing


def test_cli_evaluate_json_has_tofu_stats_keys(small_workdir, cli):
    r = cli("evaluate", "target", "--workdir", small_workdir.root, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"forget_quality", "model_utility", "components"} <= set(out)
    assert len(out["components"]) == 9


def test_evaluation_cache_is_keyed_by_the_models(small_workdir, tmp_path):
    """A stored evaluation of other models (a re-prepared workdir) is never reused."""
    import json
    import shutil

    from tueval.evaluate import evaluate_model
    from tueval.workdir import Workdir

    root = tmp_path / "wd"
    root.mkdir()
    for p in small_workdir.root.iterdir():
        if p.name == "eval":
            shutil.copytree(p, root / "eval")
        elif p.is_dir():
            (root / p.name).symlink_to(p.resolve())
        else:
            shutil.copy(p, root / p.name)
    wd = Workdir(root)
    evaluate_model(wd, "target", progress=False)  # current: read from the cache
    s = root / "eval" / "target" / "summary.json"
    stale = json.loads(s.read_text())
    assert stale["cache_key"]["model"] == wd.manifest["paths"]["target"]
    stale["cache_key"]["model"] = "models/target-of-an-earlier-prepare"
    stale["model_utility"] = -1.0
    s.write_text(json.dumps(stale))
    fresh = evaluate_model(wd, "target", progress=False)
    assert fresh["cache_key"]["model"] == wd.manifest["paths"]["target"]
    assert fresh["model_utility"] != -1.0 and 0 < fresh["model_utility"] <= 1


def test_demo_index_states_this_runs_time(small_workdir, tmp_path):
    """`tueval demo` writes its timings before the index, so reports/README.md states the time of this run, not the
    previous run's."""
    import json

    from tueval.demo import run_demo
    from tueval.report import fmt_seconds

    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "demo_timings.json").write_text(json.dumps({"profile": "old", "timings": {"total_s": 12345.0}}))
    assert run_demo(small_workdir.root, profile="small", reports=reports, quiet=True, analyses=()) == 0
    t = json.loads((reports / "demo_timings.json").read_text())
    assert t["profile"] == "small" and t["timings"]["total_s"] < 12345
    index = (reports / "README.md").read_text()
    assert f"profile `small`, {fmt_seconds(t['timings']['total_s'])} on" in index and "12345" not in index
    assert fmt_seconds(3684.4) == "3684 s (61 min)" and fmt_seconds(95.2) == "95 s"


def test_import_switches_hub_offline_and_silences_load_bars():
    """Importing tueval (first, as its worker processes do) switches the hub clients offline and turns off
    transformers' per-load progress bar, which would bury tueval's own bars."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    code = ("import os, tueval; from transformers.utils import logging as l; "
            "print(os.environ['HF_HUB_OFFLINE'], os.environ['HF_DATASETS_OFFLINE'], l.is_progress_bar_enabled())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1", "False"]

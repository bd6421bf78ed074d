"""The embedded default, exported as a user would bring it (TOFU-format files, HF model folders) and prepared from a
config, gives the same evaluation rows, the same unlearning rows and the same alignment verdicts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

TABLES = ("forget", "retain", "real_authors", "world_facts", "mia")
CONFIG = """\
benchmark:
  source: tofu
  path: user/data
  forget: forget10
  retain: retain90
models:
  target: user/models/target
  retain: user/models/retain
device: cpu
dtype: float32
special_tokens: include   # the embedded default's masks: its EOS is selectable
"""


def assert_same_rows(a: pd.DataFrame, b: pd.DataFrame, what: str) -> None:
    """Same columns, same example order, numbers equal to 1e-6, everything else equal."""
    assert list(a.columns) == list(b.columns), what
    assert len(a) == len(b), what
    for c in a.columns:
        x, y = a[c].tolist(), b[c].tolist()
        if c == "generated_text":
            x, y = [v[1:] if v is not None else v for v in x], [v[1:] if v is not None else v for v in y]
        try:
            xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        except (TypeError, ValueError):
            assert [str(v) for v in x] == [str(v) for v in y], f"{what}: column {c}"
            continue
        np.testing.assert_allclose(xa, ya, rtol=0, atol=1e-6, err_msg=f"{what}: column {c}")


@pytest.fixture(scope="module")
def exported(small_workdir, tmp_path_factory):
    from tueval.data.export import export_workdir
    from tueval.prepare_config import prepare_from_config

    root = tmp_path_factory.mktemp("equivalence")
    export_workdir(small_workdir, root / "user")
    (root / "my.yaml").write_text(CONFIG)
    return prepare_from_config(root / "my.yaml", root / "w", progress=False, quiet=True)


def test_export_is_tofu_format(small_workdir, exported):
    files = sorted(p.name for p in (exported.root.parent / "user" / "data").iterdir())
    assert files == ["forget10.jsonl", "holdout10.jsonl", "real_authors_perturbed.jsonl", "retain90.jsonl",
                     "retain_perturbed.jsonl", "world_facts_perturbed.jsonl"]
    assert exported.ground_truths == ("spans", "counterfactual"), "the exported rows carry their spans"


def test_evaluate_gives_the_same_rows(small_workdir, exported):
    from tueval.evaluate import evaluate_model

    for which in ("target", "retain"):
        evaluate_model(small_workdir, which, progress=False)
        for t in TABLES:
            a = pd.read_parquet(small_workdir.eval_dir(which) / f"{t}.parquet")
            b = pd.read_parquet(exported.eval_dir(which) / f"{t}.parquet")
            assert_same_rows(a, b, f"{which}/{t}")


def test_one_unlearning_run_gives_the_same_rows(small_workdir, exported):
    from tueval.spec import resolve_spec
    from tueval.unlearn import unlearn

    spec = resolve_spec("npo", scorer="tokenunlearn", mode="hard", ratio=0.3, epochs=1, seed=3)
    a, b = unlearn(spec, small_workdir, progress=False), unlearn(spec, exported, progress=False)
    assert a.run_id != b.run_id, "another workdir: another run folder"
    for t in TABLES:
        assert_same_rows(pd.read_parquet(a.path / "eval" / f"{t}.parquet"),
                         pd.read_parquet(b.path / "eval" / f"{t}.parquet"), f"unlearned/{t}")
    for k in ("forget_quality", "model_utility", "forget_truth_ratio"):
        assert a.summary[k] == pytest.approx(b.summary[k], abs=1e-6)


def test_alignment_gives_the_same_verdicts(small_workdir, exported, tmp_path):
    from tueval.analysis import AnalysisConfig, get_analysis

    out = []
    for wd, name in ((small_workdir, "embedded"), (exported, "config")):
        cfg = AnalysisConfig(workdir=wd, reports=tmp_path / name, seeds=(0, 1), compute=True, profile="quick",
                             scorers=("tokenunlearn", "etw", "random", "oracle"), progress=False)
        out.append(pd.DataFrame(get_analysis("alignment")(cfg)["verdicts"]))
    a, b = out
    assert len(a) > 0
    assert a["decision"].tolist() == b["decision"].tolist()
    np.testing.assert_allclose(a["estimate"].to_numpy(float), b["estimate"].to_numpy(float), atol=1e-6)
    report = (tmp_path / "config" / "alignment" / "report.md").read_text()
    assert "annotated fact spans and the counterfactual ground truth" in report

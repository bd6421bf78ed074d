"""The workdir config (``tueval prepare --config``): the minimal config as written, and bad input: one line naming
the file and the key, nothing written."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tueval.errors import DataError, ModelLoadError, SpecError
from user_setup import MINIMAL_CONFIG, texts_of, tiny_model_folders, tofu_rows, write_jsonl


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory) -> Path:
    """A TOFU user's folder: data/tofu with TOFU's file names, models/full and models/retain90, my.yaml."""
    root = tmp_path_factory.mktemp("tofu_user")
    forget, retain = tofu_rows(3, "forget"), tofu_rows(8, "retain")
    hold = tofu_rows(3, "hold", perturbed=False)
    real = [{k: v for k, v in r.items() if k != "paraphrased_answer"} for r in tofu_rows(3, "real")]
    d = root / "data" / "tofu"
    # perturbed answers of the forget split in TOFU's separate file; the retain subset in retain_perturbed
    write_jsonl(d / "forget10.jsonl", [{"question": r["question"], "answer": r["answer"]} for r in forget])
    write_jsonl(d / "forget10_perturbed.jsonl", forget)
    write_jsonl(d / "retain90.jsonl", [{"question": r["question"], "answer": r["answer"]} for r in retain])
    write_jsonl(d / "retain_perturbed.jsonl", retain[:4])
    write_jsonl(d / "holdout10.jsonl", hold)
    write_jsonl(d / "real_authors_perturbed.jsonl", real)
    tiny_model_folders(root / "models", texts_of(forget + retain + hold + real), names=("full", "retain90"))
    (root / "my.yaml").write_text(MINIMAL_CONFIG)
    return root


def _copy(user_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "user"
    shutil.copytree(user_dir, dst)
    return dst


def test_minimal_config_parses_as_written(user_dir):
    from tueval.config.workdir import load_workdir_config

    cfg = load_workdir_config(user_dir / "my.yaml")
    assert cfg.benchmark.source == "tofu" and cfg.benchmark.forget == "forget10"
    assert cfg.benchmark.path == user_dir / "data" / "tofu", "paths are relative to the config file"
    assert cfg.models.target == user_dir / "models" / "full"
    assert (cfg.device, cfg.dtype, cfg.special_tokens) == ("auto", "float32", "exclude")


def test_minimal_config_prepares_a_workdir(user_dir, tmp_path):
    from tueval.prepare_config import prepare_from_config
    from tueval.workdir import Workdir

    wd = prepare_from_config(user_dir / "my.yaml", tmp_path / "w", progress=False, quiet=True, evaluate=False)
    wd = Workdir(wd.root)
    assert (wd.forget_split, wd.retain_split, wd.holdout_split) == ("forget10", "retain90", "holdout10")
    b = wd.benchmark
    assert len(b.split("forget10")) == 3 and all(e.perturbed_answers for e in b.split("forget10")), \
        "perturbed answers come from forget10_perturbed"
    assert [e.id for e in b.retain_eval()] == [e.id for e in b.split("retain90")[:4]], \
        "the retain evaluation rows are retain_perturbed's, with the retain split's ids"
    assert wd.ground_truths == ("counterfactual",), "no spans in the data: the counterfactual ground truth only"
    assert wd.device == "cpu" and wd.prompt_format.special_tokens == "exclude"
    assert wd.ground_truth_table().gt_counterfactual.dtype == bool
    m = json.loads(wd.manifest_path.read_text())
    assert m["source"]["metrics"] == "tofu" and (wd.root / "config.yaml").is_file()


@pytest.mark.parametrize("text, where, what", [
    (MINIMAL_CONFIG.replace("dtype: float32", "dtype: float32\ncolour: red"), "line 13", "unknown key 'colour'"),
    (MINIMAL_CONFIG.replace("  forget: forget10\n", "  forgett: forget10\n"), "benchmark.forgett",
     "unknown key 'forgett'"),
    (MINIMAL_CONFIG.replace("models:\n  target: models/full     # a local HF folder or a .gguf file\n", "models:\n"),
     "models", "missing key 'models.target'"),
    (MINIMAL_CONFIG.replace("  source: tofu", "  sourc: tofu"), "benchmark", "unknown key 'sourc'"),
    ("models: {target: a, retain: b}\n", "line 1", "missing key 'benchmark'"),
    (MINIMAL_CONFIG.replace("device: auto", "device: tpu"), "device", "must be one of auto, cpu, cuda, mps"),
])
def test_bad_config_keys_name_file_and_key(user_dir, tmp_path, text, where, what):
    from tueval.prepare_config import prepare_from_config

    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(SpecError) as e:
        prepare_from_config(cfg, tmp_path / "w", progress=False, quiet=True, evaluate=False)
    msg = str(e.value)
    assert "\n" not in msg and str(cfg) in msg and where in msg and what in msg
    assert not (tmp_path / "w").exists(), "nothing is written for a bad config"


def test_missing_key_in_forget_split_is_named(user_dir, tmp_path):
    from tueval.prepare_config import prepare_from_config

    u = _copy(user_dir, tmp_path)
    (u / "my.yaml").write_text(MINIMAL_CONFIG.replace("  forget: forget10\n", ""))
    with pytest.raises(SpecError, match=r"benchmark\.forget: missing key"):
        prepare_from_config(u / "my.yaml", tmp_path / "w", progress=False, quiet=True, evaluate=False)
    assert not (tmp_path / "w").exists()


def test_model_folder_without_safetensors(user_dir, tmp_path):
    from tueval.prepare_config import prepare_from_config

    u = _copy(user_dir, tmp_path)
    w = u / "models" / "full" / "model.safetensors"
    w.rename(w.with_name("pytorch_model.bin"))
    with pytest.raises(ModelLoadError) as e:
        prepare_from_config(u / "my.yaml", tmp_path / "w", progress=False, quiet=True, evaluate=False)
    msg = str(e.value)
    assert "models.target" in msg and str(u / "models" / "full") in msg and "pickle" in msg and "\n" not in msg
    assert not (tmp_path / "w").exists()


def test_target_and_retain_with_different_tokenizers(user_dir, tmp_path):
    from tueval.prepare_config import prepare_from_config

    u = _copy(user_dir, tmp_path)
    shutil.rmtree(u / "models" / "retain90")
    tiny_model_folders(u / "models", ["a completely different text corpus"] * 3, names=("retain90",), vocab=280)
    with pytest.raises(ModelLoadError) as e:
        prepare_from_config(u / "my.yaml", tmp_path / "w", progress=False, quiet=True, evaluate=False)
    msg = str(e.value)
    assert "models.retain" in msg and "tokenizers differ" in msg and str(u / "models" / "full") in msg
    assert not (tmp_path / "w").exists()


def test_tokenizer_without_pad_token_pads_with_eos_and_says_so(user_dir, tmp_path, capsys):
    from tueval.prepare_config import prepare_from_config

    u = _copy(user_dir, tmp_path)
    for m in ("full", "retain90"):
        f = u / "models" / m / "tokenizer_config.json"
        d = json.loads(f.read_text())
        d.pop("pad_token", None)
        f.write_text(json.dumps(d))
    wd = prepare_from_config(u / "my.yaml", tmp_path / "w", progress=False, quiet=False, evaluate=False)
    out = capsys.readouterr().out
    assert "no 'pad_token'" in out and "padding with its EOS token" in out and str(u / "models" / "full") in out
    assert any("pad_token" in n for n in wd.manifest["notes"])
    assert wd.tokenizer.pad_token_id == wd.tokenizer.eos_token_id


def test_split_without_perturbed_answers(user_dir, tmp_path):
    from tueval.prepare_config import prepare_from_config

    u = _copy(user_dir, tmp_path)
    (u / "data" / "tofu" / "forget10_perturbed.jsonl").unlink()
    with pytest.raises(DataError) as e:
        prepare_from_config(u / "my.yaml", tmp_path / "w", progress=False, quiet=True, evaluate=False)
    msg = str(e.value)
    assert str(u / "data" / "tofu" / "forget10.jsonl") in msg and "row 1" in msg
    assert "'perturbed_answer'" in msg and "truth ratio" in msg and "forget10_perturbed" in msg
    assert not (tmp_path / "w").exists()


def test_missing_split_file_names_the_key(user_dir, tmp_path):
    from tueval.prepare_config import prepare_from_config

    u = _copy(user_dir, tmp_path)
    (u / "my.yaml").write_text(MINIMAL_CONFIG.replace("retain: retain90\nmodels", "retain: retain95\nmodels"))
    with pytest.raises(DataError, match=r"retain95\.\*.*benchmark\.retain"):
        prepare_from_config(u / "my.yaml", tmp_path / "w", progress=False, quiet=True, evaluate=False)


def test_cli_prepare_config_error_is_one_line(user_dir, tmp_path, cli):
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL_CONFIG + "extra: 1\n")
    r = cli("prepare", "--config", bad, "--workdir", tmp_path / "w")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "unknown key 'extra'" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "w").exists()

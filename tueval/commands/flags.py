"""The command-line words of run settings, shared by the commands and by the messages that name a command: each
RunSpec field's ``tueval unlearn`` flag, the flags that reproduce a spec, a flag's value checked by its field rule,
and the engine flags."""
from __future__ import annotations

import json
import shlex

from ..config.checks import FieldError
from ..errors import SpecError
from ..spec import non_default_fields

#: RunSpec field -> its ``tueval unlearn`` flag (every field has one)
FLAGS = {"objective": "--objective", "scorer": "--scorer", "mode": "--mode", "ratio": "--ratio",
         "control": "--control", "seed": "--seed", "lr": "--lr", "epochs": "--epochs", "batch_size": "--batch-size",
         "weight_decay": "--weight-decay", "clip": "--clip", "normaliser": "--normaliser",
         "forget_split": "--forget-split", "objective_params": "--objective-param", "scorer_params": "--scorer-param",
         "generate": "--no-generate", "save_model": "--save-model", "snapshot_steps": "--snapshot-steps",
         "ckpt_every": "--ckpt-every", "lmeval_tasks": "--lmeval-tasks", "special_tokens": "--special-tokens",
         "preset": "--preset", "max_new_tokens": "--max-new-tokens", "eval_every": "--eval-every",
         "eval_steps": "--eval-steps", "stop_step": "--stop-step"}


def spec_words(spec) -> str:
    """The ``tueval unlearn`` flags that reproduce ``spec``: its objective and every field off its defaults."""
    words = []
    for f, v in non_default_fields(spec).items():
        flag = FLAGS[f]
        if f in ("objective_params", "scorer_params"):
            words += [w for k, x in v.items() for w in (flag, f"{k}={json.dumps(x)}")]
        elif f in ("generate", "save_model"):
            words.append(flag)
        elif f in ("snapshot_steps", "eval_steps", "lmeval_tasks"):
            words += [flag, ",".join(map(str, v))]
        elif v is None:
            words += [flag, "none"]
        else:
            words += [flag, f"{v:g}" if isinstance(v, float) and float(f"{v:g}") == v else str(v)]
    return " ".join(shlex.quote(w) for w in words)


def flag_value(rule, flag: str, value):
    """``value`` of ``flag`` checked by a field rule; a broken rule names the flag."""
    try:
        return rule(flag.lstrip("-").replace("-", "_"), value)
    except FieldError as e:
        raise SpecError(f"{flag}: {e.problem}") from None


def add_engine_flags(p, default: str = "local") -> None:
    """``--engine`` and ``--address``: where unlearning runs are computed."""
    p.add_argument("--engine", default=None, help=f"where unlearning runs are computed: local (a process pool) or "
                   f"ray (each run a Ray task; pip install 'tueval[ray]'); default: the file's `engine`, else "
                   f"{default}")
    p.add_argument("--address", default=None, help="with --engine ray: the Ray cluster to use, e.g. auto or "
                   "ray://HEAD:10001 (default: the file's `address`, else RAY_ADDRESS, else a local cluster); "
                   "resources per run come from the file's `resources` (docs/scale_out.md)")

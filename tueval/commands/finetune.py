"""``tueval finetune``: two model folders (target, retain) from a config's base model, or a dry run's cost."""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import SpecError


def run_finetune(config: str | Path, out: str | Path, max_steps: int | None = None, quiet: bool = False) -> int:
    """Finetune the config's ``models.base`` into ``OUT/target`` and ``OUT/retain``; with ``max_steps`` time a
    few steps of each instead and print the estimated cost of the whole recipe."""
    from ..config.workdir import load_workdir_config
    from ..models.finetune import finetune, finetune_pair
    from ..models.load import gguf_to_folder, is_complete_model_dir, load_model
    from ..prepare_config import _forget_split, check_inputs

    cfg = load_workdir_config(config)
    if cfg.models.base is None:
        raise SpecError(f"{cfg.file}, models.base: missing key (finetune trains from a base model)")
    ck = check_inputs(cfg)
    out = Path(out)
    kind, base = ck.models["base"]
    forget = _forget_split(ck)
    if max_steps is not None:
        from ..data.format import set_format

        for which in ("target", "retain"):
            model, tok = load_model(base, device=ck.device, dtype=cfg.dtype)
            set_format(tok, ck.fmt)
            ex = ck.bench.train_examples(which, forget)
            t = time.perf_counter()
            res = finetune(model, tok, ex, cfg.models.finetune, progress=not quiet, max_steps=max_steps)
            per_step = (time.perf_counter() - t) / max(res.steps, 1)
            s = cfg.models.finetune
            total = -(-len(ex) // (s.batch_size * s.grad_accum)) * s.epochs
            print(f"{which}: {len(ex)} examples, {res.steps} steps in {time.perf_counter() - t:.1f} s "
                  f"({per_step:.2f} s/step, {res.tokens_per_second:,.0f} tokens/s); the recipe's {total} steps: "
                  f"about {per_step * total / 60:.1f} min")
        return 0
    if kind == "gguf":
        conv = out / "base"
        if not is_complete_model_dir(conv):
            gguf_to_folder(base, conv, cfg.dtype)
        base = conv
    res = finetune_pair(base, ck.bench, cfg.models.finetune, {w: out / w for w in ("target", "retain")}, forget,
                        device=ck.device, dtype=cfg.dtype, prompt=ck.fmt, progress=not quiet)
    for w, r in res.items():
        print(f"{w}: {r['epochs']} epochs, answer-token acc {r['acc']:.3f}, {r['seconds']:.0f} s -> {out / w}")
    return 0

"""The benchmark-source contract: settings from a workdir config, the Benchmark it reads, its metric function."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

from ...errors import DataError, SpecError
from ..benchmark import Benchmark, load_stored_splits
from ..format import PromptFormat
from ..schema import Example
from ..tofu import SUFFIXES

GT_SPANS, GT_COUNTERFACTUAL = "spans", "counterfactual"


@dataclass(frozen=True)
class SourceSettings:
    """The ``benchmark`` section of a workdir config, checked: where the files are and which split plays which
    role. ``options`` holds the source's own keys (``BenchmarkSource.options``); ``label`` names the config file
    in errors."""

    source: str
    path: Path | None = None
    forget: str | None = None
    retain: str | None = None
    holdout: str | None = None
    utility: tuple[str, ...] | None = None
    annotations: Path | None = None
    retain_eval_n: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    label: str = "config"

    def key(self, name: str) -> str:
        """``config FILE, benchmark.NAME``: where a key of this section is, for error messages."""
        return f"{self.label}, benchmark.{name}"

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (paths as strings; what the prepared benchmark's hash sees)."""
        return {"source": self.source, "path": None if self.path is None else str(self.path),
                "forget": self.forget, "retain": self.retain, "holdout": self.holdout,
                "utility": None if self.utility is None else list(self.utility),
                "annotations": None if self.annotations is None else str(self.annotations),
                "retain_eval_n": self.retain_eval_n, "options": dict(self.options)}


class BenchmarkSource:
    """One benchmark format. ``read`` turns the files named by the settings into a validated ``Benchmark`` whose
    ``roles`` name the forget, retain and holdout splits, the utility sets and the training sets of the target and
    the retain model. ``metrics`` names the metric set (``tofu``: TOFU's, computed by ``tueval.evaluate``;
    otherwise ``evaluator()`` returns the metric function). ``options`` are the source's own config keys with
    their rules (``rule(key, value) -> value``) and defaults; ``prompt`` is its default prompt format."""

    name: ClassVar[str] = ""
    metrics: ClassVar[str] = "tofu"
    description: ClassVar[str] = ""
    requires_path: ClassVar[bool] = True
    options: ClassVar[Mapping[str, tuple[Callable[[str, Any], Any], Any]]] = {}
    prompt: ClassVar[PromptFormat | None] = None

    def read(self, settings: SourceSettings) -> Benchmark:
        """The benchmark of ``settings`` (raises DataError naming the file, row and field, or SpecError naming
        the config key)."""
        raise NotImplementedError

    def inputs(self, settings: SourceSettings) -> list[Path]:
        """The files ``read`` reads (their contents name the prepared benchmark folder)."""
        out = []
        if settings.path is not None:
            p = Path(settings.path)
            out = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower()
                                                 in SUFFIXES)
        if settings.annotations is not None:
            out.append(Path(settings.annotations))
        return out

    def load_prepared(self, folder: Path, raw: dict) -> Benchmark:
        """A prepared benchmark folder written by ``write_benchmark``."""
        return load_stored_splits(folder, raw, self.name)

    def evaluator(self) -> Callable | None:
        """The metric function of a non-TOFU source: ``f(model, tokenizer, wd, retain_forget, retain_aucs, *,
        generate, batch_size, is_reference) -> (tables, summary)``; None: TOFU's metrics."""
        return None

    def export_lmeval(self, wd, out_dir: Path) -> dict[str, Path] | None:
        """Write this source's own lm-eval tasks to ``out_dir`` (None: the standard forget/retain/utility tasks)."""
        return None

    def ground_truths(self, bench: Benchmark) -> tuple[str, ...]:
        """The ground truths the forget split supports: annotated spans when any forget example has them, and the
        counterfactual ground truth (needs only the two models) always."""
        forget = bench.role("forget") if not bench.derived else None
        if forget is not None and not any(e.spans for e in bench.split(forget)):
            return (GT_COUNTERFACTUAL,)
        return (GT_SPANS, GT_COUNTERFACTUAL)


# ------------------------------------------------------------------------------------------------ helpers
def find_split_file(base: Path, names: Sequence[str], settings: SourceSettings, key: str | None,
                    required: bool = True) -> Path | None:
    """The data file of a split: ``BASE/NAME.{json,jsonl,parquet}`` for the first name that exists (a name may hold
    one ``/``: ``knowmem/forget_qa`` is also looked up as ``knowmem_forget_qa``). A required split that is missing
    raises DataError naming the files looked for and the config key that names the split."""
    tried = []
    for name in names:
        for variant in dict.fromkeys([name, name.replace("/", "_")]):
            for suf in SUFFIXES:
                f = base / f"{variant}{suf}"
                tried.append(f)
                if f.is_file():
                    return f
    if not required:
        return None
    where = f" (set by {settings.key(key)})" if key else ""
    raise DataError(str(base / f"{names[0]}.*"), None, None,
                    f"missing split file{where}; looked for {', '.join(p.name for p in tried[:6])}"
                    + (" ..." if len(tried) > 6 else ""))


def require_folder(settings: SourceSettings) -> Path:
    """The settings' data folder (must exist and be a folder)."""
    if settings.path is None:
        raise SpecError(f"{settings.key('path')}: missing key (the folder of the {settings.source} files)")
    p = Path(settings.path)
    if not p.is_dir():
        raise SpecError(f"{settings.key('path')}: {p} is not a folder")
    return p


_WS = re.compile(r"\S+")


def chunk_words(text: str, n_words: int) -> list[str]:
    """``text`` cut at word boundaries into pieces of at most ``n_words`` words (the original spacing kept)."""
    starts = [m.start() for m in _WS.finditer(text)]
    if not starts:
        return []
    cuts = starts[::n_words] + [len(text)]
    return [text[a:b].strip() for a, b in zip(cuts, cuts[1:]) if text[a:b].strip()]


def raw_examples(file: Path, split: str, n_words: int, field_name: str = "text") -> list[Example]:
    """Raw-text Examples (empty question) from a file of ``{text}`` rows, each text cut into ``n_words`` chunks."""
    from ..tofu import read_records

    out = []
    for i, rec in enumerate(read_records(file), start=1):
        text = rec.get(field_name)
        if not isinstance(text, str) or not text.strip():
            raise DataError(str(file), i, field_name, "missing or empty text (expected a non-empty string)")
        rid = rec.get("id", f"{file.stem}_{i}")
        for j, chunk in enumerate(chunk_words(text, n_words)):
            out.append(Example(id=f"{rid}" if j == 0 else f"{rid}#{j}", subject=str(rid), question="",
                               answer=chunk, split=split))
    return out


def qa_examples(file: Path, split: str, fields: tuple[str, str] = ("question", "answer")) -> list[Example]:
    """Question/answer Examples from a file of ``{question, answer}`` rows (other fields ignored)."""
    from ..tofu import read_records

    out = []
    for i, rec in enumerate(read_records(file), start=1):
        vals = []
        for f in fields:
            v = rec.get(f)
            if not isinstance(v, str) or not v.strip():
                raise DataError(str(file), i, f, "missing or empty (expected a non-empty string)")
            vals.append(v)
        rid = rec.get("id", f"{file.stem}_{i}")
        out.append(Example(id=str(rid), subject=str(rid), question=vals[0], answer=vals[1], split=split))
    return out

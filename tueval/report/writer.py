"""Report folders: ``reports/<name>/report.md`` plus a CSV of every number plotted and figures as PNG and PDF."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..io import atomic_path, write_csv, write_text


def fmt(x, digits: int = 3) -> str:
    """A number for a markdown table (scientific below 1e-3; 'n/a' for missing)."""
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return str(x)
    if xf != xf:
        return "n/a"
    if xf != 0 and (abs(xf) < 1e-3 or abs(xf) >= 1e5):
        return f"{xf:.{max(digits - 1, 1)}e}"
    return f"{xf:.{digits}g}" if abs(xf) >= 1 else f"{xf:.{digits}f}"


def fmt_seconds(seconds: float) -> str:
    """A duration in words for a report: '122 s', or '3684 s (61 min)' from two minutes on."""
    s = float(seconds)
    return f"{s:.0f} s" + (f" ({s / 60:.0f} min)" if s >= 120 else "")


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """``df`` as a GitHub markdown table with formatted numbers."""
    if df.empty:
        return "_(no rows)_\n"
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(fmt(r[c], digits) if isinstance(r[c], (float, int)) and not isinstance(
            r[c], bool) else str(r[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


#: the columns of a verdict table in a report
VERDICT_COLUMNS = ("family", "metric", "method", "control", "estimate", "ci_low", "ci_high", "effect_size",
                   "p_value", "p_adjusted", "family_size", "n_seeds", "n_examples", "decision")
#: the same without the family and example columns (the seed-paired trade-off tables)
PAIRED_COLUMNS = tuple(c for c in VERDICT_COLUMNS if c not in ("family", "n_examples"))


def verdict_markdown(verdicts, digits: int = 3, columns: Sequence[str] = VERDICT_COLUMNS) -> str:
    """A verdict table (a frame or a list of Verdicts) in markdown, with the ``columns`` it holds."""
    from ..stats import verdicts_to_frame

    df = verdicts if isinstance(verdicts, pd.DataFrame) else verdicts_to_frame(list(verdicts))
    if df.empty:
        return "_(no verdicts)_\n"
    return markdown_table(df[[c for c in columns if c in df.columns]], digits)


def settings_md(settings: dict) -> str:
    """A settings dict as a markdown bullet list."""
    return "\n".join(f"- **{k}**: {v}" for k, v in settings.items()) + "\n"


def regen_command(name: str, cfg) -> str:
    """The CLI command that regenerates analysis ``name``'s report under the settings ``cfg``
    (an AnalysisConfig); seeds that are not 0..n-1 are noted after the command."""
    seeds = list(cfg.seeds)
    cmd = (f"tueval analyze {name} --workdir {cfg.workdir.root} --reports {cfg.reports} --profile {cfg.profile} "
           f"--seeds {len(seeds)}")
    if cfg.scorers:
        cmd += f" --scorers {','.join(cfg.scorers)}"
    return cmd if seeds == list(range(len(seeds))) else f"{cmd}  # seeds {seeds}"


@dataclass
class ReportWriter:
    """Collects one analysis' report: sections of markdown, CSV tables and figures (PNG + PDF), written atomically."""

    root: Path
    title: str
    sections: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)

    def text(self, md: str) -> None:
        """Append a markdown section."""
        self.sections.append(md.rstrip() + "\n")

    def table(self, name: str, df: pd.DataFrame, show: bool = False, digits: int = 3) -> Path:
        """Write ``name.csv`` (every number plotted lives in a CSV); optionally show it in the report."""
        p = write_csv(self.root / f"{name}.csv", df)
        self.files.append(p.name)
        if show:
            self.text(markdown_table(df, digits))
        return p

    def figure(self, name: str, fig, caption: str = "") -> list[Path]:
        """Save ``fig`` as PNG (150 dpi) and PDF and embed the PNG in the report."""
        import matplotlib.pyplot as plt

        out = []
        for ext in ("png", "pdf"):
            with atomic_path(self.root / f"{name}.{ext}") as tmp:
                # no creation date in the PDF: a re-run with the same results writes the same bytes
                fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight",
                            metadata={"CreationDate": None} if ext == "pdf" else None)
            out.append(self.root / f"{name}.{ext}")
            self.files.append(f"{name}.{ext}")
        plt.close(fig)
        self.text(f"![{caption or name}]({name}.png)\n\n*{caption}* ([PDF]({name}.pdf))" if caption else
                  f"![{name}]({name}.png)")
        return out

    def figures(self, figures) -> None:
        """Save and embed each (name, fig, caption) of ``figures`` (``tueval.plots.Figure``)."""
        for name, fig, caption in figures:
            self.figure(name, fig, caption)

    def finish(self, tables: dict, command: str | None = None, started: float | None = None) -> Path:
        """Write every table of ``tables`` (name -> frame; None is skipped), the wall time since ``started``
        (a ``time.perf_counter()`` value) and report.md."""
        for name, df in tables.items():
            if df is not None:
                self.table(name, df)
        if started is not None:
            self.text(f"## Run\nWall time {time.perf_counter() - started:.1f} s.")
        return self.write(command)

    def write(self, command: str | None = None) -> Path:
        """Write ``report.md`` (title, the command that regenerates it, sections, file list)."""
        head = [f"# {self.title}\n"]
        if command:
            head.append(f"Regenerate with: `{command}`\n")
        body = "\n".join(head + self.sections)
        body += "\n## Files\n" + "".join(f"- `{f}`\n" for f in sorted(set(self.files)))
        return write_text(self.root / "report.md", body)

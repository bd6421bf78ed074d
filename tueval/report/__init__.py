"""Report folders (``writer``: report.md, CSVs of every number plotted, figures as PNG and PDF), the foundation
report of a prepared workdir (``foundation``) and the index of all reports (``index``)."""
from .writer import (PAIRED_COLUMNS, VERDICT_COLUMNS, ReportWriter, fmt, fmt_seconds, markdown_table, regen_command,
                     settings_md, verdict_markdown)

__all__ = ["PAIRED_COLUMNS", "VERDICT_COLUMNS", "ReportWriter", "fmt", "fmt_seconds", "markdown_table",
           "regen_command", "settings_md", "verdict_markdown"]

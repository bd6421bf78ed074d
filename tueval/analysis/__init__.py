"""Building blocks of the analyses: the registry and descriptor (``registry``), the cache of expensive tables
(``cache``), forget data and score sets (``forget``, ``scores``), the per-question tables (``*_tables``,
``sanity_checks``), the grid of unlearning arms (``grid``), the tidy results table (``runs``) and the
seed-paired verdict families (``families``). Only the registry is imported here; the rest on use."""
from .registry import ANALYSES, Analysis, AnalysisConfig, all_analyses, get_analysis, register_analysis

__all__ = ["ANALYSES", "Analysis", "AnalysisConfig", "all_analyses", "get_analysis", "register_analysis"]

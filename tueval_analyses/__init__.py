"""The built-in analyses, one module per reviewer question; each declares its question, profiles, computation
order and report as an ``ANALYSIS`` (a ``tueval.analysis.Analysis``), registered in pyproject.toml's
``tueval.analyses`` entry points. Everything they compute with lives in ``tueval``."""

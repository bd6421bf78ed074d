"""Paper-ready figures: the primitives (``base``: style, colours, Pareto fronts, paired strip plots, curves and bars
with CIs) and the analyses' figures built on them (``tradeoff``, ``scores``, ``snr``). Every function draws
numbers it is given (the caller writes the same numbers to a CSV) and returns figures; matplotlib runs on Agg.
A figure with its report name and caption is a ``Figure``."""
from .base import (FIXED_COLOURS, Figure, bar_ci, curve_plot, facet_axes, markers, palette, paired_strip_plot,
                   pareto_plot, plt, style)

__all__ = ["FIXED_COLOURS", "Figure", "bar_ci", "curve_plot", "facet_axes", "markers", "palette",
           "paired_strip_plot", "pareto_plot", "plt", "style"]

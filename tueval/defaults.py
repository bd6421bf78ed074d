"""Default unlearning settings for the embedded tiny models, chosen by measurement (see benchmarks/tuning.md)."""
from __future__ import annotations

# Shared optimiser settings of every demo run (RunSpec fields). Tuned so that sequence-level GA and NPO clearly
# move the forget metrics within the step budget without collapsing utility on the tiny model.
FIXED = {"lr": 1e-3, "epochs": 5, "batch_size": 16}

# The token-level methods of the seed papers, as (scorer, mode[, ratio]) settings.
METHODS = [
    {"scorer": "tokenunlearn", "mode": "hard", "ratio": 0.3},
    {"scorer": "tokenunlearn", "mode": "soft"},
    {"scorer": "etw", "mode": "soft"},
    {"scorer": "atwu_proto", "mode": "none"},
    {"scorer": "tif", "mode": "none", "normaliser": "weight_sum"},
    {"scorer": "satimp", "mode": "none"},
]
CONTROLS = ["random_k", "permuted", "magnitude_matched"]
OBJECTIVES = ["ga", "npo"]
SEEDS = [0, 1, 2, 3, 4, 5]

"""The settings types of the score-based analyses' profiles (the analyses declare the values): how many examples,
seeds, bootstrap resamples and so on one run uses. ``tueval check`` reads the same profiles through the registry."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AlignmentProfile:
    """Size of one alignment run: examples (None = all), seeds cap, bootstrap resamples, permutations."""

    max_examples: int | None
    max_seeds: int | None
    n_boot: int
    n_perm: int


@dataclass(frozen=True)
class SanityProfile:
    """Size of one sanity run: examples cap, seeds cap, randomisation seeds cap, bootstrap, equivalence margin."""

    max_examples: int | None
    max_seeds: int | None
    cascade_seeds: int | None
    n_boot: int
    margin: float = 0.02  # AP lift: a heuristic within this of a method "matches" it (pre-set, TOST)


@dataclass(frozen=True)
class InterventionProfile:
    """Size of one intervention run: examples cap, seeds cap, curve grid, AOPC bins, random draws, bootstrap."""

    max_examples: int | None
    max_seeds: int | None
    grid: tuple[float, ...]
    aopc_bins: tuple[float, ...]
    n_random: int
    n_boot: int
    bucket: int = 16


@dataclass(frozen=True)
class SNRProfile:
    """Size of one SNR run: examples (reference + evaluation halves), seeds, k grid, parameter subset,
    checkpoint seeds and examples, snapshot fractions of the run, primary k, vmap chunk, accumulator memory."""

    max_examples: int | None
    max_seeds: int | None
    ks: tuple[float, ...]
    params: str | None
    checkpoint_seeds: int | None
    checkpoint_examples: int | None
    snapshot_fracs: tuple[float, ...] = (1 / 3, 2 / 3, 1.0)
    primary_k: float = 0.3
    chunk: int = 4
    mem_mb: int = 1024

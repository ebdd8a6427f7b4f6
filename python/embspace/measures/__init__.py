"""Measures of how similar two embeddings of the same entities are.

Each measure is a plain function ``measure(A, B, **options) -> MeasureResult`` of
two aligned matrices (row i of A and of B embed the same entity), registered by
name in :data:`MEASURES` (:mod:`.registry`: each entry says its family,
whether it needs equal dimensions, and its cost; :func:`check_measures`
validates names before any work); :func:`compare` aligns two
:class:`~embspace.Embeddings` by key and runs several at once, sharing one
k-NN table per side (or reading precomputed ones, ``knn=``).
Each measure's **chance level** (its score for two unrelated spaces, which grows
with d / n or k / n, so raw scores are not comparable across datasets) is
tabled in :mod:`.chance`; ``compare(..., chance=True)`` measures it by shuffling
the rows of one side (:func:`chance_scores`).

========================= =========== =====================================================
name                      range       invariant to
========================= =========== =====================================================
``neighbors`` (Jaccard@k) [0, 1]      entity order; cosine: rotation, scale (tie-aware)
``mutual_knn``            [0, 1]      as neighbors
``overlap_curve``         [0, 1]      as neighbors
``cca``                   [0, 1]      translation, any invertible linear map
``svcca``                 [0, 1]      translation, rotation, isotropic scaling (cca if all kept)
``pwcca``                 [0, 1]      translation, scaling, maps of B (not rotations of A)
``cka``                   [0, 1]      translation, rotation, isotropic scaling
``cka_debiased``          <= 1        translation, rotation, isotropic scaling
``procrustes``            [0, 1]      translation, rotation, isotropic scaling
``unitmatch``             [-1, 1]     translation, per-unit scaling, unit permutation
``rsa`` (on a sample)     [-1, 1]     rotation, scaling, entity order (sampled by key)
========================= =========== =====================================================

Millions of entities: ``compare(..., sample=m)`` (automatic above
:data:`AUTO_SAMPLE_ABOVE` entities) estimates the neighbor measures from m
sampled query entities with a 95% interval (:func:`sample_interval`), and the
dense measures are computed exactly from streamed moments above
:data:`STREAM_ABOVE` entities (:mod:`.streaming`).

Dense measures are written against an array module ``xp`` (numpy or CuPy) and
compute in float64; neighbor measures use the exact Rust k-NN and are defined on
tie groups (:mod:`embspace.measures.neighborhood`), so they do not depend on how
equal similarities are ordered.
"""

from __future__ import annotations

from ._base import MeasureResult
from .canonical import canonical_correlations, cca, pwcca, svcca
from .chance import CHANCE_PERMUTATIONS, shuffled_table
from .comparison import (
    AUTO_SAMPLE_ABOVE,
    AUTO_SAMPLE_SIZE,
    STREAM_ABOVE,
    Comparison,
    bootstrap_interval,
    chance_scores,
    compare,
    draw_sample,
    sample_interval,
)
from .kernel_alignment import cka, cka_debiased
from .neighborhood import mutual_knn, neighbors, overlap_curve, sampled_overlap
from .registry import (
    DEFAULT_MEASURES,
    MEASURES,
    CostTier,
    Measure,
    check_measures,
    get_measure,
    register_measure,
)
from .rsa import rsa
from .shape import procrustes
from .units import unit_correlations, unitmatch

__all__ = [
    "AUTO_SAMPLE_ABOVE",
    "AUTO_SAMPLE_SIZE",
    "CHANCE_PERMUTATIONS",
    "DEFAULT_MEASURES",
    "MEASURES",
    "STREAM_ABOVE",
    "Comparison",
    "CostTier",
    "Measure",
    "MeasureResult",
    "bootstrap_interval",
    "canonical_correlations",
    "cca",
    "chance_scores",
    "check_measures",
    "cka",
    "cka_debiased",
    "compare",
    "draw_sample",
    "get_measure",
    "mutual_knn",
    "neighbors",
    "overlap_curve",
    "procrustes",
    "pwcca",
    "register_measure",
    "rsa",
    "sample_interval",
    "sampled_overlap",
    "shuffled_table",
    "svcca",
    "unit_correlations",
    "unitmatch",
]

"""Genetic interactions of two-gene perturbations: scores, calibrated calls, non-additive genes.

``_api`` (public functions and input checks), ``_statistics`` (Theil-Sen, distance correlation),
``_bootstrap`` (cell bootstrap and the additive null), ``_moments`` (the cross-fitted,
noise-corrected features of cells), ``_calls`` (the decision rules, read from the
one table of subtype rules in ``scgears._gi_rules``) and ``_genes`` (gene-level non-additivity).
"""

from ._api import GI_THRESHOLDS, call_subtypes, genetic_interactions
from ._statistics import SCORE_COLUMNS, theil_sen

__all__ = ["GI_THRESHOLDS", "SCORE_COLUMNS", "call_subtypes", "genetic_interactions", "theil_sen"]

"""Preprocessing: from a screen's AnnData to a model-ready object.

Register the conditions, rank DE genes, split the perturbations, and build the two graphs.
"""

from ._coexpression import coexpression_graph
from ._de import rank_perturbation_genes
from ._perturbation_graph import perturbation_graph
from ._register import register_perturbations
from ._split import split_perturbations

__all__ = [
    "coexpression_graph",
    "perturbation_graph",
    "rank_perturbation_genes",
    "register_perturbations",
    "split_perturbations",
]

"""The model's knowledge: both graphs and the vocabularies, gathered once from the AnnData.

They are saved with the model (as an init parameter), so loading never recomputes them from data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from anndata import AnnData

from .._anndata import get_conditions
from .._conditions import condition_genes
from .._constants import CONTROL
from .._matrix import expression_matrix, group_stats


def read_graphs(
    adata: AnnData,
    *,
    condition_key: str,
    split_key: str,
    layer: str | None,
    coexpression_key: str,
    perturbation_graph_key: str,
) -> dict:
    """Collect what the model keeps from ``adata``: graphs, gene vocabularies, control mean."""
    check_graphs(
        adata, coexpression_key=coexpression_key, perturbation_graph_key=perturbation_graph_key
    )
    coexpression = sp.csr_matrix(adata.varp[coexpression_key], dtype=np.float32)
    stored = adata.uns[perturbation_graph_key]
    perturbation = sp.csr_matrix(stored["graph"], dtype=np.float32)
    perturbation_genes = np.asarray(stored["genes"]).astype(str)
    if perturbation.shape != (len(perturbation_genes),) * 2:
        raise ValueError(
            f"uns[{perturbation_graph_key!r}]['graph'] has shape {perturbation.shape} but lists "
            f"{len(perturbation_genes)} genes; rebuild it with sg.pp.perturbation_graph(adata)."
        )
    isolated = np.asarray(stored.get("isolated", []), dtype=str)

    conditions = get_conditions(adata, condition_key)
    split = adata.obs[split_key].astype(str).to_numpy()
    in_training = np.isin(split, ("train", "val"))
    training_conditions = set(np.asarray(conditions)[in_training].astype(str))
    missing = sorted(
        {g for c in training_conditions for g in condition_genes(c)} - set(perturbation_genes)
    )
    if missing:
        raise ValueError(
            f"{len(missing)} perturbed genes of training conditions are not nodes of the "
            f"perturbation graph: {missing[:10]}. Rebuild it after registering the perturbations: "
            "sg.pp.perturbation_graph(adata)."
        )
    seen = sorted(
        {condition_genes(c)[0] for c in training_conditions if len(condition_genes(c)) == 1}
    )
    trained_on = sorted({g for c in training_conditions for g in condition_genes(c)})
    control_mean, mean_effect = training_means(adata, conditions, split, layer)
    return {
        "genes": np.asarray(adata.var_names).astype(str),
        "perturbation_genes": perturbation_genes,
        "coexpression": coexpression,
        "perturbation": perturbation,
        "isolated": isolated,
        "seen_genes": np.asarray(seen, dtype=str),
        "trained_genes": np.asarray(trained_on, dtype=str),
        "control_mean": control_mean,
        "mean_effect": mean_effect,
    }


def check_graphs(adata: AnnData, *, coexpression_key: str, perturbation_graph_key: str) -> None:
    """Raise an error naming the ``pp`` function to run when a graph is missing."""
    if coexpression_key not in adata.varp:
        raise KeyError(
            f"adata.varp[{coexpression_key!r}] not found: build the co-expression graph with "
            "`sg.pp.coexpression_graph(adata)` (after `sg.pp.split_perturbations`)."
        )
    if perturbation_graph_key not in adata.uns:
        raise KeyError(
            f"adata.uns[{perturbation_graph_key!r}] not found: build the perturbation graph with "
            "`sg.pp.perturbation_graph(adata)`."
        )
    stored = adata.uns[perturbation_graph_key]
    if not isinstance(stored, dict) or "graph" not in stored or "genes" not in stored:
        raise ValueError(
            f"adata.uns[{perturbation_graph_key!r}] is not a perturbation graph (needs 'genes' and "
            "'graph'); rebuild it with `sg.pp.perturbation_graph(adata)`."
        )


def training_means(
    adata: AnnData, conditions, split: np.ndarray, layer: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean control expression and mean perturbation effect of the ``train`` and ``val`` conditions.

    The mean effect is the unweighted mean over those perturbations of (condition mean minus
    control mean): the "train mean" baseline's change, which ``residual`` models start from. Like
    every statistic scgears fits, it never sees a test cell.
    """
    labels = pd.Index(conditions.categories)
    codes = np.where(np.isin(split, ("train", "val")), np.asarray(conditions.codes), -1)
    stats = group_stats(expression_matrix(adata, layer), codes, labels)
    control = stats.loc(CONTROL)
    if stats.n_cells[control] == 0:
        raise ValueError(
            "No control cells in the training set: sg.pp.split_perturbations always puts 'ctrl' in "
            "train; re-run it (and check that control cells are registered as 'ctrl')."
        )
    means = stats.means
    perturbed = [i for i, label in enumerate(labels) if label != CONTROL and stats.n_cells[i] > 0]
    effect = (means[perturbed] - means[control]).mean(0) if perturbed else np.zeros(len(means[0]))
    return means[control].astype(np.float32), effect.astype(np.float32)


def edges(graph: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor]:
    """``(edge_index, edge_weight)`` of a graph whose row ``i`` lists the sources of node ``i``."""
    coo = sp.coo_matrix(graph)
    index = torch.from_numpy(np.vstack([coo.col, coo.row]).astype(np.int64))
    return index, torch.from_numpy(coo.data.astype(np.float32))

"""The gene co-expression graph GEARS propagates gene embeddings over."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from .._anndata import get_conditions, get_split
from .._checks import check_expression
from .._conditions import n_genes as condition_size
from .._constants import COEXPRESSION_KEY, CONDITION_KEY, SPLIT_KEY
from .._copy import check_copy
from .._matrix import expression_matrix, iter_row_chunks

logger = logging.getLogger(__name__)

#: Memory for one block of the gene x gene correlation (float64); 20,000 genes take 4 blocks.
_BLOCK_BYTES = 1_000_000_000
#: Cells densified at once while accumulating the correlation.
_CELL_CHUNK = 4_096


def coexpression_graph(
    adata: AnnData,
    *,
    n_neighbors: int = 20,
    threshold: float = 0.4,
    layer: str | None = None,
    condition_key: str = CONDITION_KEY,
    split_key: str = SPLIT_KEY,
    key_added: str = COEXPRESSION_KEY,
    copy: bool = False,
) -> AnnData | None:
    """Build the gene co-expression graph from control and training single-perturbation cells.

    Edge weights are absolute Pearson correlations between genes, over the control cells and the
    cells of single-gene perturbations in the ``train`` set of ``obs[split_key]`` (all single
    perturbations when there is no split, so that no test cell is seen once a split exists). Each
    gene keeps itself (weight 1) and its ``n_neighbors`` most correlated genes with
    ``|r| > threshold``, as in GEARS.

    The correlation is accumulated over chunks of cells and blocks of genes, so sparse and backed
    (``backed="r"``) data are never densified as a whole and 20,000 genes need about 1.5 GB.

    Parameters
    ----------
    adata
        Annotated data with log-normalised expression and registered conditions. NaN or infinite
        values, duplicated ``var_names`` or an empty AnnData raise a :class:`ValueError`; values
        that look like raw counts, or negative values, warn (see :doc:`/checks`).
    n_neighbors
        Neighbours kept per gene, besides itself.
    threshold
        Minimal absolute correlation of an edge.
    layer
        Layer to use instead of ``X``.
    condition_key
        Column of ``obs`` written by :func:`~scgears.pp.register_perturbations`.
    split_key
        Column of ``obs`` written by :func:`~scgears.pp.split_perturbations`, if any.
    key_added
        Key of ``adata.varp`` to write the graph to (its parameters go to ``uns[key_added]``).
    copy
        Return a copy instead of writing in place.

    Returns
    -------
    ``None`` or a copy; writes ``varp[key_added]``, a sparse genes x genes matrix whose row ``i``
    holds the weights of the genes that pass messages to gene ``i``.

    Examples
    --------
    >>> import scgears as sg
    >>> adata = sg.datasets.simulate_screen(n_genes=200, n_cells_per_condition=20, seed=0)
    >>> sg.pp.register_perturbations(adata, "perturbation_name")
    >>> sg.pp.coexpression_graph(adata)
    >>> adata.varp["scgears_coexpression"].shape
    (200, 200)
    """
    check_copy(adata, copy, "coexpression_graph")
    if n_neighbors < 0:
        raise ValueError(f"n_neighbors must be >= 0, got {n_neighbors}.")
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}.")
    check_expression(adata, layer, function="coexpression_graph")
    conditions = get_conditions(adata, condition_key)
    sizes = np.array([condition_size(c) for c in conditions.categories])
    use = sizes[conditions.codes] <= 1
    use &= conditions.codes >= 0
    split = get_split(adata, split_key)
    if split is not None:
        use &= split == "train"
    rows = np.flatnonzero(use)
    if len(rows) < 3:
        raise ValueError(
            f"Only {len(rows)} control or training single-perturbation cells: the co-expression "
            "graph needs at least 3. Check the split (obs[split_key]) or register more cells."
        )
    matrix = expression_matrix(adata, layer)
    graph = _correlation_graph(matrix, rows, n_neighbors=n_neighbors, threshold=threshold)
    if copy:
        adata = adata.copy()
    adata.varp[key_added] = graph
    adata.uns[key_added] = {
        "params": {
            "n_neighbors": int(n_neighbors),
            "threshold": float(threshold),
            "n_cells": len(rows),
            "cells": "control and single perturbations"
            + (" in train" if split is not None else ""),
            "layer": "X" if layer is None else layer,
        }
    }
    logger.info(
        "Co-expression graph over %d cells: %d genes, %d edges (self edges included).",
        len(rows),
        graph.shape[0],
        graph.nnz,
    )
    return adata if copy else None


def _correlation_graph(matrix, rows: np.ndarray, *, n_neighbors: int, threshold: float):
    n_vars = matrix.shape[1]
    n = len(rows)
    # pass 1: means and standard deviations per gene
    sums = np.zeros(n_vars)
    sums_sq = np.zeros(n_vars)
    for _, block in iter_row_chunks(matrix, rows, chunk_size=_CELL_CHUNK * 4):
        if sp.issparse(block):
            sums += np.asarray(block.sum(axis=0)).ravel()
            sums_sq += np.asarray(block.multiply(block).sum(axis=0)).ravel()
        else:
            sums += block.sum(axis=0)
            sums_sq += (block.astype(np.float64) ** 2).sum(axis=0)
    mean = sums / n
    std = np.sqrt(np.maximum(sums_sq / n - mean**2, 0.0))
    constant = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
    inv_std = np.where(constant, 0.0, 1.0 / np.where(constant, 1.0, std))

    block_size = max(1, min(n_vars, _BLOCK_BYTES // (8 * n_vars)))
    mean32 = mean.astype(np.float32)
    out_rows, out_cols, out_vals = [], [], []
    k = min(n_neighbors, n_vars - 1)
    for start in range(0, n_vars, block_size):
        stop = min(n_vars, start + block_size)
        cov = np.zeros((n_vars, stop - start))
        # pass 2 (per gene block): centred cross-products, in float32 chunks summed in float64
        for _, block in iter_row_chunks(matrix, rows, chunk_size=_CELL_CHUNK, dense=True):
            centred = np.asarray(block, dtype=np.float32) - mean32
            cov += centred.T @ centred[:, start:stop]
        corr = np.abs(cov * inv_std[:, None] * inv_std[None, start:stop] / n)
        del cov
        targets = np.arange(start, stop)
        corr[targets, np.arange(stop - start)] = -1.0  # the self edge is added below
        if k > 0:
            # the k largest |r| of every target column, then the threshold (as GEARS)
            top = np.argpartition(-corr, kth=k - 1, axis=0)[:k]
            weights = np.take_along_axis(corr, top, axis=0)
            keep = weights > threshold
            out_rows.append(np.broadcast_to(targets, top.shape)[keep])
            out_cols.append(top[keep])
            out_vals.append(np.minimum(weights[keep], 1.0))
        out_rows.append(targets)
        out_cols.append(targets)
        out_vals.append(np.ones(len(targets)))
    graph = sp.csr_matrix(
        (np.concatenate(out_vals), (np.concatenate(out_rows), np.concatenate(out_cols))),
        shape=(n_vars, n_vars),
    )
    graph.sort_indices()
    return graph.astype(np.float32)

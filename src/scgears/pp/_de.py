"""Differentially expressed genes of each condition against control, as GEARS defines them."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from anndata import AnnData

from .._anndata import get_conditions
from .._checks import check_expression
from .._constants import CONDITION_KEY, CONTROL, DE_KEY
from .._copy import check_copy
from .._matrix import expression_matrix, group_stats

logger = logging.getLogger(__name__)


def rank_perturbation_genes(
    adata: AnnData,
    *,
    n_genes: int = 20,
    layer: str | None = None,
    condition_key: str = CONDITION_KEY,
    key_added: str = DE_KEY,
    copy: bool = False,
) -> AnnData | None:
    """Rank the genes of every condition against control, GEARS' definition of its DE genes.

    For each condition, genes are ranked by the absolute Welch t statistic of the condition's cells
    against the control cells (scanpy's ``rank_genes_groups(method="t-test", rankby_abs=True)``,
    which GEARS uses), computed in one chunked pass over the data. Three gene lists are kept:

    ``top_genes``
        The ``n_genes`` best-ranked genes: GEARS' ``de_idx``, used by ``mse_de``, ``pearson_de``
        and ``pearson_delta_de``.
    ``top_non_dropout_genes``
        The ``n_genes`` best-ranked genes that are not drop-outs, i.e. genes with a non-zero mean in
        the condition, or zero in both the condition and control (GEARS'
        ``top_non_dropout_de_20``, used by the direction metric).
    ``top_non_zero_genes``
        The ``n_genes`` best-ranked genes with a non-zero mean in the condition
        (``top_non_zero_de_20``).

    Parameters
    ----------
    adata
        Annotated data with log-normalised expression and registered conditions. NaN or infinite
        values, duplicated ``var_names`` or an empty AnnData raise a :class:`ValueError`; values
        that look like raw counts, or negative values, warn (see :doc:`/checks`).
    n_genes
        How many genes each list holds.
    layer
        Layer to use instead of ``X``.
    condition_key
        Column of ``obs`` written by :func:`~scgears.pp.register_perturbations`.
    key_added
        Key of ``adata.uns`` to write to.
    copy
        Return a copy instead of writing in place.

    Returns
    -------
    ``None`` or a copy; writes ``uns[key_added]``: a dict with ``params`` and, for each list above,
    a dict from condition label to an array of gene names, best first.

    Examples
    --------
    >>> import scgears as sg
    >>> adata = sg.datasets.simulate_screen(n_genes=200, n_cells_per_condition=20, seed=0)
    >>> sg.pp.register_perturbations(adata, "perturbation_name")
    >>> sg.pp.rank_perturbation_genes(adata)
    >>> de = adata.uns["scgears_de"]["top_genes"]
    >>> len(next(iter(de.values())))
    20
    """
    check_copy(adata, copy, "rank_perturbation_genes")
    if n_genes < 1:
        raise ValueError(f"n_genes must be at least 1, got {n_genes}.")
    check_expression(adata, layer, function="rank_perturbation_genes")
    conditions = get_conditions(adata, condition_key)
    groups = pd.Index(conditions.categories)
    counts = pd.Series(conditions).value_counts()
    n_ctrl = int(counts.get(CONTROL, 0))
    if n_ctrl < 2:
        raise ValueError(
            f"rank_perturbation_genes needs at least 2 control cells to estimate a variance; "
            f"obs[{condition_key!r}] has {n_ctrl}."
        )
    stats = group_stats(expression_matrix(adata, layer), conditions.codes, groups, nonzero=False)
    result = rank_from_stats(stats, adata.var_names, n_genes=n_genes)
    if copy:
        adata = adata.copy()
    adata.uns[key_added] = {
        "params": {
            "n_genes": int(n_genes),
            "layer": "X" if layer is None else layer,
            "method": "t-test",
            "reference": CONTROL,
            "condition_key": condition_key,
        },
        **result,
    }
    logger.info(
        "Ranked genes of %d conditions against control in uns[%r].", len(groups) - 1, key_added
    )
    return adata if copy else None


def rank_from_stats(
    stats, var_names: pd.Index, *, n_genes: int
) -> dict[str, dict[str, np.ndarray]]:
    """Top-gene lists of every non-control group from per-group sums (see the public function)."""
    var_names = np.asarray(var_names).astype(str)
    n_genes = min(n_genes, len(var_names))
    ref = stats.loc(CONTROL)
    means = stats.means
    variances = stats.variances(ddof=1)
    n = stats.n_cells.astype(np.float64)
    ctrl_mean, ctrl_var, n_ctrl = means[ref], variances[ref], n[ref]
    ctrl_zero = ctrl_mean == 0

    top, non_dropout, non_zero = {}, {}, {}
    for g, group in enumerate(stats.groups):
        if g == ref or stats.n_cells[g] == 0:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = (means[g] - ctrl_mean) / np.sqrt(variances[g] / n[g] + ctrl_var / n_ctrl)
        # as scanpy: 0/0 (equal means, no variance) scores 0; a difference with no variance in
        # either group scores +-inf and ranks first
        scores[np.isnan(scores)] = 0.0
        order = np.argsort(-np.abs(scores), kind="stable")
        is_non_zero = means[g] != 0
        is_non_dropout = is_non_zero | ctrl_zero
        top[group] = var_names[order[:n_genes]]
        non_dropout[group] = var_names[order[is_non_dropout[order]][:n_genes]]
        non_zero[group] = var_names[order[is_non_zero[order]][:n_genes]]
    return {
        "top_genes": top,
        "top_non_dropout_genes": non_dropout,
        "top_non_zero_genes": non_zero,
    }

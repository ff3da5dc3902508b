"""One pair up close: observed against additive expected change per gene, non-additive marked."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from anndata import AnnData

from .._checks import preview
from .._conditions import as_condition
from .._docs import doc_params
from .._gi_rules import SUBTYPE_RULES
from ._utils import check_save, finish, new_axes

logger = logging.getLogger(__name__)

#: Colour of the genes that are not called non-additive.
ADDITIVE_GENE_COLOR = "0.7"


@doc_params
def interaction(
    genes: AnnData,
    pair: str,
    *,
    fdr: float = 0.05,
    n_labels: int = 10,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
):
    """Draw one pair's observed change against the additive expectation, gene by gene.

    Each dot is a gene: ``x`` is the additive expected change ``delta_A + delta_B``, ``y`` the
    observed change of the double ``delta_AB``. Genes on the diagonal (dashed) are additive;
    genes whose non-additivity has a false discovery rate of at most ``fdr``
    (``layers["nonadditive_fdr"]``) are coloured by the pair's subtype and the ``n_labels`` most
    non-additive of them are named. The title gives the pair's call and confidence.

    Parameters
    ----------
    genes
        The pairs x genes AnnData of ``sg.tl.genetic_interactions(..., return_genes=True)``.
    pair
        The pair to draw, as ``"A+B"`` (any gene order).
    fdr
        Largest FDR of a gene marked non-additive. Without a noise model (FDR all NaN) no gene
        is marked, and the legend says so.
    n_labels
        Most non-additive genes to name.
    ax
        Axes to draw on; by default a new figure is made.
    {doc_show_save}

    Returns
    -------
    The :class:`~matplotlib.axes.Axes`, or ``None`` when the figure was shown.

    Examples
    --------
    >>> import scgears as sg
    >>> adata = sg.datasets.simulate_screen(n_genes=300, n_cells_per_condition=30, seed=0)
    >>> sg.pp.register_perturbations(adata, "perturbation_name")
    >>> gi, per_gene = sg.tl.genetic_interactions(adata, n_bootstrap=20, return_genes=True)
    >>> ax = sg.pl.interaction(per_gene, gi.index[0], show=False)
    """
    check_save(save)
    if not isinstance(genes, AnnData) or not {"expected", "observed"} <= set(genes.layers):
        raise TypeError(
            "genes must be the AnnData of sg.tl.genetic_interactions(..., return_genes=True) "
            "(layers 'expected', 'observed', 'nonadditive_fdr')."
        )
    if not 0 < fdr < 1:
        raise ValueError(f"fdr must be between 0 and 1, got {fdr!r}.")
    label = as_condition(pair)
    if label not in genes.obs_names:
        raise KeyError(f"Pair {label!r} is not in genes (its pairs: {preview(genes.obs_names)}).")
    i = genes.obs_names.get_loc(label)
    expected = np.asarray(genes.layers["expected"][i], dtype=float)
    observed = np.asarray(genes.layers["observed"][i], dtype=float)
    q = np.asarray(genes.layers.get("nonadditive_fdr", np.full(genes.shape, np.nan))[i])
    called = np.nan_to_num(q, nan=1.0) <= fdr
    obs = genes.obs.iloc[i]
    subtype = obs.get("subtype", None)
    colour = SUBTYPE_RULES[str(subtype)].color if isinstance(subtype, str) else "#d55e00"
    if subtype == "additive":
        colour = SUBTYPE_RULES["synergy"].color  # additive pairs can still have a few genes

    created = ax is None
    fig, ax = new_axes(ax, figsize=(5.0, 5.0))
    ax.scatter(
        expected[~called],
        observed[~called],
        s=10,
        c=ADDITIVE_GENE_COLOR,
        linewidths=0,
        label="additive genes" if np.isfinite(q).any() else "genes (no FDR: no noise model)",
    )
    ax.scatter(
        expected[called],
        observed[called],
        s=18,
        c=colour,
        edgecolors="black",
        linewidths=0.3,
        label=f"non-additive genes (FDR <= {fdr:g}): {int(called.sum())}",
    )
    finite = np.concatenate([expected[np.isfinite(expected)], observed[np.isfinite(observed)]])
    lim = float(np.abs(finite).max()) * 1.05 if len(finite) else 1.0
    lim = lim if lim > 0 else 1.0
    ax.plot([-lim, lim], [-lim, lim], ls="--", c="black", lw=0.8, label="additive (y = x)")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.axhline(0, c="0.85", lw=0.5, zorder=0)
    ax.axvline(0, c="0.85", lw=0.5, zorder=0)
    ax.set_xlabel("expected change, delta_A + delta_B")
    ax.set_ylabel("observed change, delta_AB")
    order = np.argsort(-np.abs(observed - expected)[called], kind="stable")[:n_labels]
    for j in np.flatnonzero(called)[order]:
        ax.annotate(
            genes.var_names[j],
            (expected[j], observed[j]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    confidence = obs.get("confidence", np.nan)
    call = "no call" if not isinstance(subtype, str) else subtype
    detail = "confidence n/a" if not np.isfinite(confidence) else f"confidence {confidence:.2f}"
    ax.set_title(f"{label}: {call} ({detail})", fontsize="medium")
    ax.legend(loc="upper left", fontsize="small", frameon=False)
    return finish(fig, ax, created=created, show=show, save=save)

"""Predicted uncertainty against measured error: does it flag the conditions a model gets wrong."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from anndata import AnnData

from .._anndata import get_conditions
from .._checks import preview
from .._constants import CONDITION_KEY, CONTROL, DE_KEY
from .._docs import doc_params
from .._profiles import measured_profiles
from ._utils import check_profiles, check_save, de_genes, finish, gene_columns, new_axes

logger = logging.getLogger(__name__)

#: Conditions are named beside their dot when there are at most this many.
_MAX_ANNOTATED = 15


@doc_params
def uncertainty(
    adata: AnnData,
    predicted: AnnData,
    *,
    n_genes: int = 20,
    de_key: str = DE_KEY,
    condition_key: str = CONDITION_KEY,
    layer: str | None = None,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
):
    """Predicted uncertainty against the measured error, one dot per condition.

    For every predicted condition that was measured, the x axis shows the mean predicted standard
    deviation (``layers["uncertainty"]``) over the condition's top ``n_genes`` DE genes, and the
    y axis the prediction's ``mse_de``: the mean squared difference between the predicted and the
    measured mean expression over the same genes (``top_genes`` of
    :func:`~scgears.pp.rank_perturbation_genes`, as :func:`~scgears.tl.evaluate` uses). A useful
    uncertainty ranks conditions by error: the title gives the Spearman correlation. Dots are
    coloured by ``obs["n_seen_genes"]`` of the prediction when it has that column.

    Parameters
    ----------
    adata
        The measured cells, with registered conditions and ranked DE genes.
    predicted
        Profile AnnData from a model trained with ``uncertainty=True``.
    n_genes
        How many DE genes of each condition to average over.
    de_key
        Key of ``adata.uns`` written by :func:`~scgears.pp.rank_perturbation_genes`.
    {doc_condition_key}
    layer
        Layer of ``adata`` to read instead of ``X``.
    ax
        Axes to draw on; by default a new figure is made.
    {doc_show_save}

    Returns
    -------
    The :class:`~matplotlib.axes.Axes`, or ``None`` when the figure was shown. The plotted values
    are not returned; :func:`~scgears.tl.evaluate` gives the errors as a table.

    Examples
    --------
    >>> import scgears as sg
    >>> adata = sg.datasets.simulate_screen(n_cells_per_condition=20, seed=0)
    >>> sg.pp.register_perturbations(adata, "perturbation_name")
    >>> sg.pp.rank_perturbation_genes(adata)
    >>> sg.pp.split_perturbations(adata, kind="simulation", seed=1)
    >>> model = sg.model.GEARS(adata, uncertainty=True)  # doctest: +SKIP
    >>> model.train(max_epochs=2)  # doctest: +SKIP
    >>> test = adata.uns["scgears_split"]["conditions"]["test"]
    >>> pred = model.predict(test)  # doctest: +SKIP
    >>> ax = sg.pl.uncertainty(adata, pred, show=False)  # doctest: +SKIP
    """
    check_save(save)
    if n_genes < 1:
        raise ValueError(f"n_genes must be at least 1, got {n_genes}.")
    check_profiles(predicted, "predicted")
    if "uncertainty" not in predicted.layers:
        raise ValueError(
            "The prediction has no layers['uncertainty']: train the model with uncertainty=True "
            "(sg.model.GEARS(adata, uncertainty=True)) and predict again."
        )
    conditions = _measured_predicted(adata, predicted, condition_key)
    measured = _measured_means(adata, conditions, condition_key, layer)
    sd, error = _sd_and_error(adata, predicted, measured, conditions, n_genes, de_key)

    created = ax is None
    fig, ax = new_axes(ax, figsize=(4.6, 4.0))
    _draw(ax, predicted, conditions, sd, error, n_genes)
    return finish(fig, ax, created=created, show=show, save=save)


def _measured_predicted(adata: AnnData, predicted: AnnData, condition_key: str) -> list[str]:
    """Predicted conditions that have measured cells, in the prediction's order."""
    labels = get_conditions(adata, condition_key)
    counts = labels.value_counts()
    measured = {c for c, n in counts.items() if n > 0 and c != CONTROL}
    conditions = [c for c in predicted.obs_names if c in measured]
    if not conditions:
        raise ValueError(
            "None of the predicted conditions "
            f"{preview(predicted.obs_names)} has measured cells in obs[{condition_key!r}]: "
            "the error needs measurements. Predict measured (e.g. test) conditions."
        )
    skipped = len(predicted.obs_names) - len(conditions)
    if skipped:
        logger.info("uncertainty plot skips %d predicted conditions without cells", skipped)
    return conditions


def _measured_means(adata: AnnData, conditions: list[str], condition_key: str, layer):
    """Measured mean profiles, reading only the cells of ``conditions`` and of the control."""
    labels = np.asarray(get_conditions(adata, condition_key).astype(str))
    cells = np.isin(labels, [*conditions, CONTROL])
    return measured_profiles(
        adata, conditions, layer=layer, condition_key=condition_key, cells=cells
    )


def _sd_and_error(adata, predicted, measured, conditions, n_genes: int, de_key: str):
    """Mean predicted s.d. and ``mse_de`` of each condition over its top DE genes."""
    sd = np.empty(len(conditions))
    error = np.empty(len(conditions))
    for i, label in enumerate(conditions):
        genes = de_genes(adata, label, de_key=de_key, kind="top_genes", n_genes=n_genes)
        pred_row = int(predicted.obs_names.get_loc(label))
        pred_cols = gene_columns(predicted, genes, "predicted")
        true_cols = gene_columns(measured, genes, "adata")
        pred = np.asarray(predicted.X[pred_row, pred_cols], dtype=float).ravel()
        true = np.asarray(measured.X[i, true_cols], dtype=float).ravel()
        error[i] = np.mean((pred - true) ** 2)
        sd[i] = np.mean(np.asarray(predicted.layers["uncertainty"][pred_row, pred_cols]))
    return sd, error


def _draw(ax, predicted, conditions, sd, error, n_genes: int) -> None:
    """Scatter of uncertainty against error, coloured by seen genes, Spearman in the title."""
    from scipy.stats import spearmanr

    if "n_seen_genes" in predicted.obs.columns:
        seen = predicted.obs.loc[conditions, "n_seen_genes"].to_numpy()
        palette = ("#d62728", "#ff7f0e", "#1f77b4", "#2ca02c")
        for k in sorted(set(seen.tolist())):
            mask = seen == k
            color = palette[int(k) % len(palette)]
            ax.scatter(sd[mask], error[mask], s=28, color=color, label=str(k), zorder=3)
        ax.legend(title="genes seen in training", fontsize="small", frameon=False)
    else:
        ax.scatter(sd, error, s=28, color="#1f77b4", zorder=3)
    if len(conditions) <= _MAX_ANNOTATED:
        # neighbours along x get their names above and below alternately, so fewer overlap
        rank = np.empty(len(sd), dtype=int)
        rank[np.argsort(sd, kind="stable")] = np.arange(len(sd))
        for x, y, label, k in zip(sd, error, conditions, rank, strict=True):
            offset = (4, 3) if k % 2 == 0 else (4, -9)
            ax.annotate(label, (x, y), xytext=offset, textcoords="offset points", fontsize=7)
    if len(conditions) >= 3 and np.ptp(sd) > 0 and np.ptp(error) > 0:
        rho = spearmanr(sd, error).statistic
        ax.set_title(f"Spearman ρ = {rho:.2f} ({len(conditions)} conditions)")
    else:
        ax.set_title(f"Spearman ρ not defined ({len(conditions)} conditions)")
    ax.set_xlabel(f"mean predicted s.d., top-{n_genes} DE genes")
    ax.set_ylabel(f"MSE, top-{n_genes} DE genes")

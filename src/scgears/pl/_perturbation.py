"""One condition's top DE genes: measured cells as boxes, predictions and baselines as markers."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from anndata import AnnData

from .._anndata import get_conditions
from .._checks import preview
from .._conditions import as_condition
from .._constants import CONDITION_KEY, CONTROL, DE_KEY
from .._docs import doc_params
from .._matrix import expression_matrix, read_rows
from ._utils import (
    check_profiles,
    check_save,
    de_genes,
    finish,
    gene_columns,
    new_axes,
    profile_row,
)

logger = logging.getLogger(__name__)

#: Marker and colour of the prediction, then of each baseline in turn.
_PREDICTION_STYLE = {"marker": "o", "color": "#d62728"}
_BASELINE_MARKERS = ("D", "s", "^", "v", "P", "X", "<", ">")
_BASELINE_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@doc_params
def perturbation(
    adata: AnnData,
    predicted: AnnData | None,
    condition: str | Sequence[str],
    *,
    baselines: Mapping[str, AnnData] | None = None,
    n_genes: int = 20,
    de_key: str = DE_KEY,
    condition_key: str = CONDITION_KEY,
    layer: str | None = None,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
):
    """Measured against predicted change of a condition's top DE genes (GEARS' Fig. 2g).

    For each of the condition's top ``n_genes`` non-dropout DE genes (``top_non_dropout_genes``
    of :func:`~scgears.pp.rank_perturbation_genes`), a box shows the measured cells' change in
    expression (each cell minus the mean of the control cells, whiskers at 1.5 IQR, outliers not
    drawn), a red dot the prediction's ``layers["delta"]`` (with an error bar of plus and minus
    one predicted standard deviation when the prediction has ``layers["uncertainty"]``: the model's
    own uncertainty per gene, not a spread of cells), and another marker each baseline. The
    legend's title says what the boxes and the error bars are.
    Only the cells of the condition and of the control are read, so ``adata`` may be backed.

    Parameters
    ----------
    adata
        The measured cells, with registered conditions and ranked DE genes.
    predicted
        Profile AnnData holding the condition (``model.predict(...)``); ``None`` draws the
        measured cells only.
    condition
        The condition, as a label or a list of genes: ``"KLF1"``, ``["CBL", "CNN1"]``,
        ``"CNN1+CBL"`` and ``"KLF1+ctrl"`` are all understood.
    baselines
        Other profiles to compare, by name, e.g. ``{"additive": sg.tl.baseline(adata, ...)}``.
    n_genes
        How many DE genes to show.
    de_key
        Key of ``adata.uns`` written by :func:`~scgears.pp.rank_perturbation_genes`.
    condition_key
        Column of ``adata.obs`` written by :func:`~scgears.pp.register_perturbations`.
    layer
        Layer of ``adata`` to read instead of ``X``; it should be the log-normalised expression
        the prediction was trained on.
    ax
        Axes to draw on; by default a new figure is made.
    {doc_show_save}

    Returns
    -------
    The :class:`~matplotlib.axes.Axes`, or ``None`` when the figure was shown.

    Examples
    --------
    >>> import scgears as sg
    >>> adata = sg.datasets.simulate_screen(n_cells_per_condition=20, seed=0)
    >>> sg.pp.register_perturbations(adata, "perturbation_name")
    >>> sg.pp.rank_perturbation_genes(adata)
    >>> condition = next(c for c in adata.obs["scgears_condition"].cat.categories if "+" in c)
    >>> baseline = sg.tl.baseline(adata, kind="additive", conditions=[condition])
    >>> ax = sg.pl.perturbation(adata, baseline, condition, show=False)
    """
    check_save(save)
    if n_genes < 1:
        raise ValueError(f"n_genes must be at least 1, got {n_genes}.")
    label = as_condition(condition)
    if label == CONTROL:
        raise ValueError(
            f"condition {condition!r} is the control: pass a perturbed condition such as 'KLF1'."
        )
    cell_rows, control_rows = _condition_cells(adata, label, condition_key)
    genes = de_genes(adata, label, de_key=de_key, kind="top_non_dropout_genes", n_genes=n_genes)
    columns = gene_columns(adata, genes, "adata")
    series = _marker_series(predicted, baselines, label, genes)

    matrix = expression_matrix(adata, layer)
    control_mean = read_rows(matrix, control_rows)[:, columns].mean(axis=0)
    change = read_rows(matrix, cell_rows)[:, columns] - control_mean[None, :]

    created = ax is None
    fig, ax = new_axes(ax, figsize=(max(4.0, 0.38 * len(genes) + 1.5), 4.0))
    _draw(ax, change, series, genes)
    ax.set_title(f"{label} ({len(cell_rows)} cells)")
    return finish(fig, ax, created=created, show=show, save=save)


def _condition_cells(adata: AnnData, label: str, condition_key: str):
    """Rows of the condition's cells and of the control cells; errors when either is missing."""
    conditions = np.asarray(get_conditions(adata, condition_key).astype(str))
    cell_rows = np.flatnonzero(conditions == label)
    if len(cell_rows) == 0:
        measured = sorted(set(conditions) - {CONTROL, "nan"})
        raise ValueError(
            f"No cells of condition {label!r} in obs[{condition_key!r}] (measured conditions: "
            f"{preview(measured)}). The box plot needs measured cells: predict-only conditions "
            "cannot be drawn."
        )
    control_rows = np.flatnonzero(conditions == CONTROL)
    return cell_rows, control_rows


def _marker_series(predicted, baselines, label: str, genes: list[str]):
    """``(name, delta, sd or None)`` of the prediction and each baseline, over ``genes``."""
    series = []
    profiles = [] if predicted is None else [("predicted", predicted)]
    profiles += list((baselines or {}).items())
    for name, profile in profiles:
        where = "predicted" if name == "predicted" else f"baselines[{name!r}]"
        check_profiles(profile, where)
        row = profile_row(profile, label, where)
        columns = gene_columns(profile, genes, where)
        delta = np.asarray(profile.layers["delta"][row, columns], dtype=float).ravel()
        sd = None
        if name == "predicted" and "uncertainty" in profile.layers:
            sd = np.asarray(profile.layers["uncertainty"][row, columns], dtype=float).ravel()
        series.append((name, delta, sd))
    return series


def _draw(ax, change: np.ndarray, series, genes: list[str]) -> None:
    """Boxes of the measured change, a zero line, one marker per series, gene names, a legend."""
    from matplotlib.patches import Patch

    positions = np.arange(1, len(genes) + 1)
    ax.axhline(0.0, color="0.4", linestyle="--", linewidth=0.8, zorder=0)
    ax.boxplot(
        [change[:, j] for j in range(change.shape[1])],
        positions=positions,
        widths=0.6,
        showfliers=False,
        patch_artist=True,
        boxprops={"facecolor": "0.85", "edgecolor": "0.3"},
        medianprops={"color": "0.2"},
        whiskerprops={"color": "0.3"},
        capprops={"color": "0.3"},
    )
    # spread the markers of several series across the box width so none hides another
    offsets = np.linspace(-0.18, 0.18, len(series)) if len(series) > 1 else [0.0] * len(series)
    handles = [Patch(facecolor="0.85", edgecolor="0.3", label="measured cells")]
    for i, ((name, delta, sd), offset) in enumerate(zip(series, offsets, strict=True)):
        if name == "predicted":
            style = _PREDICTION_STYLE
        else:
            j = i - (1 if series[0][0] == "predicted" else 0)
            style = {
                "marker": _BASELINE_MARKERS[j % len(_BASELINE_MARKERS)],
                "color": _BASELINE_COLORS[j % len(_BASELINE_COLORS)],
            }
        x = positions + offset
        if sd is not None:
            ax.errorbar(
                x, delta, yerr=sd, fmt="none", ecolor=style["color"], elinewidth=1, zorder=3
            )
        handles.append(
            ax.scatter(
                x,
                delta,
                s=30,
                edgecolors="white",
                linewidths=0.5,
                zorder=4,
                label=name if sd is None else f"{name} (± s.d.)",
                **style,
            )
        )
    ax.set_xticks(positions)
    ax.set_xticklabels(genes, rotation=90)
    ax.set_xlim(0.4, len(genes) + 0.6)
    ax.set_ylabel("change in expression over control")
    ax.legend(
        handles=handles,
        title=_legend_title(any(sd is not None for _, _, sd in series)),
        loc="best",
        fontsize="small",
        title_fontsize="small",
        frameon=False,
    )


def _legend_title(has_error_bars: bool) -> str:
    """Say what the boxes and the error bars show, so the figure reads on its own."""
    title = "boxes: measured cells' change\n(quartiles, whiskers 1.5 IQR)"
    if has_error_bars:
        title += "\nerror bars: prediction ± 1 s.d.\n(layers['uncertainty'])"
    return title

"""Evaluation metrics of a model beside its baselines, per split subgroup."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .._constants import SUBGROUPS
from ._utils import check_save, finish

logger = logging.getLogger(__name__)

#: Axis labels of the metrics :func:`scgears.tl.evaluate` computes.
METRIC_LABELS = {
    "mse": "MSE (all genes)",
    "mse_de": "MSE (top-20 DE genes)",
    "pearson": "Pearson r (all genes)",
    "pearson_de": "Pearson r (top-20 DE genes)",
    "pearson_delta": "Pearson r of change (all genes)",
    "pearson_delta_de": "Pearson r of change (top-20 DE genes)",
    "frac_opposite_direction_top20_non_dropout": (
        "fraction of top-20 DE genes\nin the wrong direction"
    ),
    "pds": "perturbation discrimination\n(0.5 = uninformative)",
    "pearson_delta_pert": "Pearson r of change from\ntraining mean (all genes)",
    "pearson_delta_pert_de": "Pearson r of change from\ntraining mean (top-20 DE genes)",
    "centroid_accuracy": "centroid accuracy",
}

#: Subgroup shown when the table has no ``subgroup`` column or a condition has none.
ALL_CONDITIONS = "all"

_JITTER_SEED = 0


def metrics(
    table: pd.DataFrame,
    *,
    metric: str | Sequence[str] = "pearson_delta",
    methods: Sequence[str] | None = None,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
):
    """Compare a model with its baselines, one group of bars per split subgroup.

    For each subgroup (``unseen_single``, ``combo_seen0``, ``combo_seen1``, ``combo_seen2``, then
    any other, in that order) a bar per method shows the metric's mean over the subgroup's
    conditions, and dots show the conditions themselves (spread sideways at random, with a fixed
    seed). Each method keeps one colour across subgroups and panels. Conditions with no subgroup
    (no split) are shown under ``"all"``; missing values are left out.

    Parameters
    ----------
    table
        Long table of :func:`~scgears.tl.evaluate`: one row per method and condition, with the
        columns ``method``, ``condition``, optionally ``subgroup``, and the metric columns.
    metric
        A metric column, or a list of them for one panel each.
    methods
        Methods to show, in this order (default: all, in order of first appearance).
    ax
        Axes to draw on (a sequence of axes, one per metric, for a list of metrics); by default
        a new figure is made.
    show
        Show the figure. ``None`` (default) shows it when this function made the figure
        (``ax=None``) and ``save`` is not given; otherwise it is left open for the caller.
    save
        File path to save the figure to (format from the suffix), with ``bbox_inches="tight"``.
        scanpy is deprecating its own ``save=`` (a file name under ``sc.settings.figdir``) in
        favour of saving the returned figure; scgears' ``save`` is a plain path and stays, and
        the equivalent is ``axes = sg.pl.metrics(table, show=False)`` then
        ``axes["pearson_delta"].figure.savefig(path)``.

    Returns
    -------
    Always a dict from metric name to its :class:`~matplotlib.axes.Axes` (one entry for a single
    metric), whatever ``metric`` is; ``None`` when the figure was shown, as scanpy does.

    Examples
    --------
    >>> import pandas as pd
    >>> import scgears as sg
    >>> table = pd.DataFrame(
    ...     {
    ...         "method": ["GEARS", "GEARS", "additive", "additive"],
    ...         "condition": ["A", "B", "A", "B"],
    ...         "subgroup": ["unseen_single"] * 4,
    ...         "pearson_delta": [0.8, 0.6, 0.5, 0.4],
    ...     }
    ... )
    >>> axes = sg.pl.metrics(table, show=False)
    >>> list(axes)
    ['pearson_delta']
    """
    import matplotlib.pyplot as plt

    check_save(save)
    names = [metric] if isinstance(metric, str) else list(metric)
    frame = _check_table(table, names)
    method_order = _method_order(frame, methods)
    frame = frame[frame["method"].isin(method_order)]
    subgroups = _subgroup_order(frame["subgroup"])

    created = ax is None
    if created:
        width = max(3.5, 0.35 * len(subgroups) * len(method_order) + 1.5)
        fig, axes = plt.subplots(1, len(names), figsize=(width * len(names), 3.8), squeeze=False)
        axes = list(axes[0])
    else:
        axes = [ax] if isinstance(metric, str) else list(np.ravel(ax))
        if len(axes) != len(names):
            raise ValueError(f"Pass one axes per metric: got {len(axes)} for {len(names)} metrics.")
        fig = axes[0].figure
    colors = _method_colors(method_order)
    for name, panel in zip(names, axes, strict=True):
        _draw_panel(panel, frame, name, method_order, subgroups, colors)
    handles, labels = axes[-1].get_legend_handles_labels()
    axes[-1].legend(
        handles, labels, title="method", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False
    )
    # one return type whatever ``metric`` is (issue 9): callers index it by metric name
    result = dict(zip(names, axes, strict=True))
    return finish(fig, result, created=created, show=show, save=save)


def _check_table(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """A copy with a filled ``subgroup`` column; errors name missing columns and the fix."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be the DataFrame of sg.tl.evaluate(...), got {type(table)}.")
    if not names:
        raise ValueError("metric must name at least one metric column.")
    missing = [c for c in ("method", "condition") if c not in table.columns]
    if missing:
        raise KeyError(
            f"table lacks the columns {missing}: pass the long table of sg.tl.evaluate(...) "
            "(one row per method and condition)."
        )
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    absent = [m for m in names if m not in table.columns]
    if absent:
        raise KeyError(f"Metric {absent[0]!r} is not a column of table (metrics: {numeric}).")
    frame = table.copy()
    if "subgroup" not in frame.columns:
        frame["subgroup"] = ALL_CONDITIONS
    frame["subgroup"] = frame["subgroup"].astype(object).where(frame["subgroup"].notna())
    frame["subgroup"] = frame["subgroup"].fillna(ALL_CONDITIONS).astype(str)
    frame["method"] = frame["method"].astype(str)
    return frame


def _method_order(frame: pd.DataFrame, methods: Sequence[str] | None) -> list[str]:
    """Methods to draw, in the given order or by first appearance."""
    present = list(dict.fromkeys(frame["method"]))
    if methods is None:
        return present
    methods = [str(m) for m in methods]
    unknown = [m for m in methods if m not in present]
    if unknown:
        raise KeyError(f"Methods {unknown} are not in table['method'] (it holds {present}).")
    return methods


def _subgroup_order(subgroups: pd.Series) -> list[str]:
    """GEARS' subgroups first in their usual order, then the others, then ``"all"``."""
    present = list(dict.fromkeys(subgroups))
    known = [s for s in SUBGROUPS if s in present]
    others = sorted(s for s in present if s not in SUBGROUPS and s != ALL_CONDITIONS)
    return known + others + ([ALL_CONDITIONS] if ALL_CONDITIONS in present else [])


def _method_colors(methods: list[str]) -> dict[str, tuple]:
    """One colour per method from matplotlib's qualitative palettes."""
    import matplotlib as mpl

    palette = mpl.colormaps["tab10" if len(methods) <= 10 else "tab20"]
    return {m: palette(i % palette.N) for i, m in enumerate(methods)}


def _draw_panel(ax, frame, metric: str, methods, subgroups, colors) -> None:
    """Grouped bars of the mean and jittered per-condition dots for one metric."""
    values = frame.dropna(subset=[metric])
    if values.empty:
        logger.warning("metric %r has no values to draw", metric)
    rng = np.random.default_rng(_JITTER_SEED)
    n_methods = len(methods)
    width = 0.8 / n_methods
    centers = np.arange(len(subgroups), dtype=float)
    for j, method in enumerate(methods):
        rows = values[values["method"] == method]
        x = centers - 0.4 + width * (j + 0.5)
        grouped = rows.groupby("subgroup")[metric]
        means = grouped.mean().reindex(subgroups).to_numpy(dtype=float)
        ax.bar(x, means, width=width * 0.9, color=colors[method], alpha=0.75, label=method)
        position = dict(zip(subgroups, x, strict=True))
        dots_x = rows["subgroup"].map(position).to_numpy(dtype=float)
        dots_x = dots_x + rng.uniform(-0.25, 0.25, len(rows)) * width
        ax.scatter(dots_x, rows[metric], s=9, color="black", alpha=0.6, linewidths=0, zorder=3)
    ax.set_xticks(centers)
    ax.set_xticklabels([_subgroup_label(s, values) for s in subgroups], fontsize="small")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.axhline(0.0, color="0.3", linewidth=0.8)
    ax.set_xlim(-0.6, len(subgroups) - 0.4)


def _subgroup_label(subgroup: str, values: pd.DataFrame) -> str:
    """Tick label: the subgroup and how many conditions it holds."""
    n = values.loc[values["subgroup"] == subgroup, "condition"].nunique()
    return f"{subgroup}\n(n={n})"

"""GEARS' evaluation metrics of predicted profiles against measured cells, per condition."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from .._anndata import get_conditions
from .._checks import get_de
from .._conditions import as_condition
from .._constants import (
    CONDITION_KEY,
    CONTROL,
    DE_KEY,
    N_PERTURBED,
    PROFILE_KEY,
    SPLIT_KEY,
    SUBGROUPS,
)
from .._profiles import is_profiles, measured_profiles

logger = logging.getLogger(__name__)

#: The metric columns of :func:`evaluate`, in order.
METRICS = (
    "mse",
    "pearson",
    "mse_de",
    "pearson_de",
    "pearson_delta",
    "pearson_delta_de",
    "frac_opposite_direction_top20_non_dropout",
)
#: Order of the subgroups in tables: the split's test subgroups, then the other sets.
SUBGROUP_ORDER = (
    *SUBGROUPS,
    *(f"combo_seen{k}" for k in range(3, 10)),
    "seen_single",
    "val",
    "train",
    "all",
)


def evaluate(
    adata: AnnData,
    predicted: AnnData | Mapping[str, AnnData],
    *,
    conditions: Sequence[str | Sequence[str]] | None = None,
    layer: str | None = None,
    de_key: str = DE_KEY,
    condition_key: str = CONDITION_KEY,
    split_key: str = SPLIT_KEY,
) -> pd.DataFrame:
    """Score predicted profiles against the measured cells, with GEARS' metrics.

    For each condition, the truth ``y`` is the mean expression of all its measured cells in
    ``adata``, the prediction ``p`` the predicted mean expression (``X`` of the profile), and ``c``
    the mean of all control cells of ``adata`` (GEARS' ``ctrl``, for every method alike, so no
    method is scored against its own control estimate). The metrics, as GEARS'
    ``compute_metrics``, ``deeper_analysis`` and ``non_dropout_analysis`` compute them:

    ``mse``
        Mean squared error of ``p`` and ``y`` over all genes.
    ``pearson``
        Pearson correlation of ``p`` and ``y`` over all genes, on **absolute** expression. It is
        close to 1 for any method that predicts the control profile (genes' baseline levels
        dominate it), so it says little about the perturbation.
    ``mse_de``, ``pearson_de``
        The same over the condition's top-20 DE genes (``uns[de_key]["top_genes"]``), still on
        absolute expression.
    ``pearson_delta``
        Pearson correlation of the predicted change ``p - c`` with the measured change ``y - c``,
        over all genes.
    ``pearson_delta_de``
        The same over the top-20 DE genes.
    ``frac_opposite_direction_top20_non_dropout``
        Fraction of the top-20 non-dropout DE genes (``uns[de_key]["top_non_dropout_genes"]``)
        whose predicted change has the opposite sign of the measured one
        (``|sign(p - c) - sign(y - c)| == 2``); a zero change on either side is not counted.

    The paper's headline metrics are ``mse_de`` and ``pearson_delta``: the error on the genes
    the perturbation moves, and how well the direction and size of the change are predicted.
    ``pearson_de`` (absolute expression on DE genes) is **not** the paper's "Pearson delta" and is
    high even for the no-change baseline; report ``pearson_delta`` (or ``pearson_delta_de``).
    A Pearson correlation that is undefined (a constant vector) is set to 0, as GEARS does. Always
    report the baselines of :func:`~scgears.tl.baseline` beside a model.

    Parameters
    ----------
    adata
        Cells with registered conditions and DE genes
        (:func:`~scgears.pp.rank_perturbation_genes`).
    predicted
        A profile AnnData (a model's ``predict``, :func:`~scgears.tl.baseline`), or a dict
        from method name to profile AnnData to score several methods side by side (a single
        AnnData is named by its ``uns["scgears_profile"]["source"]``). Its genes must
        be genes of ``adata``; metrics use the predicted genes (DE gene lists are restricted to
        them, with a warning, when the prediction covers only some of ``adata``'s genes).
    conditions
        Conditions to score. Default: the test conditions of the split
        (``uns[split_key]["conditions"]["test"]``), or, without a split, every non-control
        condition present in the predictions.
    layer
        Layer of ``adata`` with log-normalised expression instead of ``X``.
    de_key
        Key of ``adata.uns`` written by :func:`~scgears.pp.rank_perturbation_genes`.
    condition_key
        Column of ``obs`` written by :func:`~scgears.pp.register_perturbations`.
    split_key
        Key of the split written by :func:`~scgears.pp.split_perturbations`; it only labels rows.

    Returns
    -------
    A long DataFrame, one row per (method, condition): ``method``, ``condition``, ``subgroup``
    (the split's test subgroup such as ``combo_seen1``; ``"val"`` or ``"train"`` for conditions
    of those sets; ``"all"`` without a split), ``n_genes`` (perturbed genes), ``n_cells``
    (measured cells) and the metrics above. :func:`summarize` averages it per subgroup.

    Examples
    --------
    >>> import scgears as sg
    >>> adata = sg.datasets.simulate_screen(n_genes=200, n_cells_per_condition=20, seed=0)
    >>> sg.pp.register_perturbations(adata, "perturbation_name")
    >>> sg.pp.rank_perturbation_genes(adata)
    >>> sg.pp.split_perturbations(adata, kind="simulation", seed=1)
    >>> test = list(adata.uns["scgears_split"]["conditions"]["test"])
    >>> methods = {k: sg.tl.baseline(adata, k, conditions=test) for k in ("control", "mean")}
    >>> table = sg.tl.evaluate(adata, methods)
    >>> summary = sg.tl.summarize(table)
    >>> list(summary.columns[:3])
    ['method', 'subgroup', 'n_conditions']
    """
    methods = _as_methods(predicted)
    de = _de_lists(adata, de_key)
    labels = _cell_conditions(adata, condition_key)
    split = adata.uns.get(split_key)
    wanted = _conditions_to_score(conditions, methods, split, split_key)
    _check_measured(wanted, labels, condition_key)
    _check_predicted(wanted, methods)
    missing_de = [c for c in wanted if c not in de["top_genes"]]
    if missing_de:
        raise KeyError(
            f"No DE genes in uns[{de_key!r}] for conditions {missing_de[:10]}: rerun "
            "`sg.pp.rank_perturbation_genes(adata)` on the data that holds them."
        )
    var_names = adata.var_names
    for name, profile in methods.items():
        unknown = profile.var_names.difference(var_names)
        if len(unknown):
            raise ValueError(
                f"Prediction {name!r} has genes not measured in adata: {list(unknown[:10])}."
            )

    truth = measured_profiles(adata, wanted, layer=layer, condition_key=condition_key)
    control_mean = np.asarray(truth.var["control_mean"], dtype=np.float64)
    subgroup = _subgroups(wanted, split)
    frames = []
    for name, profile in methods.items():
        genes = var_names.get_indexer(profile.var_names)
        if len(genes) < len(var_names):
            logger.warning(
                "Prediction %r covers %d of %d genes: metrics use those genes only.",
                name,
                len(genes),
                len(var_names),
            )
        pred = np.asarray(profile[wanted].X, dtype=np.float64)
        frame = _metrics(
            pred,
            np.asarray(truth.X, dtype=np.float64)[:, genes],
            control_mean[genes],
            [_positions(de["top_genes"][c], profile.var_names) for c in wanted],
            [_positions(de["top_non_dropout_genes"][c], profile.var_names) for c in wanted],
        )
        frame.insert(0, "n_cells", truth.obs["n_cells"].to_numpy())
        frame.insert(0, N_PERTURBED, truth.obs[N_PERTURBED].to_numpy())
        frame.insert(0, "subgroup", subgroup)
        frame.insert(0, "condition", wanted)
        frame.insert(0, "method", name)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    logger.info("Evaluated %d methods on %d conditions.", len(methods), len(wanted))
    return table


def summarize(
    table: pd.DataFrame,
    *,
    by: str | Sequence[str] = ("method", "subgroup"),
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Mean of each metric per method and subgroup, plus an ``"all"`` row per method.

    This is the table GEARS reports: unweighted means over the conditions of each split
    subgroup (``unseen_single``, ``combo_seen0/1/2``), and over all scored conditions.

    Parameters
    ----------
    table
        The output of :func:`evaluate`.
    by
        Columns to group by; the ``"all"`` rows are added when ``"subgroup"`` is one of them.
    metrics
        Metric columns to average (default: those of :func:`evaluate` present in ``table``).

    Returns
    -------
    A DataFrame with the ``by`` columns, ``n_conditions`` and the mean of each metric.

    Examples
    --------
    >>> import pandas as pd
    >>> import scgears as sg
    >>> table = pd.DataFrame({"method": ["m"] * 3, "subgroup": ["combo_seen0", "combo_seen0",
    ...     "unseen_single"], "condition": ["A+B", "A+C", "D"], "mse": [1.0, 3.0, 5.0]})
    >>> summary = sg.tl.summarize(table)
    >>> summary[["subgroup", "n_conditions", "mse"]].values.tolist()
    [['unseen_single', 1, 5.0], ['combo_seen0', 2, 2.0], ['all', 3, 3.0]]
    """
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in by if c not in table.columns]
    if missing:
        raise KeyError(f"Columns {missing} not in the table (columns: {list(table.columns)}).")
    if metrics is None:
        metrics = [m for m in METRICS if m in table.columns]
    else:
        metrics = list(metrics)
        absent = [m for m in metrics if m not in table.columns]
        if absent:
            raise KeyError(f"Metrics {absent} not in the table.")
    parts = [table]
    if "subgroup" in by:
        parts.append(table.assign(subgroup="all"))
    long = pd.concat(parts, ignore_index=True)
    grouped = long.groupby(by, sort=False, observed=True)
    summary = grouped[metrics].mean()
    summary.insert(0, "n_conditions", grouped.size())
    summary = summary.reset_index()
    # rows in order: each by-column by first appearance, subgroups in SUBGROUP_ORDER
    keys = {}
    for i, column in enumerate(by):
        if column == "subgroup":
            rank = {s: k for k, s in enumerate(SUBGROUP_ORDER)}
        else:
            rank = {v: k for k, v in enumerate(pd.unique(long[column]))}
        keys[f"_key{i}"] = summary[column].map(rank).fillna(len(rank))
    summary = (
        summary.assign(**keys)
        .sort_values(list(keys), kind="stable")
        .drop(columns=list(keys))
        .reset_index(drop=True)
    )
    return summary


# --------------------------------------------------------------------------------------------
# Checks


def _as_methods(predicted) -> dict[str, AnnData]:
    if isinstance(predicted, AnnData):
        source = predicted.uns.get(PROFILE_KEY, {}).get("source", "prediction")
        methods = {str(source): predicted}
    elif isinstance(predicted, Mapping):
        methods = {str(k): v for k, v in predicted.items()}
        if not methods:
            raise ValueError("predicted is an empty dict: pass at least one profile AnnData.")
    else:
        raise TypeError(
            "predicted must be a profile AnnData or a dict of them, got "
            f"{type(predicted).__name__}."
        )
    bad = [name for name, p in methods.items() if not is_profiles(p)]
    if bad:
        raise ValueError(
            f"predicted {bad} are not profile AnnData (one row per condition, layers['delta'], "
            "var['control_mean']): use the output of model.predict or sg.tl.baseline."
        )
    return methods


def _de_lists(adata: AnnData, de_key: str) -> Mapping:
    return get_de(adata, de_key)


def _cell_conditions(adata: AnnData, condition_key: str) -> pd.Series:

    return pd.Series(np.asarray(get_conditions(adata, condition_key)).astype(object))


def _conditions_to_score(conditions, methods, split, split_key) -> list[str]:
    if conditions is not None:
        if isinstance(conditions, str):
            conditions = [conditions]
        wanted = [as_condition(c) for c in conditions]
    elif split is not None:
        if "conditions" not in split or "test" not in split["conditions"]:
            raise KeyError(
                f"uns[{split_key!r}] has no test conditions: rerun "
                "`sg.pp.split_perturbations(adata)` or pass conditions=."
            )
        wanted = [as_condition(c) for c in split["conditions"]["test"]]
    else:
        wanted = []
        for profile in methods.values():
            wanted.extend(c for c in profile.obs_names if c != CONTROL)
    wanted = list(dict.fromkeys(wanted))
    if CONTROL in wanted:
        raise ValueError(f"The control condition {CONTROL!r} cannot be scored; leave it out.")
    if not wanted:
        raise ValueError("No conditions to score: pass conditions=.")
    return wanted


def _check_measured(wanted: list[str], labels: pd.Series, condition_key: str) -> None:
    counts = labels.value_counts()
    missing = [c for c in wanted if counts.get(c, 0) == 0]
    if missing:
        raise ValueError(
            f"No measured cells in obs[{condition_key!r}] for conditions {missing[:10]}"
            + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
            + ": only measured conditions can be evaluated; pass conditions= without them."
        )


def _check_predicted(wanted: list[str], methods: Mapping[str, AnnData]) -> None:
    for name, profile in methods.items():
        missing = [c for c in wanted if c not in profile.obs_names]
        if missing:
            raise ValueError(
                f"Prediction {name!r} lacks conditions {missing[:10]}"
                + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
                + ": predict them (model.predict / sg.tl.baseline(conditions=...)) or pass "
                "conditions=."
            )


def _subgroups(wanted: list[str], split) -> list[str]:
    if split is None:
        return ["all"] * len(wanted)
    label: dict[str, str] = {}
    for name in ("train", "val"):
        for c in split.get("conditions", {}).get(name, []):
            label[as_condition(c)] = name
    for group, members in split.get("subgroups", {}).items():
        for c in members:
            label[as_condition(c)] = str(group)
    return [label.get(c, "test") for c in wanted]


def _positions(genes, var_names: pd.Index) -> np.ndarray:
    idx = var_names.get_indexer(np.asarray(genes).astype(str))
    return idx[idx >= 0]


# --------------------------------------------------------------------------------------------
# Metrics


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; 0 when undefined (a constant vector), as GEARS sets NaN to 0."""
    xc = x - x.mean()
    yc = y - y.mean()
    denominator = np.sqrt(np.dot(xc, xc) * np.dot(yc, yc))
    if not denominator > 0:
        return 0.0
    return float(np.dot(xc, yc) / denominator)


def _metrics(pred, truth, control, de_genes, non_dropout_genes) -> pd.DataFrame:
    """One row of metrics per condition (rows of ``pred`` and ``truth``)."""
    rows = []
    for p, y, de, nd in zip(pred, truth, de_genes, non_dropout_genes, strict=True):
        dp, dy = p - control, y - control
        opposite = np.abs(np.sign(dp[nd]) - np.sign(dy[nd])) == 2
        rows.append(
            {
                "mse": float(np.mean((p - y) ** 2)),
                "pearson": pearson(p, y),
                "mse_de": float(np.mean((p[de] - y[de]) ** 2)) if len(de) else np.nan,
                "pearson_de": pearson(p[de], y[de]) if len(de) else np.nan,
                "pearson_delta": pearson(dp, dy),
                "pearson_delta_de": pearson(dp[de], dy[de]) if len(de) else np.nan,
                "frac_opposite_direction_top20_non_dropout": (
                    float(opposite.mean()) if len(nd) else np.nan
                ),
            }
        )
    return pd.DataFrame(rows, columns=list(METRICS))

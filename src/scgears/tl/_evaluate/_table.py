"""The evaluation table: every method's metrics per condition, and their means per subgroup."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from ..._anndata import get_conditions, training_mask
from ..._checks import check_unique_var_names, get_de, preview
from ..._conditions import as_condition, condition_genes
from ..._constants import (
    CONDITION_KEY,
    CONTROL,
    DE_KEY,
    N_PERTURBED,
    PROFILE_KEY,
    SPLIT_KEY,
    SUBGROUPS,
)
from ..._profiles import (
    HELD_OUT_CELLS,
    HELD_OUT_LAYER,
    is_profiles,
    measured_profiles,
    split_labels,
)
from ._discrimination import centroid_accuracy, discrimination_score
from ._metrics import METRICS, condition_metrics

logger = logging.getLogger(__name__)

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
    """Score predicted profiles against the measured cells: GEARS' metrics and discriminating ones.

    For each condition, the truth ``y`` is the mean expression of all its measured cells in
    ``adata`` (for a profile with ``layers["held_out_mean"]``, such as the split-half ceiling
    ``sg.tl.baseline(adata, "duplicate")``, the mean of the held-out cells in that layer, so it
    is never scored against the cells it was made from), the prediction ``p`` the predicted mean
    expression (``X`` of the profile), and ``c`` the mean of all control cells of ``adata``
    (GEARS' ``ctrl``, for every method alike, so no method is scored against its own control
    estimate). GEARS' metrics, as its ``compute_metrics``, ``deeper_analysis`` and
    ``non_dropout_analysis`` compute them:

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

    Metrics a prediction of the average perturbation cannot win (the training-mean baseline ties
    GEARS on ``pearson_delta``, GEARS issue #82):

    ``pds``
        Perturbation discrimination (cell-eval's ``discrimination_score_l1``): the share of the
        *other* measured conditions of the screen (every non-control condition with cells in
        ``adata``, not only the evaluated ones) whose measured profile lies strictly farther
        from ``p`` than the condition's own ``y``, in L1 distance over the genes, the
        condition's own target genes left out; ties count as not farther. 1 is perfect, 0 the
        worst; a constant prediction gets about 0.5 over a whole screen, more on conditions with
        weak effects and less on strong ones, so compare methods within a subgroup. NaN when the
        screen has no other measured condition.
    ``pearson_delta_pert``, ``pearson_delta_pert_de``
        Systema's Pearson delta (Vinas Torne et al. 2025): the Pearson correlation of ``p - m``
        with ``y - m``, where ``m`` is the mean of the training perturbations' profiles
        (unweighted, control excluded: the conditions of the split's ``train`` and ``val``
        cells, or every measured perturbation without a split; the ``"mean"`` baseline's
        prediction), over all genes and over the top-20 DE genes. It is 0 for the ``"mean"``
        baseline by construction (a constant change).
    ``centroid_accuracy``
        1 if ``p`` is strictly closer (Euclidean, all genes) to its own ``y`` than to the ``y``
        of every other evaluated condition, else 0; its mean over conditions is Systema's
        centroid accuracy. It depends on which conditions are evaluated together: compare
        methods scored on the same conditions. NaN when only one condition is evaluated.

    The paper's headline metrics are ``mse_de`` and ``pearson_delta``: the error on the genes
    the perturbation moves, and how well the direction and size of the change are predicted.
    ``pearson_de`` (absolute expression on DE genes) is **not** the paper's "Pearson delta" and is
    high even for the no-change baseline; report ``pearson_delta`` (or ``pearson_delta_de``).
    A Pearson correlation of a constant vector is undefined and set to 0, as GEARS does (a change
    within float32 rounding of zero counts as constant). A prediction holding NaN or infinite
    values gets NaN in every metric, with a warning naming the method and conditions, so a
    broken method never looks merely poor. Always report the baselines of
    :func:`~scgears.tl.baseline` and the ``"duplicate"`` ceiling beside a model.

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
    of those sets; ``"all"`` without a split), ``n_perturbed_genes``, ``n_cells`` (measured cells
    the condition is scored against) and the metrics above. :func:`summarize` averages it per
    subgroup.

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
    check_unique_var_names(adata)
    methods = _as_methods(predicted)
    de = get_de(adata, de_key)
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
        check_unique_var_names(profile, name=f"predicted[{name!r}]")
        unknown = profile.var_names.difference(var_names)
        if len(unknown):
            raise ValueError(
                f"Prediction {name!r} has genes not measured in adata: {list(unknown[:10])}."
            )

    # one pass over the cells: every measured condition (pds candidates, the training mean)
    measured = measured_profiles(adata, layer=layer, condition_key=condition_key)
    candidates = [c for c in measured.obs_names if c != CONTROL]
    row = {c: i for i, c in enumerate(measured.obs_names)}
    profiles = np.asarray(measured.X, dtype=np.float64)
    truth = profiles[[row[c] for c in wanted]]
    control_mean = np.asarray(measured.var["control_mean"], dtype=np.float64)
    train_mean = _training_mean(adata, profiles, row, labels, split_key)
    subgroup = split_labels(wanted, split)[1]
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
        own_truth, n_cells = _method_truth(profile, wanted, truth, measured, genes)
        broken = ~np.isfinite(pred).all(axis=1)
        if broken.any():
            warnings.warn(
                f"Prediction {name!r} holds NaN or infinite values for conditions "
                f"{preview([c for c, b in zip(wanted, broken, strict=True) if b])}: their "
                "metrics are NaN. Check the method that made it.",
                RuntimeWarning,
                stacklevel=2,
            )
        frame = condition_metrics(
            pred,
            own_truth,
            control_mean[genes],
            train_mean[genes],
            [_positions(de["top_genes"][c], profile.var_names) for c in wanted],
            [_positions(de["top_non_dropout_genes"][c], profile.var_names) for c in wanted],
        )
        # candidates' profiles; the evaluated conditions' own truth is this method's truth
        pool = profiles[[row[c] for c in candidates]][:, genes]
        pool_row = {c: i for i, c in enumerate(candidates)}
        own = np.array([pool_row[c] for c in wanted], dtype=np.int64)
        pool[own] = own_truth
        frame["pds"] = discrimination_score(
            pred,
            pool,
            own,
            [_positions(condition_genes(c), profile.var_names) for c in wanted],
        )
        frame["centroid_accuracy"] = centroid_accuracy(pred, own_truth)
        frame = frame[list(METRICS)]
        frame.loc[broken, :] = np.nan
        frame.insert(0, "n_cells", n_cells)
        frame.insert(0, N_PERTURBED, measured.obs[N_PERTURBED].to_numpy()[[row[c] for c in wanted]])
        frame.insert(0, "subgroup", subgroup)
        frame.insert(0, "condition", wanted)
        frame.insert(0, "method", name)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    logger.info(
        "Evaluated %d methods on %d conditions (%d measured conditions for pds).",
        len(methods),
        len(wanted),
        len(candidates),
    )
    return table


def _training_mean(adata, profiles, row, labels, split_key) -> np.ndarray:
    """Mean profile of the training perturbations, as the ``"mean"`` baseline computes it."""
    cells = training_mask(adata, split_key, include_val=True)
    trained = sorted(set(labels[cells]) - {CONTROL})
    if not trained:
        raise ValueError(
            "No training perturbation with measured cells: pearson_delta_pert needs the mean "
            "of the training perturbations. Check the split (`sg.pp.split_perturbations`)."
        )
    return profiles[[row[c] for c in trained]].mean(axis=0)


def _method_truth(profile, wanted, truth, measured, genes):
    """What a method is scored against: all cells' mean, or its held-out cells' mean."""
    if HELD_OUT_LAYER not in profile.layers:
        n_cells = measured.obs["n_cells"].to_numpy()[measured.obs_names.get_indexer(wanted)]
        return truth[:, genes], n_cells
    subset = profile[wanted]
    held_out = np.asarray(subset.layers[HELD_OUT_LAYER], dtype=np.float64)
    if HELD_OUT_CELLS in subset.obs.columns:
        n_cells = subset.obs[HELD_OUT_CELLS].to_numpy()
    else:
        n_cells = np.full(len(wanted), np.nan)
    return held_out, n_cells


def summarize(
    table: pd.DataFrame,
    *,
    by: str | Sequence[str] = ("method", "subgroup"),
    metrics: Sequence[str] | None = None,
    skipna: bool = False,
) -> pd.DataFrame:
    """Mean of each metric per method and subgroup, plus an ``"all"`` row per method.

    This is the table GEARS reports: unweighted means over the conditions of each split
    subgroup (``unseen_single``, ``combo_seen0/1/2``), and over all scored conditions.
    A NaN metric of any condition (a broken prediction, see :func:`evaluate`) makes its group's
    mean NaN by default, so a failure is never averaged away.

    Parameters
    ----------
    table
        The output of :func:`evaluate`.
    by
        Columns to group by; the ``"all"`` rows are added when ``"subgroup"`` is one of them.
    metrics
        Metric columns to average (default: those of :func:`evaluate` present in ``table``).
    skipna
        Average over the conditions with a value only; a column ``n_nan`` then counts, per group,
        the conditions with a NaN in any averaged metric.

    Returns
    -------
    A DataFrame with the ``by`` columns, ``n_conditions`` (and ``n_nan`` with ``skipna=True``)
    and the mean of each metric.

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
        # rows already labelled "all" (no split) are counted once, in the "all" row
        parts = [table[table["subgroup"] != "all"], table.assign(subgroup="all")]
    long = pd.concat(parts, ignore_index=True)
    grouped = long.groupby(by, sort=False, observed=True)
    summary = grouped[metrics].agg(lambda values: values.mean(skipna=skipna))
    if skipna:
        # what the means leave out is counted, so skipping hides nothing
        is_nan = long[metrics].isna().any(axis=1)
        n_nan = is_nan.groupby([long[c] for c in by], sort=False, observed=True).sum()
        summary.insert(0, "n_nan", n_nan)
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


def _positions(genes, var_names: pd.Index) -> np.ndarray:
    idx = var_names.get_indexer(np.asarray(genes).astype(str))
    return idx[idx >= 0]

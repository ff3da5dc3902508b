"""Baselines every model result is reported beside, and the split-half ceiling of the data."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from .._anndata import get_conditions, training_mask
from .._checks import check_unique_var_names, preview
from .._conditions import as_condition, condition_genes
from .._constants import CONDITION_KEY, CONTROL, SPLIT_KEY
from .._matrix import expression_matrix, group_stats
from .._profiles import (
    HELD_OUT_CELLS,
    HELD_OUT_LAYER,
    add_split_info,
    make_profiles,
    measured_profiles,
)

logger = logging.getLogger(__name__)

BaselineKind = Literal["control", "mean", "additive", "linear", "duplicate"]
_KINDS = ("control", "mean", "additive", "linear", "duplicate")


def baseline(
    adata: AnnData,
    kind: BaselineKind,
    *,
    conditions: Sequence[str | Sequence[str]] | None = None,
    layer: str | None = None,
    condition_key: str = CONDITION_KEY,
    split_key: str = SPLIT_KEY,
    n_components: int = 10,
    ridge: float = 0.1,
    seed: int = 0,
) -> AnnData:
    """Predict conditions with a simple baseline fitted on the training conditions only.

    Everything is fitted on the cells of the split's ``train`` and ``val`` conditions
    (``obs[split_key]``), or on all cells when there is no split, so no baseline sees a test
    cell. ``b`` is the mean of those control cells and ``y_k`` the mean expression of training
    condition ``k`` (its pseudobulk). The kinds:

    ``"control"``
        No change: every condition is predicted as ``b``.
    ``"mean"``
        The training mean: the unweighted mean of the ``y_k`` over the training perturbations
        (control excluded), each condition counting once whatever its number of cells. This is
        the "train mean" of Ahlmann-Eltze et al. (2024) and of GenePert.
    ``"additive"``
        ``b + sum_g (y_g - b)`` over the genes ``g`` of the condition, with ``y_g`` the training
        single of ``g`` (Ahlmann-Eltze et al.'s additive model; for a single it is ``y_g``). A
        condition with a gene whose single was not measured in training raises an error naming it.
    ``"linear"``
        The linear model of Ahlmann-Eltze, Huber & Anders (2024): the gene embedding ``G`` (genes x
        K) holds the first ``K = n_components`` principal-component scores of the genes in the
        genes x training-conditions matrix of ``y_k`` (control included; each condition's column
        centred, as R's ``prcomp``); a gene's perturbation embedding is its own row of ``G``, a
        condition's the sum over its genes, the control's zero. With ``Y`` the changes ``y_k - b``
        of the training conditions (genes x conditions), ``m`` their row means and ``P`` their
        embeddings (K x conditions), ``W = (G'G + ridge I)^-1 G' (Y - m) P' (P P' + ridge I)^-1``
        and a condition with embedding ``p`` is predicted as ``G W p + m + b``. Training conditions
        with a gene that is not a measured gene (no row in ``G``) are left out of the fit; at
        prediction such a gene contributes a zero embedding, so a condition made only of such
        genes is predicted as ``m + b`` (a warning names them). The published code fits singles;
        scgears also fits training combinations, with summed embeddings as its double-perturbation
        script intends.
    ``"duplicate"``
        The ceiling set by the measurement itself (cell-eval's ``--ceiling``): each condition's
        cells are split at random (with ``seed``) into two halves; the prediction is the mean of
        one half (``n // 2`` cells), and ``layers["held_out_mean"]`` holds the mean of the other,
        which :func:`~scgears.tl.evaluate` scores it against (``obs["n_cells_held_out"]`` cells).
        A method that reached it would be as close to the truth as a repeat of the experiment
        with half the cells. It uses the condition's own cells, test cells included: it is a
        ceiling, not a method. A condition with fewer than 2 cells cannot be split: its
        prediction is NaN, with a warning.

    Parameters
    ----------
    adata
        Cells with registered conditions (and usually a split).
    kind
        ``"control"``, ``"mean"``, ``"additive"``, ``"linear"`` or ``"duplicate"``.
    conditions
        Conditions to predict, labels or gene lists. Default: the split's test conditions, or
        every measured non-control condition without a split.
    layer
        Layer with log-normalised expression instead of ``X``.
    condition_key
        Column of ``obs`` written by :func:`~scgears.pp.register_perturbations`.
    split_key
        Column of ``obs`` written by :func:`~scgears.pp.split_perturbations`.
    n_components
        Embedding dimension ``K`` of ``"linear"`` (reduced to the rank of the training matrix).
    ridge
        Ridge penalty ``lambda`` of ``"linear"``.
    seed
        Seed of the random halves of ``"duplicate"``.

    Returns
    -------
    A profile AnnData (one row per condition, ``X`` the predicted mean expression,
    ``layers["delta"]``, ``var["control_mean"] = b``, ``obs["split"]`` and ``obs["subgroup"]``
    of each condition) with ``uns["scgears_profile"]["source"] = "baseline:<kind>"``.

    Examples
    --------
    >>> import scgears as sg
    >>> adata = sg.datasets.simulate_screen(n_genes=200, n_cells_per_condition=20, seed=0)
    >>> sg.pp.register_perturbations(adata, "perturbation_name")
    >>> sg.pp.split_perturbations(adata, kind="simulation", seed=1)
    >>> pred = sg.tl.baseline(adata, "control")
    >>> pred.uns["scgears_profile"]["source"]
    'baseline:control'
    """
    if kind not in _KINDS:
        raise ValueError(f"Unknown baseline kind {kind!r}; choose one of {', '.join(_KINDS)}.")
    if kind == "linear" and n_components < 1:
        raise ValueError(f"n_components must be at least 1, got {n_components}.")
    if kind == "linear" and ridge < 0:
        raise ValueError(f"ridge must be non-negative, got {ridge}.")
    check_unique_var_names(adata)

    labels = get_conditions(adata, condition_key)
    cells = training_mask(adata, split_key, include_val=True)
    wanted = _conditions(adata, conditions, labels, split_key)
    if kind == "duplicate":
        profiles = _duplicate(adata, wanted, labels, layer, condition_key, seed)
        return add_split_info(profiles, adata.uns.get(split_key))
    trained = sorted(set(np.asarray(labels)[cells].astype(object)) - {CONTROL})
    if not trained:
        raise ValueError("No training perturbation: the baseline has nothing to fit.")
    if kind == "additive":
        singles = {condition_genes(c)[0] for c in trained if len(condition_genes(c)) == 1}
        missing = [c for c in wanted if any(g not in singles for g in condition_genes(c))]
        if missing:
            raise ValueError(
                f"The additive baseline needs the training single of every gene; conditions "
                f"{missing[:10]}"
                + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
                + " have a gene whose single was not measured in the training conditions."
            )

    train = measured_profiles(
        adata, [CONTROL, *trained], layer=layer, condition_key=condition_key, cells=cells
    )
    means = np.asarray(train.X, dtype=np.float64)
    control = np.asarray(train.var["control_mean"], dtype=np.float64)
    row = {c: i for i, c in enumerate(train.obs_names)}
    if kind == "control":
        pred = np.repeat(control[None, :], len(wanted), axis=0)
    elif kind == "mean":
        pred = np.repeat(means[[row[c] for c in trained]].mean(axis=0)[None, :], len(wanted), 0)
    elif kind == "additive":
        pred = np.stack(
            [control + sum(means[row[g]] - control for g in condition_genes(c)) for c in wanted]
        )
    else:
        pred = _linear(
            means, control, list(train.obs_names), adata.var_names, wanted, n_components, ridge
        )
    logger.info("Baseline %r for %d conditions, fitted on %d.", kind, len(wanted), len(trained))
    profiles = make_profiles(wanted, adata.var_names, pred, control, source=f"baseline:{kind}")
    return add_split_info(profiles, adata.uns.get(split_key))


def _duplicate(adata, wanted, labels, layer, condition_key: str, seed: int) -> AnnData:
    """The split-half ceiling (see :func:`baseline`): one pass, two groups per condition."""
    if CONTROL in wanted:
        raise ValueError(f"The control {CONTROL!r} is not a perturbation: leave it out.")
    values = np.asarray(labels).astype(object)
    rows = {c: np.flatnonzero(values == c) for c in wanted}
    missing = [c for c, r in rows.items() if len(r) == 0]
    if missing:
        raise ValueError(
            f"The duplicate baseline needs measured cells; conditions {preview(missing)} have "
            f"none in obs[{condition_key!r}]: pass conditions= without them."
        )
    rng = np.random.default_rng(seed)
    # groups: 0 = control (all its cells), 2i + 1 = predicting half, 2i + 2 = held-out half
    codes = np.full(adata.n_obs, -1, dtype=np.int64)
    codes[values == CONTROL] = 0
    for i, c in enumerate(wanted):
        shuffled = rng.permutation(rows[c])
        half = len(shuffled) // 2
        codes[shuffled[:half]] = 2 * i + 1
        codes[shuffled[half:]] = 2 * i + 2
    groups = pd.Index(["ctrl"] + [f"{c}#{h}" for c in wanted for h in ("a", "b")])
    stats = group_stats(expression_matrix(adata, layer), codes, groups)
    if stats.n_cells[0] == 0:
        raise ValueError("No control cells: cannot compute the control mean.")
    means = stats.means
    pred = means[1::2].copy()
    too_few = [c for i, c in enumerate(wanted) if stats.n_cells[2 * i + 1] == 0]
    if too_few:
        warnings.warn(
            f"Conditions {preview(too_few)} have fewer than 2 cells and cannot be split in "
            "halves: their duplicate prediction is NaN.",
            RuntimeWarning,
            stacklevel=3,
        )
        pred[[wanted.index(c) for c in too_few]] = np.nan
    profiles = make_profiles(
        wanted,
        adata.var_names,
        pred,
        means[0],
        source="baseline:duplicate",
        obs=pd.DataFrame({"n_cells": stats.n_cells[1::2], HELD_OUT_CELLS: stats.n_cells[2::2]}),
    )
    profiles.layers[HELD_OUT_LAYER] = means[2::2].astype(np.float32)
    profiles.uns["scgears_profile"]["seed"] = int(seed)
    logger.info("Duplicate (split-half) ceiling for %d conditions, seed %d.", len(wanted), seed)
    return profiles


def _conditions(adata, conditions, labels, split_key: str) -> list[str]:
    if conditions is None:
        split = adata.uns.get(split_key)
        if split is not None and "conditions" in split:
            wanted = [as_condition(c) for c in split["conditions"]["test"]]
        else:
            present = np.unique(np.asarray(labels).astype(object))
            wanted = [c for c in present if c != CONTROL]
    else:
        if isinstance(conditions, str):
            conditions = [conditions]
        wanted = [as_condition(c) for c in conditions]
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        raise ValueError("No conditions to predict: pass conditions=.")
    return wanted


def _linear(means, control, train_conditions, var_names, wanted, n_components, ridge):
    """Ahlmann-Eltze et al.'s linear model (see :func:`baseline`); ``means`` rows are conditions."""
    gene_row = {g: i for i, g in enumerate(var_names)}
    # gene embedding: PCA scores of the genes; variables = training conditions, centred
    matrix = means.T  # genes x conditions
    centred = matrix - matrix.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = min(n_components, len(s))
    if k < n_components:
        logger.warning("Linear baseline: n_components reduced from %d to %d.", n_components, k)
    embedding = u[:, :k] * s[:k]  # genes x K

    def perturbation(condition: str) -> np.ndarray | None:
        genes = condition_genes(condition)
        if any(g not in gene_row for g in genes):
            return None
        return embedding[[gene_row[g] for g in genes]].sum(axis=0) if genes else np.zeros(k)

    fit = [(i, p) for i, c in enumerate(train_conditions) if (p := perturbation(c)) is not None]
    left_out = [c for c in train_conditions if perturbation(c) is None]
    if left_out:
        logger.info(
            "Linear baseline: %d training conditions with unmeasured genes left out of the fit.",
            len(left_out),
        )
    change = matrix[:, [i for i, _ in fit]] - control[:, None]  # genes x fitted conditions
    centre = change.mean(axis=1)
    pert = np.stack([p for _, p in fit], axis=1)  # K x fitted conditions
    eye = np.eye(k)
    left = np.linalg.solve(embedding.T @ embedding + ridge * eye, embedding.T)
    weights = (
        left @ (change - centre[:, None]) @ pert.T @ np.linalg.inv(pert @ pert.T + ridge * eye)
    )

    unknown = sorted({g for c in wanted for g in condition_genes(c) if g not in gene_row})
    if unknown:
        logger.warning(
            "Linear baseline: genes %s are not measured genes and get a zero embedding.",
            unknown[:10],
        )
    targets = np.stack(
        [
            embedding[[gene_row[g] for g in condition_genes(c) if g in gene_row]].sum(axis=0)
            for c in wanted
        ]
    )  # conditions x K
    return (embedding @ weights @ targets.T).T + centre[None, :] + control[None, :]

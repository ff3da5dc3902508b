"""Profiles: one row per condition, the shape shared by measured means, predictions and baselines.

A profile AnnData has ``obs`` indexed by canonical condition label (columns ``condition`` and
``n_perturbed_genes``), ``var`` = the genes with ``var["control_mean"]``, ``X`` = mean
log-normalised expression, ``layers["delta"]`` = ``X`` minus the control mean and, for models
trained with it, ``layers["uncertainty"]``. ``uns["scgears_profile"]["source"]`` says where it
came from.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from ._anndata import get_conditions
from ._conditions import as_condition, n_genes
from ._constants import CONDITION_KEY, CONTROL, N_PERTURBED, PROFILE_KEY
from ._matrix import expression_matrix, group_stats


def make_profiles(
    conditions: Sequence[str],
    var_names: Sequence[str],
    mean: np.ndarray,
    control_mean: np.ndarray,
    *,
    source: str,
    uncertainty: np.ndarray | None = None,
    obs: pd.DataFrame | None = None,
) -> AnnData:
    """Assemble a profile AnnData (see the module docstring)."""
    conditions = [as_condition(c) for c in conditions]
    mean = np.asarray(mean, dtype=np.float32)
    control_mean = np.asarray(control_mean, dtype=np.float32).ravel()
    frame = pd.DataFrame(
        {
            "condition": pd.Categorical(conditions),
            N_PERTURBED: np.array([n_genes(c) for c in conditions], dtype=np.int64),
        },
        index=pd.Index(conditions, name="condition_label"),
    )
    if obs is not None:
        for column in obs.columns:
            frame[column] = obs[column].to_numpy()
    var = pd.DataFrame({"control_mean": control_mean}, index=pd.Index(var_names).astype(str))
    profiles = AnnData(X=mean, obs=frame, var=var)
    profiles.layers["delta"] = mean - control_mean[None, :]
    if uncertainty is not None:
        profiles.layers["uncertainty"] = np.asarray(uncertainty, dtype=np.float32)
    profiles.uns[PROFILE_KEY] = {"source": source}
    return profiles


def is_profiles(data) -> bool:
    """Whether ``data`` is a profile AnnData rather than cells."""
    return (
        isinstance(data, AnnData)
        and "delta" in data.layers
        and "control_mean" in data.var.columns
        and PROFILE_KEY in data.uns
    )


def measured_profiles(
    adata: AnnData,
    conditions: Sequence[str] | None = None,
    *,
    layer: str | None = None,
    condition_key: str = CONDITION_KEY,
    cells: np.ndarray | None = None,
) -> AnnData:
    """Mean measured expression per condition, as a profile AnnData (one chunked pass).

    ``cells`` (a boolean mask) restricts the cells used; the control mean always comes from
    control cells within it. ``obs["n_cells"]`` counts the cells behind each row.
    """
    labels = get_conditions(adata, condition_key)
    categories = pd.Index(labels.categories)
    codes = np.asarray(labels.codes).copy()
    if cells is not None:
        codes[~np.asarray(cells, dtype=bool)] = -1
    stats = group_stats(expression_matrix(adata, layer), codes, categories)
    if stats.n_cells[stats.loc(CONTROL)] == 0:
        raise ValueError(
            "No control cells among the selected cells: cannot compute the control mean."
        )
    if conditions is None:
        wanted = [c for c, n in zip(categories, stats.n_cells, strict=True) if n > 0]
    else:
        wanted = [as_condition(c) for c in conditions]
        missing = [c for c in wanted if c not in categories or stats.n_cells[stats.loc(c)] == 0]
        if missing:
            raise ValueError(
                f"No measured cells for conditions {missing[:10]}"
                + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
                + f" in obs[{condition_key!r}]."
            )
    rows = np.array([stats.loc(c) for c in wanted], dtype=np.int64)
    means = stats.means
    profiles = make_profiles(
        wanted,
        adata.var_names,
        means[rows],
        means[stats.loc(CONTROL)],
        source="measured",
        obs=pd.DataFrame({"n_cells": stats.n_cells[rows]}),
    )
    return profiles

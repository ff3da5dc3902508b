"""Profiles: one row per condition, the shape shared by measured means, predictions and baselines.

A profile AnnData has ``obs`` indexed by canonical condition label (columns ``condition`` and
``n_perturbed_genes``), ``var`` = the genes with ``var["control_mean"]``, ``X`` = mean
log-normalised expression, ``layers["delta"]`` = ``X`` minus the control mean and, for models
trained with it, ``layers["uncertainty"]``. ``uns["scgears_profile"]["source"]`` says where it
came from. :func:`add_split_info` adds the ``split`` and ``subgroup`` of each condition.

A profile may carry ``layers["held_out_mean"]`` (:data:`HELD_OUT_LAYER`): the mean of measured
cells it was *not* computed from (the split-half ceiling of ``sg.tl.baseline(..., "duplicate")``).
``sg.tl.evaluate`` then scores the profile against that layer instead of all of the condition's
cells, so a profile is never scored against the cells it was made from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from ._anndata import get_conditions
from ._conditions import as_condition, condition_genes, n_genes
from ._constants import CONDITION_KEY, CONTROL, N_PERTURBED, PROFILE_KEY, SPLIT_SETS
from ._matrix import expression_matrix, group_stats

#: Layer of a profile holding the mean of the measured cells it must be scored against.
HELD_OUT_LAYER = "held_out_mean"
#: ``obs`` column of such a profile: the number of cells behind :data:`HELD_OUT_LAYER`.
HELD_OUT_CELLS = "n_cells_held_out"
#: ``obs["subgroup"]`` of profiles when there is no split.
NO_SPLIT = "all"


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


def add_split_info(profiles: AnnData, split_info: Mapping | None) -> AnnData:
    """Write each condition's ``split`` and ``subgroup`` into ``profiles.obs``, in place.

    ``split_info`` is the split's ``adata.uns["scgears_split"]`` (written by
    ``sg.pp.split_perturbations``), or ``None`` when there is no split. The columns:

    ``split``
        Categorical ``train`` / ``val`` / ``test``: the set the condition belongs to; missing
        (NaN) for conditions outside the split (not measured, or the control when it is absent).
    ``subgroup``
        The test subgroup recorded by the split (``unseen_single``, ``combo_seen0/1/2``, ...) for
        test conditions; ``"train"`` or ``"val"`` for conditions of those sets; for conditions
        outside the split, the paper's rule applied with the genes whose single is in ``train`` or
        ``val`` (``unseen_single``, ``seen_single``, ``combo_seen{k}``); ``"all"`` for every
        condition without a split. These are the labels of ``sg.tl.evaluate``'s ``subgroup``.

    Parameters
    ----------
    profiles
        A profile AnnData (``model.predict``, ``sg.tl.baseline``, ``sg.tl.measured_profiles``).
    split_info
        ``adata.uns["scgears_split"]`` or ``None``.

    Returns
    -------
    ``profiles``, for chaining.

    Examples
    --------
    >>> import scgears as sg
    >>> from scgears._profiles import add_split_info
    >>> adata = sg.datasets.simulate_screen(n_genes=200, n_cells_per_condition=20, seed=0)
    >>> sg.pp.register_perturbations(adata, "perturbation_name")
    >>> sg.pp.split_perturbations(adata, kind="simulation", seed=1)
    >>> pred = sg.tl.baseline(adata, "control")
    >>> _ = add_split_info(pred, adata.uns["scgears_split"])
    >>> set(pred.obs["split"])
    {'test'}
    """
    conditions = [str(c) for c in profiles.obs_names]
    split_of, subgroup_of = split_labels(conditions, split_info)
    profiles.obs["split"] = pd.Categorical(
        [split_of.get(c) for c in conditions], categories=list(SPLIT_SETS)
    )
    profiles.obs["subgroup"] = pd.Categorical(subgroup_of)
    return profiles


def split_labels(
    conditions: Sequence[str], split_info: Mapping | None
) -> tuple[dict[str, str], list[str]]:
    """``({condition: set}, [subgroup of each condition])``, as :func:`add_split_info` says."""
    if split_info is None:
        return {}, [NO_SPLIT] * len(conditions)
    if not isinstance(split_info, Mapping) or "conditions" not in split_info:
        raise ValueError(
            "split_info must be adata.uns['scgears_split'] as written by "
            "`sg.pp.split_perturbations` (a dict with 'conditions'), or None."
        )
    split_of: dict[str, str] = {}
    for name in SPLIT_SETS:
        for c in split_info["conditions"].get(name, []):
            split_of[as_condition(c)] = name
    test_subgroup = {
        as_condition(c): str(group)
        for group, members in split_info.get("subgroups", {}).items()
        for c in members
    }
    seen = {
        condition_genes(c)[0]
        for c, name in split_of.items()
        if name in ("train", "val") and len(condition_genes(c)) == 1
    }
    subgroups = []
    for c in conditions:
        name = split_of.get(c)
        if name in ("train", "val"):
            subgroups.append(name)
        elif name == "test":
            subgroups.append(test_subgroup.get(c, "test"))
        else:
            subgroups.append(_rule_subgroup(c, seen))
    return split_of, subgroups


def _rule_subgroup(condition: str, seen: set[str]) -> str:
    """The paper's subgroup of a condition outside the split (see :func:`add_split_info`)."""
    genes = condition_genes(condition)
    if not genes:
        return CONTROL
    if len(genes) == 1:
        return "seen_single" if genes[0] in seen else "unseen_single"
    return f"combo_seen{sum(g in seen for g in genes)}"

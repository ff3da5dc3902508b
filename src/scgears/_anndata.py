"""AnnData accessors shared by pp, model, tl and pl: the registered conditions and the split."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from ._constants import CONDITION_KEY, CONTROL, SPLIT_KEY


def get_conditions(adata: AnnData, condition_key: str = CONDITION_KEY) -> pd.Categorical:
    """Return the canonical conditions of ``adata``; the error says which function to run."""
    if condition_key not in adata.obs.columns:
        raise KeyError(
            f"obs[{condition_key!r}] not found: register the perturbations first with "
            "`sg.pp.register_perturbations(adata, perturbation_key=...)`"
            + (
                " (or pass condition_key= naming the column it wrote)."
                if condition_key == CONDITION_KEY
                else "."
            )
        )
    values = adata.obs[condition_key]
    if not isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype("category")
    cats = values.cat.categories
    if CONTROL not in cats:
        raise ValueError(
            f"obs[{condition_key!r}] has no control condition {CONTROL!r}. Register the "
            "perturbations with `sg.pp.register_perturbations(..., control=<your control label>)`."
        )
    return values.array


def get_split(adata: AnnData, split_key: str = SPLIT_KEY) -> np.ndarray | None:
    """Return the per-cell split (``train``/``val``/``test``) or ``None`` when there is none."""
    if split_key not in adata.obs.columns:
        return None
    return adata.obs[split_key].astype(str).to_numpy()


def training_mask(adata: AnnData, split_key: str = SPLIT_KEY, *, include_val: bool = False):
    """Cells a fitted statistic may see: the split's train (and val) cells; all without a split."""
    split = get_split(adata, split_key)
    if split is None:
        return np.ones(adata.n_obs, dtype=bool)
    allowed = ("train", "val") if include_val else ("train",)
    return np.isin(split, allowed)

"""Predict every pair of a gene panel: the input of a genetic-interaction map."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from anndata import AnnData

from .._conditions import condition_label
from .._constants import PROFILE_KEY
from .._profiles import is_profiles

logger = logging.getLogger(__name__)


def predict_combinations(
    model,
    genes: Sequence[str],
    *,
    include_singles: bool = True,
    batch_size: int = 512,
    progress_bar: bool = True,
) -> AnnData:
    """Predict all pairs of a gene panel (and its singles) with a trained model.

    The conditions are the panel's singles (when ``include_singles``), then its
    ``n (n - 1) / 2`` pairs in the order of :func:`itertools.combinations`, passed to
    ``model.predict`` ``batch_size`` conditions at a time, with a progress bar. A model computes
    each condition's change once, so a 100-gene panel (4,950 pairs) takes seconds. The result is
    the input of :func:`~scgears.tl.genetic_interactions`, which needs the singles.

    Parameters
    ----------
    model
        A trained model with ``predict(perturbations, *, batch_size=...)`` returning a profile
        AnnData, such as :class:`scgears.model.GEARS`.
    genes
        The panel: distinct gene names the model can perturb.
    include_singles
        Also predict each gene alone.
    batch_size
        Conditions per call of ``model.predict`` (and its own batch size).
    progress_bar
        Show a tqdm progress bar over the conditions.

    Returns
    -------
    One profile AnnData with a row per condition (``obs["n_perturbed_genes"]`` is 1 for singles,
    2 for pairs); ``uns["scgears_profile"]`` keeps the model's entry, with ``"panel"`` added.

    Examples
    --------
    >>> import scgears as sg
    >>> adata = sg.datasets.simulate_screen(n_genes=200, n_cells_per_condition=20, seed=0)
    >>> sg.pp.register_perturbations(adata, "perturbation_name")
    >>> class AdditiveModel:  # any object with predict(perturbations, batch_size=) works
    ...     def predict(self, perturbations, *, batch_size=512):
    ...         return sg.tl.baseline(adata, "additive", conditions=perturbations)
    >>> conditions = adata.obs["scgears_condition"].unique()
    >>> singles = [c for c in conditions if c != "ctrl" and "+" not in c]
    >>> grid = sg.tl.predict_combinations(AdditiveModel(), singles[:4], progress_bar=False)
    >>> grid.n_obs
    10
    """
    panel = [str(g) for g in genes] if not isinstance(genes, str) else [genes]
    duplicated = sorted({g for g in panel if panel.count(g) > 1})
    if duplicated:
        raise ValueError(f"genes has duplicates: {duplicated[:10]}; pass each gene once.")
    if len(panel) < 2:
        raise ValueError(f"A panel needs at least 2 genes, got {panel}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if not callable(getattr(model, "predict", None)):
        raise TypeError(f"model must have a predict method, got {type(model).__name__}.")

    perturbations = [[g] for g in panel] if include_singles else []
    perturbations += [list(pair) for pair in combinations(panel, 2)]
    expected = [condition_label(p) for p in perturbations]
    parts = []
    with _progress(len(perturbations), progress_bar) as bar:
        for start in range(0, len(perturbations), batch_size):
            chunk = perturbations[start : start + batch_size]
            part = model.predict(chunk, batch_size=batch_size)
            if not is_profiles(part):
                raise TypeError("model.predict must return a profile AnnData.")
            labels = [condition_label(p) for p in chunk]
            if list(part.obs_names) != labels:
                missing = [c for c in labels if c not in part.obs_names]
                if missing:
                    raise ValueError(f"model.predict did not return conditions {missing[:10]}.")
                part = part[labels]
            parts.append(part)
            bar.update(len(chunk))
    result = _stack(parts)
    if list(result.obs_names) != expected:  # pragma: no cover - guarded above
        raise RuntimeError("Predicted conditions do not match the requested ones.")
    result.uns[PROFILE_KEY] = {**dict(parts[0].uns.get(PROFILE_KEY, {})), "panel": np.array(panel)}
    logger.info("Predicted %d conditions of a %d-gene panel.", result.n_obs, len(panel))
    return result


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc="conditions", unit="cond")


def _stack(parts: list[AnnData]) -> AnnData:
    """Concatenate profile AnnData row-wise (same genes), keeping every layer they all share."""
    first = parts[0]
    for part in parts[1:]:
        if not part.var_names.equals(first.var_names):
            raise ValueError("model.predict returned different genes in different calls.")
    obs = pd.concat([p.obs for p in parts])
    for column in obs.columns:
        if isinstance(first.obs[column].dtype, pd.CategoricalDtype):
            obs[column] = pd.Categorical(obs[column].astype(object))
    layers = set(first.layers)
    for part in parts[1:]:
        layers &= set(part.layers)
    stacked = AnnData(
        X=np.vstack([np.asarray(p.X) for p in parts]),
        obs=obs,
        var=first.var.copy(),
        layers={k: np.vstack([np.asarray(p.layers[k]) for p in parts]) for k in sorted(layers)},
    )
    return stacked

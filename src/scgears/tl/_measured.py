"""Measured per-condition profiles, in exactly the shape of a prediction."""

from __future__ import annotations

from collections.abc import Sequence

from anndata import AnnData

from .._anndata import get_conditions
from .._checks import check_unique_var_names
from .._constants import CONDITION_KEY, CONTROL, SPLIT_KEY
from .._profiles import add_split_info
from .._profiles import measured_profiles as _measured_profiles


def measured_profiles(
    adata: AnnData,
    conditions: Sequence[str | Sequence[str]] | None = None,
    *,
    layer: str | None = None,
    condition_key: str = CONDITION_KEY,
    split_key: str = SPLIT_KEY,
) -> AnnData:
    """Mean measured expression of each condition, shaped as a prediction.

    The same AnnData as ``model.predict`` and :func:`~scgears.tl.baseline` return, so any
    function that takes a prediction takes the measurement too (``tl.genetic_interactions``,
    ``pl.perturbation`` markers, scanpy, decoupler). All cells of a condition are averaged,
    whatever their split; the control mean is the mean of all control cells.

    Parameters
    ----------
    adata
        Cells with registered conditions (:func:`~scgears.pp.register_perturbations`).
    conditions
        Conditions to return, as labels or gene lists, ``"ctrl"`` included if wanted. Default:
        every measured perturbation (the control left out), in the order of the categories.
    layer
        Layer with log-normalised expression instead of ``X``.
    condition_key
        Column of ``obs`` written by :func:`~scgears.pp.register_perturbations`.
    split_key
        Key of the split written by :func:`~scgears.pp.split_perturbations` (used when present).

    Returns
    -------
    A profile AnnData: one row per condition (``obs_names`` the canonical labels), ``obs``
    columns ``condition``, ``n_perturbed_genes``, ``n_cells`` (cells averaged), ``split``
    (``train`` / ``val`` / ``test``, NaN without a split) and ``subgroup`` (the labels of
    :func:`~scgears.tl.evaluate`: ``unseen_single``, ``combo_seen0/1/2``, ``train``, ``val``,
    or ``"all"`` without a split); ``var["control_mean"]``; ``X`` the mean expression and
    ``layers["delta"]`` its difference from the control mean;
    ``uns["scgears_profile"]["source"] = "measured"``.

    Examples
    --------
    >>> import scgears as sg
    >>> adata = sg.datasets.simulate_screen(n_genes=200, n_cells_per_condition=20, seed=0)
    >>> sg.pp.register_perturbations(adata, "perturbation_name")
    >>> sg.pp.split_perturbations(adata, kind="simulation", seed=1)
    >>> measured = sg.tl.measured_profiles(adata)
    >>> list(measured.obs.columns)
    ['condition', 'n_perturbed_genes', 'n_cells', 'split', 'subgroup']
    """
    check_unique_var_names(adata)
    if conditions is None:
        labels = get_conditions(adata, condition_key)
        counts = labels.value_counts()
        conditions = [c for c in labels.categories if c != CONTROL and counts.get(c, 0) > 0]
        if not conditions:
            raise ValueError(f"No perturbed cells in obs[{condition_key!r}]: nothing to average.")
    elif isinstance(conditions, str):
        conditions = [conditions]
    profiles = _measured_profiles(adata, conditions, layer=layer, condition_key=condition_key)
    return add_split_info(profiles, adata.uns.get(split_key))

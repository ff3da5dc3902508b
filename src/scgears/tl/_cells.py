"""Cells from profiles: a cell-level AnnData that cell-eval, pertpy and scanpy take as it is."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .._anndata import get_conditions, training_mask
from .._checks import preview
from .._conditions import condition_genes
from .._constants import CONDITION_KEY, CONTROL, CONTROL_LABEL, N_PERTURBED, SPLIT_KEY
from .._matrix import expression_matrix, read_rows
from .._noise import fit_noise_model, recover_counts
from .._profiles import is_profiles

logger = logging.getLogger(__name__)

CELLS_KEY = "scgears_cells"
_CONTROL_CELLS = ("sampled", "measured")
#: Profile ``obs`` columns not copied to the cells (they describe the profile, not a cell).
_PROFILE_ONLY = ("condition", "n_cells", N_PERTURBED)


def sample_cells(
    adata: AnnData,
    profiles: AnnData,
    n_cells: int | None = None,
    *,
    seed: int = 0,
    n_control_cells: int | None = None,
    control_cells: Literal["sampled", "measured"] = "sampled",
    layer: str | None = None,
    condition_key: str = CONDITION_KEY,
    split_key: str = SPLIT_KEY,
    perturbation_key: str = "perturbation",
    control_label: str = CONTROL_LABEL,
) -> AnnData:
    """Sample cells of each condition of a profile AnnData, with the noise of measured cells.

    A profile (a prediction, a baseline or measured means) has one row per condition; cell-eval,
    pertpy's distances and scanpy's DE need cells, with control cells beside them. For each
    condition this draws ``n_cells`` cells whose mean log-normalised expression is the profile's,
    from a count noise model fitted to the measured cells of ``adata``'s training conditions (the
    split's ``train`` and ``val`` cells, or all cells without a split, so no test cell is seen):

    - a cell's scale (target sum over its total count) is drawn from the measured cells' scales;
    - its count of each gene is negative binomial with gene-wise overdispersion estimated within
      the training conditions (a gene's spread around its own condition's mean, shrunk towards the
      median of the well-measured genes for rarely expressed ones), and a mean chosen per gene so
      that the expected ``log1p`` of the scaled count is the profile's value;
    - the cell's expression is ``log1p(scale * count)``, as ``sc.pp.normalize_total`` and
      ``sc.pp.log1p`` make it: never negative, exactly zero where the count is zero (sparse).

    Counts are recovered from ``adata``'s log-normalised expression (the smallest non-zero value
    of a cell is a count of one), so ``X`` (or ``layer``) must be log1p of normalised counts.
    Negative profile values (older predictions) count as zero, with a warning. The model draws
    genes independently given a cell's scale: gene-gene correlations of real cells are not
    reproduced. See the documentation page "Predicted cells" for its validation on the Norman
    subset (DE genes per condition, zero fractions).

    Parameters
    ----------
    adata
        The measured cells the profiles came from (the model's training data), with registered
        conditions and usually a split.
    profiles
        A profile AnnData: ``model.predict(...)``, ``sg.tl.baseline(...)`` or measured profiles.
        Its genes must be genes of ``adata``. A ``ctrl`` row is skipped (control cells are
        added once, see ``control_cells``).
    n_cells
        Cells per condition. Default: ``profiles.obs["n_cells"]`` when it exists (measured
        profiles: as many cells as were measured), otherwise the median number of cells of the
        training conditions.
    seed
        Seed of the random draws: the same seed gives the same cells.
    n_control_cells
        Control cells. Default: as many as measured training control cells.
    control_cells
        ``"sampled"`` (default): control cells are drawn by the same noise model from the
        profile's control mean (``var["control_mean"]``), so that any difference between them and
        a condition's cells comes from the profile, not from the noise model. ``"measured"``: the
        measured training control cells themselves (a random subset of ``n_control_cells``).
    layer
        Layer of ``adata`` with log-normalised expression instead of ``X``.
    condition_key
        Column of ``adata.obs`` written by :func:`~scgears.pp.register_perturbations`.
    split_key
        Column of ``adata.obs`` written by :func:`~scgears.pp.split_perturbations`.
    perturbation_key
        Column of the result naming each cell's condition in pertpy's style (``"KLF1"``,
        ``"CBL+CNN1"``, ``control_label`` for control cells), the column cell-eval and pertpy are
        pointed to.
    control_label
        Label of control cells in ``obs[perturbation_key]``.

    Returns
    -------
    AnnData of cells: ``X`` log-normalised expression (sparse CSR, float32), ``layers["counts"]``
    the sampled counts, ``obs[perturbation_key]`` and ``obs[condition_key]`` (canonical labels,
    ``ctrl`` for control, so ``sg.tl`` functions take the cells too), ``obs["n_perturbed_genes"]``,
    the profile's other per-condition columns (e.g. ``split``, ``subgroup``), ``var`` the profile's
    genes with ``var["control_mean"]``, ``var["overdispersion"]`` and the share of zeros in the
    fitted cells, measured and under the model (``var["zero_fraction_measured"]``,
    ``var["zero_fraction_model"]``: a check of the fit), and
    ``uns["scgears_cells"]`` (source, seed, cells per condition, control cells).

    Examples
    --------
    >>> import scgears as sg
    >>> adata = sg.datasets.simulate_screen(n_genes=100, n_cells_per_condition=20, seed=0)
    >>> sg.pp.register_perturbations(adata, perturbation_key="perturbation_name")
    >>> profiles = sg.tl.baseline(adata, "mean")  # or model.predict(...)
    >>> cells = sg.tl.sample_cells(adata, profiles, n_cells=50, seed=0)
    >>> int((cells.obs["perturbation"] == "control").sum())
    100
    """
    if not is_profiles(profiles):
        raise TypeError(
            "profiles must be a profile AnnData (one row per condition, layers['delta'] and "
            "var['control_mean']), as returned by model.predict, sg.tl.baseline or "
            f"sg.tl.measured_profiles; got {type(profiles).__name__} without them."
        )
    if control_cells not in _CONTROL_CELLS:
        raise ValueError(f"control_cells={control_cells!r}: use one of {list(_CONTROL_CELLS)}.")
    for name, value in (("n_cells", n_cells), ("n_control_cells", n_control_cells)):
        if value is not None and (not isinstance(value, int | np.integer) or value < 1):
            raise ValueError(f"{name}={value!r}: pass a positive number of cells (or None).")
    missing = profiles.var_names.difference(adata.var_names)
    if len(missing):
        raise ValueError(
            f"{len(missing)} genes of the profiles are not genes of adata: {preview(missing)}. "
            "Pass the AnnData the profiles were computed from."
        )
    labels = get_conditions(adata, condition_key)
    conditions = profiles.obs_names.astype(str)
    if CONTROL in set(conditions):
        # measured profiles of every condition include it; control cells come from control_cells=
        logger.info("The profiles' %r row is skipped: control cells are added once.", CONTROL)
        profiles = profiles[conditions != CONTROL]
        conditions = profiles.obs_names.astype(str)

    genes = adata.var_names.get_indexer(profiles.var_names)
    allowed = training_mask(adata, split_key, include_val=True)
    codes = np.where(allowed, np.asarray(labels.codes), -1)
    matrix = expression_matrix(adata, layer)
    control_code = int(pd.Index(labels.categories).get_loc(CONTROL))
    n_train_control = int(np.sum(codes == control_code))
    if n_train_control == 0:
        raise ValueError(
            f"No training control cells in obs[{condition_key!r}] == {CONTROL!r}: the noise "
            "model and the control cells need them."
        )
    noise = fit_noise_model(matrix, codes, len(labels.categories))
    noise = noise.subset(genes)

    if n_cells is None:
        if "n_cells" in profiles.obs.columns:
            per_condition = profiles.obs["n_cells"].to_numpy(dtype=np.int64)
        else:
            counts = np.bincount(codes[codes >= 0], minlength=len(labels.categories))
            counts[control_code] = 0
            typical = int(np.median(counts[counts > 0])) if np.any(counts > 0) else 100
            per_condition = np.full(len(conditions), typical, dtype=np.int64)
    else:
        per_condition = np.full(len(conditions), int(n_cells), dtype=np.int64)
    n_control = n_train_control if n_control_cells is None else int(n_control_cells)

    mean_log = np.asarray(profiles.X, dtype=np.float64)
    if np.any(mean_log < 0):
        logger.warning(
            "%.1f%% of the profile values are negative (down to %.3g): sampled as zero.",
            100 * np.mean(mean_log < 0),
            mean_log.min(),
        )
    control_mean = profiles.var["control_mean"].to_numpy(dtype=np.float64)[None, :]
    mu = noise.normalised_mean(np.vstack([control_mean, mean_log]))

    rng = np.random.default_rng(seed)
    blocks, count_blocks, names = [], [], []
    if control_cells == "sampled":
        logged, counted = noise.sample(mu[0], n_control, rng)
    else:
        rows = np.flatnonzero(codes == control_code)
        rows = np.sort(rng.choice(rows, size=min(n_control, len(rows)), replace=False))
        measured = sp.csr_matrix(read_rows(matrix, rows, dense=False, dtype=np.float64))
        logged = sp.csr_matrix(measured[:, genes], dtype=np.float32)
        # counts from whole cells: a cell's smallest value over all genes is a count of one
        counted = sp.csr_matrix(recover_counts(measured, 0)[0][:, genes], dtype=np.float32)
    blocks.append(logged)
    count_blocks.append(counted)
    names.append(np.repeat(CONTROL, logged.shape[0]))
    for i, condition in enumerate(conditions):
        logged, counted = noise.sample(mu[i + 1], int(per_condition[i]), rng)
        blocks.append(logged)
        count_blocks.append(counted)
        names.append(np.repeat(condition, per_condition[i]))

    canonical = np.concatenate(names)
    obs = pd.DataFrame(index=pd.Index(_cell_names(canonical), name="cell"))
    pertpy_labels = {c: c for c in conditions} | {CONTROL: control_label}
    obs[perturbation_key] = pd.Categorical(
        [pertpy_labels[c] for c in canonical], categories=[control_label, *conditions]
    )
    obs[condition_key] = pd.Categorical(canonical, categories=[CONTROL, *conditions])
    obs[N_PERTURBED] = np.array(
        [0 if c == CONTROL else len(condition_genes(c)) for c in canonical], dtype=np.int64
    )
    for column in profiles.obs.columns:
        if column in _PROFILE_ONLY or column in obs.columns:
            continue
        values = profiles.obs[column].reindex(canonical)
        obs[column] = values.to_numpy()
    var = pd.DataFrame(
        {
            "control_mean": control_mean.ravel().astype(np.float32),
            "overdispersion": noise.phi,
            "zero_fraction_measured": noise.observed_zero,
            "zero_fraction_model": noise.expected_zero,
        },
        index=profiles.var_names.copy(),
    )
    cells = AnnData(X=sp.vstack(blocks, format="csr"), obs=obs, var=var)
    cells.layers["counts"] = sp.vstack(count_blocks, format="csr")
    source = profiles.uns.get("scgears_profile", {}).get("source", "profiles")
    cells.uns[CELLS_KEY] = {
        "source": str(source),
        "seed": int(seed),
        "n_cells": int(per_condition.max()) if len(per_condition) else 0,
        "control_cells": control_cells,
        "n_control_cells": int(cells.n_obs - per_condition.sum()),
        "perturbation_key": perturbation_key,
        "control_label": control_label,
    }
    logger.info(
        "Sampled %d cells of %d conditions and %d control cells (%s).",
        int(per_condition.sum()),
        len(conditions),
        cells.uns[CELLS_KEY]["n_control_cells"],
        control_cells,
    )
    return cells


def _cell_names(canonical: np.ndarray) -> list[str]:
    """Unique cell names: the condition and the cell's number within it."""
    seen: dict[str, int] = {}
    out = []
    for label in canonical:
        i = seen.get(label, 0)
        seen[label] = i + 1
        out.append(f"{label}-{i}")
    return out

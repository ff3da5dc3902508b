"""Which genes make a pair non-additive: observed minus expected change, z and empirical-null FDR.

Per pair and gene, ``nonadditive = delta_AB - (delta_A + delta_B)``. Its standard error is the
cell bootstrap's, computed exactly rather than by resampling: the variance of a resampled mean of
``n`` cells is the plug-in variance over ``n``, and the four means (A+B, A, B, control) are
resampled independently, so ``se**2 = sum(var_c / n_c)``. For predictions the per-gene s.d. of
``layers["uncertainty"]`` takes its place (the control mean is fixed); without it there is no
standard error, and z and FDR are NaN.

The FDR follows Efron's empirical null (Efron 2004; what Ahlmann-Eltze, Huber & Anders 2025 use
through local FDR): most genes of a pair are additive, so the bulk of its z-scores shows the null
distribution as it really is, including what the standard error misses (cells that co-vary, a
nonlinear response). Per pair, ``N(mu0, sigma0)`` is fitted to the central half of the z-scores
(median, and interquartile range / 1.349, never narrower than the theoretical N(0, 1), which
keeps it conservative), two-sided p-values are taken against it, and Benjamini-Hochberg turns
them into FDRs across the pair's genes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy.special import ndtr

#: Fewest genes with a z-score for an empirical null; below it the theoretical N(0, 1) is used.
MIN_NULL_GENES = 20


def empirical_null(z: np.ndarray) -> tuple[float, float]:
    """Centre and spread of the null z-scores of one pair (median, IQR / 1.349, at least 1)."""
    finite = z[np.isfinite(z)]
    if len(finite) < MIN_NULL_GENES:
        return 0.0, 1.0
    q25, q50, q75 = np.quantile(finite, [0.25, 0.5, 0.75])
    return float(q50), float(max((q75 - q25) / 1.349, 1.0))


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (FDR) of the finite entries; NaN stays NaN."""
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    if len(finite) == 0:
        return out
    values = p[finite]
    order = np.argsort(values, kind="stable")
    ranked = values[order] * len(values) / np.arange(1, len(values) + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    out[finite[order]] = adjusted
    return out


def nonadditive_table(
    delta: np.ndarray,
    variance: np.ndarray | None,
    rows: tuple[np.ndarray, np.ndarray, np.ndarray],
    control_variance: np.ndarray | None,
    *,
    pair_labels: list[str],
    var_names: pd.Index,
    obs: pd.DataFrame,
) -> AnnData:
    """The pairs x genes AnnData of non-additivity.

    ``delta`` holds the profiles' deltas (conditions x genes), ``variance`` the variance of each
    condition's mean (same shape; ``None`` without a noise model) and ``control_variance`` that of
    the control mean (``None`` when the control is fixed). ``rows`` are the rows of A, B and A+B
    for each pair.
    """
    first, second, double = rows
    expected = delta[first] + delta[second]
    observed = delta[double]
    nonadditive = observed - expected
    n_pairs = len(pair_labels)
    if variance is None:
        se = np.full(nonadditive.shape, np.nan)
    else:
        var = variance[first] + variance[second] + variance[double]
        if control_variance is not None:
            var = var + control_variance[None, :]
        se = np.sqrt(var)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(se > 0, nonadditive / se, np.nan)
    fdr = np.full(nonadditive.shape, np.nan)
    centre = np.full(n_pairs, np.nan)
    spread = np.full(n_pairs, np.nan)
    for i in range(n_pairs):
        if not np.isfinite(z[i]).any():
            continue
        centre[i], spread[i] = empirical_null(z[i])
        p = 2.0 * ndtr(-np.abs(z[i] - centre[i]) / spread[i])
        fdr[i] = benjamini_hochberg(p)
    table = obs.copy()
    table["null_z_mean"] = centre
    table["null_z_sd"] = spread
    table["n_nonadditive_genes"] = (fdr <= 0.05).sum(axis=1)
    out = AnnData(
        X=nonadditive.astype(np.float32),
        obs=table,
        var=pd.DataFrame(index=pd.Index(var_names, dtype=str)),
    )
    out.layers["nonadditive"] = nonadditive.astype(np.float32)
    out.layers["expected"] = expected.astype(np.float32)
    out.layers["observed"] = observed.astype(np.float32)
    out.layers["nonadditive_se"] = se.astype(np.float32)
    out.layers["nonadditive_z"] = z.astype(np.float32)
    out.layers["nonadditive_fdr"] = fdr.astype(np.float32)
    return out

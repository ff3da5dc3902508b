"""A count noise model of single cells, fitted on measured cells, to sample cells from profiles.

Log-normalised expression (``sc.pp.normalize_total`` then ``sc.pp.log1p``) is ``x = log1p(k y)``
with ``y`` a cell's integer count of the gene and ``k`` the cell's scale (target sum over its total
count). Both are recovered from ``x`` itself: ``k`` is the smallest non-zero ``expm1(x)`` of the
cell (a count of one), and ``expm1(x) / k`` must then be whole numbers, which is checked.

The model: a cell's scale ``k`` is drawn from the scales of the fitted cells, and its count of gene
``g`` in a condition with normalised mean ``mu`` is negative binomial (gamma-Poisson) with mean
``mu / k`` and gene-wise overdispersion ``phi_g`` (variance ``m + phi_g m^2``; ``phi_g = 0`` is
Poisson). ``phi_g`` is the method-of-moments estimate pooled over the conditions of the fitted cells
(each cell compared with its own condition's mean, so perturbation effects are not counted as
noise), shrunk towards the median of the well-measured genes by ``n / (n + SHRINK_CELLS)`` with
``n`` the cells expressing the gene. The zeros of the sampled cells are those of this model: UMI
counts need no separate zero inflation (Svensson 2020); the validation in the docs compares the
zero fractions and the DE gene counts with the measured ones.

A profile gives the mean *log-normalised* expression ``m``; the normalised mean ``mu`` with
``E[log1p(k y)] = m`` (over the scales and the counts) is found per gene by inverting a table of
that expectation, computed exactly by summing the negative-binomial probabilities, so the mean
of many sampled cells equals the profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaincinv, gammaln

from ._matrix import iter_row_chunks

#: Overdispersion is capped here (variance <= m + 5 m^2); higher estimates come from a few cells.
MAX_PHI = 5.0
#: Shrinkage of a gene's overdispersion towards the median: weight n / (n + SHRINK_CELLS).
SHRINK_CELLS = 50
#: Genes expressed in at least this many fitted cells set the median overdispersion.
WELL_MEASURED = 100
#: Quantiles of the cell scales over which the mean-log table is averaged.
N_SCALE_POINTS = 8
#: Overdispersion grid of the table (0 = Poisson), and its mean grid (normalised scale).
_PHI_GRID = np.concatenate([[0.0], np.geomspace(0.005, MAX_PHI, 30)])
_N_MU = 96
#: Poisson rates up to which counts are summed exactly; quantiles of the gamma-distributed rate.
_EXACT_RATE = 30.0
_N_QUANTILES = 256
#: Cells per block when computing the model's zero fractions.
_ZERO_ROWS = 2_000
#: Tolerated share of non-integer recovered counts (float32 storage rounds some values).
_MAX_NON_INTEGER = 0.01


@dataclass
class NoiseModel:
    """Gene-wise overdispersion and the cell scales of the fitted cells."""

    phi: np.ndarray  # (G,) overdispersion of each gene
    scales: np.ndarray  # (C,) scale k of each fitted cell (target sum / total count)
    n_expressing: np.ndarray  # (G,) fitted cells expressing each gene
    observed_zero: np.ndarray  # (G,) fraction of fitted cells with a zero
    expected_zero: np.ndarray  # (G,) that fraction under the fitted model
    phi_median: float

    def subset(self, genes: np.ndarray) -> NoiseModel:
        """The model of the given genes (positions) only."""
        return NoiseModel(
            self.phi[genes],
            self.scales,
            self.n_expressing[genes],
            self.observed_zero[genes],
            self.expected_zero[genes],
            self.phi_median,
        )

    def mean_log(self, mu: np.ndarray) -> np.ndarray:
        """``E[log1p(k y)]`` for normalised means ``mu`` (conditions x genes), by the table."""
        mu = np.asarray(mu, dtype=np.float64)
        grid, table = self._table(float(mu.max(initial=0.0)))
        out = np.empty_like(mu)
        for g in range(mu.shape[1]):
            out[:, g] = np.interp(mu[:, g], grid, table[:, g])
        return out

    def normalised_mean(self, mean_log: np.ndarray) -> np.ndarray:
        """Invert :meth:`mean_log`: the normalised mean giving each mean log-expression."""
        mean_log = np.clip(np.asarray(mean_log, dtype=np.float64), 0.0, None)
        # E[log1p(k y)] <= log1p(E[k y]) = log1p(mu): the grid must reach beyond expm1(m)
        high = 10.0 * float(np.expm1(mean_log.max(initial=0.0))) + 1.0
        grid, table = self._table(high)
        while np.any(table[-1] < mean_log.max(axis=0)):
            high *= 4.0
            grid, table = self._table(high)
        out = np.empty_like(mean_log)
        for g in range(mean_log.shape[1]):
            out[:, g] = np.interp(mean_log[:, g], table[:, g], grid)
        return out

    def _table(self, mu_max: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean log-expression on a mean grid (rows) for each gene (columns)."""
        grid = np.concatenate([[0.0], np.geomspace(1e-5, max(mu_max, 1e-4) * 1.5, _N_MU - 1)])
        levels = np.quantile(self.scales, (np.arange(N_SCALE_POINTS) + 0.5) / N_SCALE_POINTS)
        by_phi = np.zeros((len(grid), len(_PHI_GRID)))
        for k in levels:
            by_phi += _expected_log1p(grid / k, _PHI_GRID, k)
        by_phi /= len(levels)
        # linear interpolation between the overdispersion grid points of each gene
        pos = np.interp(self.phi, _PHI_GRID, np.arange(len(_PHI_GRID)))
        low = np.minimum(np.floor(pos).astype(int), len(_PHI_GRID) - 2)
        frac = pos - low
        table = by_phi[:, low] * (1 - frac) + by_phi[:, low + 1] * frac
        return grid, np.maximum.accumulate(table, axis=0)

    def sample(
        self, mu: np.ndarray, n_cells: int, rng: np.random.Generator
    ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Sample ``n_cells`` cells with normalised means ``mu``: (log-expression, counts)."""
        scales = rng.choice(self.scales, size=n_cells, replace=True)
        expressed = np.flatnonzero(mu > 0)
        mean = mu[expressed][None, :] / scales[:, None]
        phi = self.phi[expressed][None, :]
        shape = 1.0 / np.maximum(phi, 1e-12)
        rate = rng.gamma(np.broadcast_to(shape, mean.shape), mean * phi)
        rate = np.where(phi > 0, rate, mean)
        counts = rng.poisson(rate).astype(np.float32)
        full = np.zeros((n_cells, len(mu)), dtype=np.float32)
        full[:, expressed] = counts
        counts = sp.csr_matrix(full)
        logged = counts.copy()
        logged.data = np.log1p(
            logged.data * np.repeat(scales.astype(np.float32), np.diff(logged.indptr))
        )
        return logged, counts


def _expected_log1p(mean: np.ndarray, phis: np.ndarray, k: float) -> np.ndarray:
    """``E[log1p(k y)]`` for ``y`` negative binomial (means x overdispersions).

    The negative binomial is a Poisson whose rate is gamma distributed: the Poisson part is
    summed exactly on a grid of rates (rates above ``_EXACT_RATE`` by the second-order delta
    method, whose error there is below 1e-4), and the gamma part averaged over
    ``_N_QUANTILES`` quantiles of the rate.
    """
    rates = np.concatenate([[0.0], np.geomspace(1e-7, max(mean.max(initial=1.0), 1.0) * 1e3, 600)])
    per_rate = np.empty_like(rates)
    small = rates <= _EXACT_RATE
    y = np.arange(int(_EXACT_RATE + 12 * np.sqrt(_EXACT_RATE)) + 20, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = y[None, :] * np.log(rates[small])[:, None] - rates[small][:, None] - gammaln(y + 1)
    logp[:, 0] = -rates[small]
    per_rate[small] = np.exp(logp) @ np.log1p(k * y)
    big = rates[~small]
    per_rate[~small] = np.log1p(k * big) - k * k * big / (2 * (1 + k * big) ** 2)
    out = np.zeros((len(mean), len(phis)))
    for j, phi in enumerate(phis):
        if phi == 0:
            out[:, j] = np.interp(mean, rates, per_rate)
        else:
            unit = _unit_gamma_quantiles(float(phi))
            out[:, j] = np.interp(mean[:, None] * unit[None, :], rates, per_rate).mean(axis=1)
    return out


@lru_cache(maxsize=256)
def _unit_gamma_quantiles(phi: float) -> np.ndarray:
    """Midpoint quantiles of the gamma distribution with mean one and variance ``phi``."""
    levels = (np.arange(_N_QUANTILES) + 0.5) / _N_QUANTILES
    return gammaincinv(1.0 / phi, levels) * phi


def recover_counts(block, first_row: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Counts and scales of a chunk of log-normalised cells; error if they are not counts."""
    z = sp.csr_matrix(block, dtype=np.float64, copy=True)
    if z.nnz and z.data.min() < 0:
        raise ValueError(
            f"Negative expression ({z.data.min():.3g}) in the cells: sample_cells needs "
            "log-normalised counts (sc.pp.normalize_total then sc.pp.log1p); pass layer= naming "
            "such a layer."
        )
    np.expm1(z.data, out=z.data)
    z.eliminate_zeros()  # stored zeros are not counts of one
    lengths = np.diff(z.indptr)
    scales = np.full(z.shape[0], np.nan)
    has = lengths > 0
    scales[has] = np.minimum.reduceat(z.data, z.indptr[:-1][has])
    counts = z.data / np.repeat(np.where(has, scales, 1.0), lengths)
    off = np.abs(counts - np.round(counts)) > 0.02 * np.maximum(counts, 1.0)
    if z.nnz and off.mean() > _MAX_NON_INTEGER:
        row = first_row + int(np.repeat(np.arange(z.shape[0]), lengths)[off][0])
        raise ValueError(
            f"The expression of cell {row} is not log1p of scaled counts ({off.mean():.1%} of "
            "the values are not whole multiples of the cell's smallest one): sample_cells needs "
            "log-normalised counts (sc.pp.normalize_total then sc.pp.log1p, not scaled or "
            "batch-corrected data); pass layer= naming such a layer."
        )
    z.data = np.round(counts)
    return z, scales


def fit_noise_model(matrix, codes: np.ndarray, n_groups: int) -> NoiseModel:
    """Fit the noise model on the cells with ``codes >= 0`` (their condition), one chunked pass."""
    codes = np.asarray(codes)
    rows = np.flatnonzero(codes >= 0)
    n_vars = matrix.shape[1]
    sums = np.zeros((n_groups, n_vars))
    sums_sq = np.zeros((n_groups, n_vars))
    scale_sums = np.zeros(n_groups)
    n_cells = np.zeros(n_groups)
    expressing = np.zeros(n_vars)
    zero_terms = []
    scales_all = []
    for idx, block in iter_row_chunks(matrix, rows):
        counts, scales = recover_counts(block, int(idx[0]) if len(idx) else 0)
        keep = ~np.isnan(scales)  # a cell without any count says nothing about its scale
        counts, scales, c = counts[keep], scales[keep], codes[idx][keep]
        normalised = sp.diags(scales) @ counts
        indicator = sp.csr_matrix(
            (np.ones(len(c)), (c, np.arange(len(c)))), shape=(n_groups, len(c))
        )
        sums += np.asarray((indicator @ normalised).todense())
        sums_sq += np.asarray((indicator @ normalised.multiply(normalised)).todense())
        scale_sums += np.bincount(c, weights=scales, minlength=n_groups)
        n_cells += np.bincount(c, minlength=n_groups)
        expressing += np.asarray((counts > 0).sum(axis=0)).ravel()
        scales_all.append(scales)
        zero_terms.append((c, scales))
    if not scales_all or n_cells.sum() == 0:
        raise ValueError("No cells with any expression to fit the noise model on.")
    scales_all = np.concatenate(scales_all)
    n = np.maximum(n_cells, 1)[:, None]
    mu = sums / n
    used = n_cells >= 2
    # sum over cells of (z - mu_k)^2, unbiased within each condition, minus the Poisson part k mu
    spread = (sums_sq - n * mu**2) * (n / np.maximum(n - 1, 1))
    excess = (spread - scale_sums[:, None] * mu)[used].sum(axis=0)
    scale2 = (n * mu**2)[used].sum(axis=0)
    raw = np.clip(np.divide(excess, scale2, out=np.zeros(n_vars), where=scale2 > 0), 0, MAX_PHI)
    well = expressing >= WELL_MEASURED
    phi_median = float(np.median(raw[well])) if well.any() else float(np.median(raw))
    weight = expressing / (expressing + SHRINK_CELLS)
    phi = weight * raw + (1 - weight) * phi_median
    observed_zero = 1.0 - expressing / n_cells.sum()
    # zeros under the model: each fitted cell, with its condition mean and its own scale
    expected_zero = np.zeros(n_vars)
    for codes_chunk, scales_chunk in zero_terms:
        for start in range(0, len(codes_chunk), _ZERO_ROWS):  # bounded memory on wide data
            block = slice(start, start + _ZERO_ROWS)
            m = mu[codes_chunk[block]] / scales_chunk[block, None]
            shape = 1.0 / np.maximum(phi, 1e-12)
            p0 = np.where(phi > 0, (1.0 + phi * m) ** -shape, np.exp(-m))
            expected_zero += p0.sum(axis=0)
    expected_zero /= n_cells.sum()
    return NoiseModel(phi, scales_all, expressing, observed_zero, expected_zero, phi_median)

"""Cells and negative-binomial counts, and the expected log-normalised expression."""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from ._dynamics import N_EFFICIENCY_LEVELS
from ._network import _Network

#: Most dense float values handled at once while sampling counts (per thread).
_CHUNK_VALUES = 8_000_000


def _assign_cells(rng, n_conditions: int, n_per_condition: int, n_control: int):
    """Row of ``_log_fold_rows`` of every cell (condition * levels + level), cells shuffled."""
    sizes = np.full(n_conditions, n_per_condition)
    sizes[0] = n_control
    condition = np.repeat(np.arange(n_conditions), sizes)
    condition = condition[rng.permutation(len(condition))]
    level = rng.integers(N_EFFICIENCY_LEVELS, size=len(condition))
    level[condition == 0] = N_EFFICIENCY_LEVELS // 2
    return condition * N_EFFICIENCY_LEVELS + level


def _sample_counts(rng, net: _Network, x_rows, cell_rows, library_size: float):
    """Negative-binomial counts (CSR float32) and total counts per cell, sampled in chunks."""
    n_cells, n_genes = len(cell_rows), len(net.genes)
    log_library = np.log(library_size) + rng.normal(0.0, 0.35, n_cells)
    # Cell-state modules: a few groups of genes that co-vary from cell to cell.
    n_modules = 3
    loadings = np.zeros((n_modules, n_genes))
    for k in range(n_modules):
        idx = rng.choice(n_genes, size=max(5, n_genes // 16), replace=False)
        loadings[k, idx] = rng.normal(0.35, 0.08, len(idx))
    state = rng.normal(size=(n_cells, n_modules))
    offset = net.log_baseline - 0.5 * (loadings**2).sum(axis=0)
    rows_per_chunk = max(64, _CHUNK_VALUES // n_genes)
    starts = range(0, n_cells, rows_per_chunk)
    seeds = rng.integers(0, 2**31 - 1, size=len(starts))
    sampler = _nb_sampler()
    theta = net.theta.astype(np.float32)
    log_library = log_library.astype(np.float32)
    offset = offset.astype(np.float32)
    state = state.astype(np.float32)
    loadings = loadings.astype(np.float32)

    def chunk(args):
        start, chunk_seed = args
        stop = min(start + rows_per_chunk, n_cells)
        mu = x_rows[cell_rows[start:stop]]
        mu += log_library[start:stop, None]
        mu += offset
        mu += state[start:stop] @ loadings
        np.exp(mu, out=mu)
        p_zero = mu / theta
        np.log1p(p_zero, out=p_zero)
        p_zero *= -theta
        np.exp(p_zero, out=p_zero)
        indptr, indices, data = sampler(mu, p_zero, theta, int(chunk_seed))
        return sp.csr_matrix((data, indices, indptr), shape=(stop - start, n_genes))

    n_threads = max(1, min(4, os.cpu_count() or 1, len(starts)))
    with ThreadPoolExecutor(n_threads) as pool:
        blocks = list(pool.map(chunk, zip(starts, seeds, strict=True)))
    counts = sp.vstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]
    totals = np.asarray(counts.sum(axis=1)).ravel()
    if np.any(totals == 0):  # pragma: no cover - needs absurdly small libraries
        raise ValueError("Some simulated cells have no counts; raise library_size.")
    return counts, totals


def _expected_log_normalised(net: _Network, x_rows, library_size: float, target_sum: float):
    """Expected ``X`` per condition: NB expectation of log1p(normalised counts), over levels."""
    mu = library_size * np.exp(net.log_baseline[None, :] + x_rows.astype(np.float64))
    scale = target_sum / mu.sum(axis=1)
    expected = _nb_expectation()(mu, net.theta.astype(np.float64), scale)
    per_condition = expected.reshape(-1, N_EFFICIENCY_LEVELS, expected.shape[1]).mean(axis=1)
    return per_condition.astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Numba kernels (compiled on first use and cached on disk)


def _nb_counts_kernel(mu, p_zero, theta, seed):  # pragma: no cover - compiled by numba
    """Negative-binomial counts by inversion of the CDF, given P(0) per entry, as CSR arrays."""
    np.random.seed(seed)  # noqa: NPY002 - numba knows only the legacy API
    n, g = mu.shape
    indptr = np.zeros(n + 1, np.int64)
    indices = np.empty(n * g, np.int32)
    data = np.empty(n * g, np.float32)
    nnz = 0
    for i in range(n):
        for j in range(g):
            u = np.random.random()  # noqa: NPY002
            p = np.float64(p_zero[i, j])
            if u <= p:
                continue
            m = np.float64(mu[i, j])
            th = np.float64(theta[j])
            if m > 30.0:  # long CDF walks: sample the gamma-Poisson mixture instead
                k = np.random.poisson(np.random.gamma(th, m / th))  # noqa: NPY002
                if k == 0:
                    continue
            else:
                q = m / (m + th)
                cdf = p
                k = 0
                while u > cdf and k < 100_000:
                    k += 1
                    p *= (k - 1 + th) / k * q
                    cdf += p
            indices[nnz] = j
            data[nnz] = k
            nnz += 1
        indptr[i + 1] = nnz
    return indptr, indices[:nnz].copy(), data[:nnz].copy()


def _nb_expectation_kernel(mu, theta, scale):  # pragma: no cover - compiled by numba
    """E[log1p(scale * K)] for K ~ NB(mu, theta), per entry (delta method for large means)."""
    n, g = mu.shape
    out = np.empty((n, g))
    for i in range(n):
        s = scale[i]
        for j in range(g):
            m = mu[i, j]
            th = theta[j]
            if m * s > 30.0 or m > 100.0:
                var = m + m * m / th
                out[i, j] = math.log1p(s * m) - 0.5 * s * s * var / (1.0 + s * m) ** 2
                continue
            q = m / (m + th)
            p = math.exp(th * math.log1p(-q))
            cdf = p
            total = 0.0
            k = 0
            while cdf < 1.0 - 1e-8 and k < 100_000:
                k += 1
                p *= (k - 1 + th) / k * q
                cdf += p
                total += p * math.log1p(s * k)
            out[i, j] = total
    return out


@lru_cache(maxsize=1)
def _nb_sampler():
    import numba

    return numba.njit(cache=True, nogil=True)(_nb_counts_kernel)


@lru_cache(maxsize=1)
def _nb_expectation():
    import numba

    return numba.njit(cache=True, nogil=True)(_nb_expectation_kernel)

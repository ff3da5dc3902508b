"""Checks and error-message helpers shared by pp, model, tl and pl."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from ._constants import DE_KEY

#: What ``rank_perturbation_genes`` writes that the other functions read.
DE_LISTS = ("top_genes", "top_non_dropout_genes")


def preview(values: Iterable, limit: int = 10) -> str:
    """Show at most ``limit`` values of a list in an error message."""
    values = list(values)
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return f"{values[:limit]}{more}"


def get_de(adata: AnnData, de_key: str = DE_KEY, keys: Iterable[str] = DE_LISTS) -> Mapping:
    """Return ``adata.uns[de_key]``; the error says to run ``rank_perturbation_genes``."""
    if de_key not in adata.uns:
        raise KeyError(
            f"uns[{de_key!r}] not found: rank the DE genes first with "
            "`sg.pp.rank_perturbation_genes(adata)`"
            + (" (or pass de_key= naming where it wrote)." if de_key != DE_KEY else ".")
        )
    de = adata.uns[de_key]
    for key in keys:
        if key not in de:
            raise KeyError(
                f"uns[{de_key!r}] has no {key!r}: rerun `sg.pp.rank_perturbation_genes(adata)`."
            )
    return de


# --------------------------------------------------------------------------------------------------
# input data: shape, gene names and the expression values


#: log1p of normalised counts rarely exceeds this (log1p(1e6) = 13.8, CPM scale); far larger
#: values mean X was not log-transformed.
LOG_SCALE_MAX = 50.0
#: Values scanned at once by :func:`check_expression` (a block of rows of dense or backed data).
_SCAN_VALUES = 20_000_000


def check_shape(adata: AnnData, function: str) -> None:
    """Refuse an AnnData without cells or without genes, naming the function and the fix."""
    n_obs, n_vars = adata.shape
    if n_obs == 0 or n_vars == 0:
        empty = "cells" if n_obs == 0 else "genes"
        raise ValueError(
            f"{function} got an AnnData with no {empty} ({n_obs} cells x {n_vars} genes). "
            f"Check the subsetting that produced it (e.g. a filter on obs or var that kept "
            f"nothing) and pass the screen's cells and genes."
        )


def check_unique_var_names(adata: AnnData, name: str = "adata") -> None:
    """Refuse duplicated gene names: genes are looked up by name everywhere in scgears.

    ``name`` is how the message calls the AnnData (e.g. ``"predicted['GEARS']"``).
    """
    if adata.var_names.is_unique:
        return
    duplicated = adata.var_names[adata.var_names.duplicated()].unique()
    raise ValueError(
        f"{name}.var_names has {len(duplicated)} duplicated gene names "
        f"({preview(duplicated.tolist())}). Make them unique with "
        f"`{name}.var_names_make_unique()` (or drop the duplicates) before using scgears."
    )


def check_expression(adata: AnnData, layer: str | None = None, *, function: str) -> None:
    """Check the expression scgears reads: no NaN or inf; warn on counts or negative values.

    One chunked pass over ``adata.X`` (or ``adata.layers[layer]``): in-memory sparse data are
    read through their stored values, dense and backed data a block of cells at a time, so the
    whole matrix is never densified.

    Raises
    ------
    ValueError
        For no cells or genes, duplicated ``var_names``, or any NaN or infinite value (the message
        names how many, and in which genes and cells).

    Warns
    -----
    UserWarning
        When the values look like raw counts (all integers) or are far above the log scale, or
        when some are negative: GEARS expects log1p of normalised counts.
    """
    from ._matrix import expression_matrix

    check_shape(adata, function)
    check_unique_var_names(adata)
    matrix = expression_matrix(adata, layer)
    where = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
    scan = _scan(matrix)
    if scan.n_nan or scan.n_inf:
        genes = np.flatnonzero(scan.bad_per_gene)
        order = genes[np.argsort(-scan.bad_per_gene[genes], kind="stable")]
        shown_genes = ", ".join(
            f"{adata.var_names[g]!r} ({int(scan.bad_per_gene[g])})" for g in order[:5]
        ) + (f" and {len(order) - 5} more" if len(order) > 5 else "")
        cells = adata.obs_names[np.sort(scan.bad_cells)]
        raise ValueError(
            f"{where} has {scan.n_nan} NaN and {scan.n_inf} infinite values, in {len(genes)} "
            f"genes ({shown_genes}) and {len(cells)} cells ({preview(cells.tolist(), 5)}). "
            "GEARS would predict NaN for everything. Fix the step "
            "that produced them (e.g. normalising cells with no counts), or drop these cells "
            "(`adata = adata[~adata.obs_names.isin([...])].copy()`) or genes, before "
            f"{function}."
        )
    if scan.n_values and scan.all_integer and scan.max >= 1:
        warnings.warn(
            f"{where} looks like raw counts (every value is a non-negative integer, largest "
            f"{scan.max:g}). GEARS expects log-normalised expression: run "
            "`sc.pp.normalize_total(adata)` and `sc.pp.log1p(adata)` (keep the counts in a layer "
            "first: `adata.layers['counts'] = adata.X.copy()`), or pass the layer that holds them.",
            UserWarning,
            stacklevel=3,
        )
    elif scan.max > LOG_SCALE_MAX:
        warnings.warn(
            f"{where} has values up to {scan.max:g}, far above log-normalised expression (log1p "
            "of normalised counts rarely exceeds 15). GEARS expects log-normalised data: run "
            "`sc.pp.normalize_total(adata)` and `sc.pp.log1p(adata)`, or pass the layer that "
            "holds them.",
            UserWarning,
            stacklevel=3,
        )
    if scan.n_negative:
        warnings.warn(
            f"{where} has {scan.n_negative} negative values (smallest {scan.min:g}): "
            "log-normalised expression is never negative. Was it scaled or centred "
            "(`sc.pp.scale`, `sc.pp.regress_out`)? Pass the log-normalised values instead "
            "(e.g. a layer saved before scaling, with layer=).",
            UserWarning,
            stacklevel=3,
        )


@dataclass
class _Scan:
    """What one pass over an expression matrix found."""

    n_nan: int = 0
    n_inf: int = 0
    bad_per_gene: np.ndarray | None = None
    bad_cells: np.ndarray | None = None
    n_values: int = 0
    n_negative: int = 0
    min: float = np.inf
    max: float = -np.inf
    all_integer: bool = True

    def add_values(self, values: np.ndarray) -> None:
        """Account for the finite stored values of a block."""
        if values.size == 0:
            return
        self.n_values += values.size
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))
        self.n_negative += int(np.count_nonzero(values < 0))
        if self.all_integer:
            # a sample suffices: log-normalised data fail at once, counts pass every block
            sample = values[:100_000]
            self.all_integer = bool(np.all(sample == np.round(sample)))


def _scan(matrix) -> _Scan:
    """One chunked pass: NaN/inf per gene and cell, range, negatives, integer values."""
    from ._matrix import iter_row_chunks

    n_obs, n_vars = matrix.shape
    scan = _Scan(bad_per_gene=np.zeros(n_vars, dtype=np.int64))
    bad_cells: list[np.ndarray] = []
    if sp.issparse(matrix) and matrix.format in ("csr", "csc"):
        blocks = [(np.arange(n_obs), matrix)]  # stored values in place, no copy
    else:
        chunk = max(1, _SCAN_VALUES // max(1, n_vars))
        blocks = iter_row_chunks(matrix, chunk_size=chunk)
    for idx, block in blocks:
        if sp.issparse(block):
            block = block if block.format in ("csr", "csc") else sp.csr_matrix(block)
            data = block.data
            finite = np.isfinite(data)
            if not finite.all():
                bad = ~finite
                scan.n_nan += int(np.isnan(data).sum())
                scan.n_inf += int(bad.sum()) - int(np.isnan(data).sum())
                major = np.repeat(np.arange(len(block.indptr) - 1), np.diff(block.indptr))[bad]
                minor = block.indices[bad]
                genes, cells = (minor, major) if block.format == "csr" else (major, minor)
                scan.bad_per_gene += np.bincount(genes, minlength=n_vars)
                bad_cells.append(idx[np.unique(cells)])
                data = data[finite]
            if block.nnz < block.shape[0] * block.shape[1]:
                scan.add_values(np.zeros(1, dtype=data.dtype))  # implicit zeros
            scan.add_values(data)
        else:
            block = np.asarray(block)
            finite = np.isfinite(block)
            if not finite.all():
                nan = np.isnan(block)
                scan.n_nan += int(nan.sum())
                scan.n_inf += int((~finite).sum()) - int(nan.sum())
                scan.bad_per_gene += (~finite).sum(axis=0)
                bad_cells.append(idx[~finite.all(axis=1)])
                scan.add_values(block[finite])
            else:
                scan.add_values(block.ravel())
    scan.bad_cells = np.concatenate(bad_cells) if bad_cells else np.zeros(0, dtype=np.int64)
    return scan

"""Gene features as vectors: a GO-derived embedding, and cosine k-NN graphs of any embedding.

A gene embedding is a genes x dimensions :class:`pandas.DataFrame` (index: gene symbols): the
truncated SVD of the shipped gene x GO-term table (:func:`go_embedding`), or one the user brings
(GenePT, ESM, scGPT or Gene2vec style). :func:`cosine_neighbors` turns one into the weighted edges
of a k-nearest-neighbour graph, which :func:`scgears.pp.perturbation_graph` accepts as
``source=embedding``: a gene absent from GO but present in the embedding then has neighbours,
and its perturbation can be predicted from them.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from ._resources import go_annotations

logger = logging.getLogger(__name__)

#: Rows of the embedding compared with all others at once (block x genes floats in memory).
_BLOCK_ROWS = 1024


def go_embedding(n_components: int = 64) -> pd.DataFrame:
    """A GO-derived gene embedding: truncated SVD of the shipped gene x GO-term table.

    Each gene's row of the binary gene x term matrix (BP, MF and CC; every evidence code; the
    table of :func:`scgears.pp.perturbation_graph`'s default ``source="go"``) is scaled to unit
    length, so that genes with many annotations do not dominate, and the matrix is factorised;
    a gene's embedding is its row of ``U S`` for the ``n_components`` largest singular values.
    Genes that share GO terms get similar vectors, so the cosine similarity of two rows is a
    smooth version of the Jaccard index of their term sets. The result is deterministic.

    Parameters
    ----------
    n_components
        Dimensions of the embedding.

    Returns
    -------
    A genes x ``n_components`` DataFrame (float32), one row per gene of the GO table.

    Examples
    --------
    >>> from scgears._gene_features import go_embedding
    >>> embedding = go_embedding(n_components=16)  # doctest: +SKIP
    >>> embedding.loc[["KLF1", "GATA1"]].shape  # doctest: +SKIP
    (2, 16)
    """
    if isinstance(n_components, bool) or not isinstance(n_components, int | np.integer):
        raise TypeError(f"n_components must be an integer, got {n_components!r}.")
    if n_components < 1:
        raise ValueError(f"n_components must be at least 1, got {n_components}.")
    return _go_embedding(int(n_components)).copy()


@lru_cache(maxsize=2)
def _go_embedding(n_components: int) -> pd.DataFrame:
    table = go_annotations()
    genes = sorted(table)
    terms = sorted({t for g in genes for t in table[g]})
    if n_components >= min(len(genes), len(terms)):
        raise ValueError(
            f"n_components must be below {min(len(genes), len(terms))} (the GO table's rank "
            f"bound), got {n_components}."
        )
    column = {t: j for j, t in enumerate(terms)}
    rows = np.repeat(np.arange(len(genes)), [len(table[g]) for g in genes])
    cols = np.fromiter((column[t] for g in genes for t in sorted(table[g])), dtype=np.int64)
    matrix = sp.csr_matrix(
        (np.ones(len(cols), dtype=np.float64), (rows, cols)), shape=(len(genes), len(terms))
    )
    norms = np.sqrt(np.asarray(matrix.sum(axis=1)).ravel())
    matrix = sp.diags(1.0 / np.maximum(norms, 1.0)) @ matrix
    # a fixed start vector makes ARPACK deterministic
    start = np.full(min(matrix.shape), 1.0 / np.sqrt(min(matrix.shape)))
    u, s, _ = svds(matrix, k=n_components, v0=start)
    order = np.argsort(s)[::-1]
    u, s = u[:, order], s[order]
    # the sign of a singular vector is arbitrary: make each column's largest entry positive
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(u.shape[1])])
    values = (u * s * signs).astype(np.float32)
    logger.info("GO embedding: %d genes x %d dimensions.", len(genes), n_components)
    return pd.DataFrame(
        values,
        index=pd.Index(genes, name="gene"),
        columns=[f"go_svd_{i}" for i in range(n_components)],
    )


def check_embedding(embedding: pd.DataFrame) -> pd.DataFrame:
    """Validate a genes x dimensions embedding; return it as float64 with string gene names."""
    if not isinstance(embedding, pd.DataFrame):
        raise TypeError(
            f"A gene embedding must be a pandas.DataFrame (genes x dimensions), got "
            f"{type(embedding).__name__}."
        )
    if embedding.shape[0] == 0 or embedding.shape[1] == 0:
        raise ValueError(
            f"The gene embedding is empty ({embedding.shape[0]} genes x {embedding.shape[1]} "
            "dimensions); it needs one row per gene and at least one numeric column."
        )
    non_numeric = [c for c in embedding.columns if not pd.api.types.is_numeric_dtype(embedding[c])]
    if non_numeric:
        raise ValueError(
            f"The gene embedding has non-numeric columns {non_numeric[:5]}: every column must be a "
            "dimension, with the gene names as the index (df.set_index('gene') if they are a "
            "column). An edge list needs the columns 'source' and 'target'."
        )
    index = pd.Index([str(g) for g in embedding.index])
    if index.has_duplicates:
        dup = index[index.duplicated()].unique()[:10].tolist()
        raise ValueError(f"The gene embedding's index has duplicated genes: {dup}.")
    values = embedding.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        bad = index[~np.isfinite(values).all(axis=1)][:10].tolist()
        raise ValueError(f"The gene embedding has missing or non-finite values for genes {bad}.")
    return pd.DataFrame(values, index=index, columns=embedding.columns)


def cosine_neighbors(
    embedding: pd.DataFrame, *, n_neighbors: int, threshold: float, genes=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges ``(target, source, cosine)`` of each gene's ``n_neighbors`` most similar genes.

    Only similarities strictly above ``threshold`` are kept; a gene whose vector is zero has no
    neighbour. ``genes`` restricts the genes compared (default: all rows). Ties go to the gene
    that comes first in the embedding's order.
    """
    embedding = check_embedding(embedding)
    if genes is not None:
        embedding = embedding.loc[embedding.index.intersection(pd.Index(genes), sort=False)]
    names = embedding.index.to_numpy()
    values = embedding.to_numpy()
    norms = np.linalg.norm(values, axis=1)
    unit = np.divide(values, norms[:, None], out=np.zeros_like(values), where=norms[:, None] > 0)
    k = min(n_neighbors, len(names) - 1)
    targets, sources, weights = [], [], []
    if k <= 0:
        empty = np.array([], dtype=object)
        return empty, empty, np.array([], dtype=np.float64)
    for start in range(0, len(names), _BLOCK_ROWS):
        block = unit[start : start + _BLOCK_ROWS] @ unit.T
        rows = np.arange(block.shape[0])
        block[rows, start + rows] = -np.inf  # no self edge
        best = np.argsort(-block, axis=1, kind="stable")[:, :k]
        similarity = np.take_along_axis(block, best, axis=1)
        keep = similarity > threshold
        targets.append(np.repeat(names[start + rows], k)[keep.ravel()])
        sources.append(names[best][keep])
        weights.append(similarity[keep])
    return np.concatenate(targets), np.concatenate(sources), np.concatenate(weights)

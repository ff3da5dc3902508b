"""Genes of the screen, drawn from the GO table shipped with scgears."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

#: Cluster sizes of GO-similar perturbed genes, and the Jaccard range that links two of them.
CLUSTER_SIZES = (3, 6)
MIN_JACCARD = 0.2
MAX_JACCARD = 0.95
#: Perturbed genes are drawn among genes with this many GO terms (informative, not hubs).
TERM_RANGE = (5, 80)


@dataclass(frozen=True)
class _GoUniverse:
    symbols: np.ndarray  # sorted gene symbols with >= 1 GO term
    membership: sp.csr_matrix  # genes x terms, binary
    n_terms: np.ndarray  # terms per gene
    term_sizes: np.ndarray  # genes per term


@lru_cache(maxsize=1)
def _go_universe() -> _GoUniverse:
    from ..._resources import go_annotations

    table = go_annotations()
    symbols = np.array(sorted(table), dtype=object)
    term_index: dict[str, int] = {}
    indptr = [0]
    indices: list[int] = []
    for symbol in symbols:
        # sorted: set iteration order changes from one process to the next (string hashing)
        ids = sorted(term_index.setdefault(t, len(term_index)) for t in sorted(table[symbol]))
        indices.extend(ids)
        indptr.append(len(indices))
    membership = sp.csr_matrix(
        (np.ones(len(indices), dtype=np.float32), indices, indptr),
        shape=(len(symbols), len(term_index)),
    )
    n_terms = np.diff(membership.indptr)
    term_sizes = np.asarray(membership.sum(axis=0)).ravel()
    return _GoUniverse(symbols, membership, n_terms, term_sizes)


def _pick_perturbed_genes(
    rng: np.random.Generator, go: _GoUniverse, n_perturbed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Clusters of 3-6 genes whose GO term sets overlap (Jaccard >= 0.2), as GEARS' GO graph sees.

    Genes with few or very many terms, and genes whose term set is shared by two or more other
    genes (olfactory receptors and other families with identical annotations), are left out.
    """
    term_sets = {}
    for i in range(len(go.symbols)):
        key = go.membership.indices[go.membership.indptr[i] : go.membership.indptr[i + 1]]
        term_sets.setdefault(key.tobytes(), []).append(i)
    duplicated = np.zeros(len(go.symbols), dtype=bool)
    for members in term_sets.values():
        if len(members) >= 3:
            duplicated[members] = True
    ok = (go.n_terms >= TERM_RANGE[0]) & (go.n_terms <= TERM_RANGE[1]) & ~duplicated
    candidates = np.flatnonzero(ok)
    sub = go.membership[candidates]
    sizes = go.n_terms[candidates].astype(np.float64)
    taken = np.zeros(len(candidates), dtype=bool)
    chosen: list[int] = []
    cluster_of: list[int] = []
    for seed_gene in rng.permutation(len(candidates)):
        if len(chosen) >= n_perturbed:
            break
        if taken[seed_gene]:
            continue
        overlap = np.asarray((sub @ sub[seed_gene].T).todense()).ravel()
        jaccard = overlap / (sizes + sizes[seed_gene] - overlap)
        jaccard[taken] = 0.0
        jaccard[seed_gene] = 0.0
        linked = np.flatnonzero((jaccard >= MIN_JACCARD) & (jaccard < MAX_JACCARD))
        if len(linked) < CLUSTER_SIZES[0] - 1:
            continue
        size = int(rng.integers(CLUSTER_SIZES[0], CLUSTER_SIZES[1] + 1))
        size = min(size, n_perturbed - len(chosen))
        linked = linked[np.argsort(-jaccard[linked], kind="stable")][: size - 1]
        members = [int(seed_gene), *linked.tolist()]
        taken[members] = True
        chosen.extend(members)
        cluster_of.extend([len(set(cluster_of))] * len(members))
    if len(chosen) < n_perturbed:  # pragma: no cover - the shipped table has thousands of clusters
        raise ValueError(f"Could not find {n_perturbed} GO-clustered genes to perturb.")
    return candidates[np.array(chosen)], np.array(cluster_of)


def _pick_measured_genes(
    rng: np.random.Generator, go: _GoUniverse, perturbed: np.ndarray, n_genes: int
) -> np.ndarray:
    """Universe indices of the measured genes (perturbed genes included), sorted by symbol."""
    others = np.setdiff1d(np.arange(len(go.symbols)), perturbed)
    extra = rng.choice(others, size=n_genes - len(perturbed), replace=False)
    return np.sort(np.concatenate([perturbed, extra]))

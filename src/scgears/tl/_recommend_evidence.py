"""What the measured cells already say about unmeasured pairs: detectability and interaction hubs.

Used by :func:`scgears.tl.recommend`'s ``"interactions"`` objective next to the model's prediction.
Only the cells the model may learn from (the split's train and val cells; all cells without a
split) count as evidence, so a retrospective benchmark that holds pairs out in the test split never
leaks their cells into the choice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .._anndata import get_conditions, training_mask
from .._conditions import condition_genes
from .._constants import CONTROL
from .._matrix import expression_matrix, group_stats

logger = logging.getLogger(__name__)

#: Bootstrap replicates of the calls on measured pairs (a propensity needs no finer confidence).
N_BOOTSTRAP = 50


def evidence_cells(adata, split_key: str) -> np.ndarray:
    """Cells that count as measured evidence: the model's train and val cells."""
    return training_mask(adata, split_key, include_val=True)


def single_detectability(
    adata, condition_key: str, split_key: str, layer: str | None
) -> pd.DataFrame:
    """How clearly each measured single moves genes, from the evidence cells.

    Per single, over genes: ``size = sqrt(max(||delta||^2 - ||se||^2, 0))``, the norm of its
    effect (its mean minus the control mean) with the expected squared norm of pure noise removed,
    ``noise = ||se||`` (``se`` the per-gene standard error of that difference) and
    ``detectability = size^2 / (size^2 + noise^2)``: about 0 for a guide that moves nothing but
    noise, about 1 for an effect well above its noise, whatever the number of genes measured.
    """
    labels = get_conditions(adata, condition_key)
    categories = pd.Index(labels.categories)
    codes = np.asarray(labels.codes).copy()
    codes[~evidence_cells(adata, split_key)] = -1
    singles = [c for c in categories if len(condition_genes(c)) == 1]
    keep = [categories.get_loc(c) for c in [CONTROL, *singles]]
    # only the control and the singles are summed: pairs are not needed here
    remap = np.full(len(categories), -1)
    remap[keep] = np.arange(len(keep))
    codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
    stats = group_stats(expression_matrix(adata, layer), codes, pd.Index([CONTROL, *singles]))
    n = stats.n_cells.astype(np.float64)
    columns = ["size", "noise", "detectability"]
    if n[0] < 2:
        return pd.DataFrame(columns=columns, dtype=np.float64)
    means, var = stats.means, stats.variances()
    rows = {}
    for i, single in enumerate(singles, start=1):
        if n[i] < 2:
            continue
        delta = means[i] - means[0]
        noise2 = float((var[i] / n[i] + var[0] / n[0]).sum())
        size2 = max(float((delta**2).sum()) - noise2, 0.0)
        ratio = size2 / (size2 + noise2) if size2 + noise2 > 0 else 0.0
        rows[single] = (np.sqrt(size2), np.sqrt(noise2), ratio)
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns, dtype=np.float64)


def measured_pairs(adata, condition_key: str, split_key: str, exclude: set[str]) -> list[str]:
    """Two-gene conditions with evidence cells whose two singles have evidence cells too."""
    labels = np.asarray(get_conditions(adata, condition_key)).astype(str)
    present = set(pd.unique(labels[evidence_cells(adata, split_key)]))
    return sorted(
        c
        for c in present
        if len(condition_genes(c)) == 2
        and c not in exclude
        and all(g in present for g in condition_genes(c))
    )


def pair_interaction_evidence(
    adata, pairs: Sequence[str], condition_key: str, split_key: str, layer: str | None
) -> pd.Series:
    """Probability that each measured pair is non-additive, from its calibrated call.

    :func:`~scgears.tl.genetic_interactions` on the evidence cells: ``confidence`` when the call is
    a non-additive subtype, ``1 - confidence`` when it is ``additive`` (the share of bootstrap
    replicates that call the pair non-additive, up to replicates split among subtypes).
    """
    from ._gi import genetic_interactions

    if not pairs:
        return pd.Series(dtype=np.float64)
    view = adata[evidence_cells(adata, split_key)]
    calls = genetic_interactions(
        view,
        pairs=list(pairs),
        n_bootstrap=N_BOOTSTRAP,
        layer=layer,
        condition_key=condition_key,
        key_added=None,
    )
    nonadditive = calls["subtype"].astype(str) != "additive"
    confidence = calls["confidence"].astype(np.float64).fillna(1.0)
    prob = np.where(nonadditive, confidence, 1.0 - confidence)
    prob = pd.Series(prob, index=calls.index, dtype=np.float64)
    return prob[calls["subtype"].notna()]


def gene_propensity(evidence: pd.Series) -> tuple[dict[str, float], float, float]:
    """Empirical-Bayes propensity of each gene to interact, from its measured pairs.

    ``p0`` is the screen's share of interacting pairs (shrunk toward 0.5 by one pseudo-pair). A
    gene with ``n`` measured pairs whose evidence sums to ``k`` gets ``(k + m p0) / (n + m)``: a
    beta-binomial posterior mean whose prior strength ``m`` (in pairs) is estimated from the data
    by the method of moments. When the genes' rates vary no more than sampling noise explains
    (no hubs), ``m`` is infinite and every gene gets ``p0``: the evidence then cannot favour any
    gene. Returns ``(propensity per gene, p0, m)``.
    """
    p0 = (float(evidence.sum()) + 0.5) / (len(evidence) + 1.0)
    totals: dict[str, list[float]] = {}
    for pair, value in evidence.items():
        for gene in condition_genes(pair):
            totals.setdefault(gene, []).append(float(value))
    if len(totals) < 3:
        return {g: p0 for g in totals}, p0, np.inf
    n = np.array([len(v) for v in totals.values()], dtype=np.float64)
    rate = np.array([np.mean(v) for v in totals.values()])
    weight = n / n.sum()
    observed = float((weight * (rate - p0) ** 2).sum())
    sampling = float((weight * p0 * (1 - p0) / n).sum())
    between = observed - sampling
    if between <= 0:
        return {g: p0 for g in totals}, p0, np.inf
    strength = max(p0 * (1 - p0) / between - 1.0, 1.0)
    propensity = {g: (sum(v) + strength * p0) / (len(v) + strength) for g, v in totals.items()}
    return propensity, p0, strength

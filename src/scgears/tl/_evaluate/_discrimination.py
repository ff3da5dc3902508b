"""Does a prediction single out its own condition? Perturbation discrimination, centroids."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist


def discrimination_score(
    pred: np.ndarray,
    candidates: np.ndarray,
    own: np.ndarray,
    excluded: list[np.ndarray],
) -> np.ndarray:
    """Perturbation discrimination score of each prediction (cell-eval's, L1).

    For prediction ``i`` (row of ``pred``), the L1 distance over genes to every candidate's
    measured profile (rows of ``candidates``), leaving out the genes ``excluded[i]`` (the
    condition's own targets); the score is the share of the *other* candidates that lie strictly
    farther than the own one (row ``own[i]``). L1 between profiles equals L1 between changes from
    any common control, so profiles are compared directly. NaN for a non-finite prediction or
    when there is no other candidate.

    One ``cdist`` call computes every distance over all genes (no conditions x conditions x
    genes array in memory); the excluded genes' terms are then subtracted, a few genes each.
    """
    n_pred, n_candidates = len(pred), len(candidates)
    scores = np.full(n_pred, np.nan)
    if n_pred == 0 or n_candidates < 2:
        return scores
    finite = np.isfinite(pred).all(axis=1)
    distances = np.zeros((n_pred, n_candidates))
    if finite.any():
        distances[finite] = cdist(pred[finite], candidates, metric="cityblock")
    for i in np.flatnonzero(finite):
        genes = excluded[i]
        if len(genes):
            distances[i] -= np.abs(pred[i, genes][None, :] - candidates[:, genes]).sum(axis=1)
        own_distance = distances[i, own[i]]
        farther = distances[i] > own_distance
        farther[own[i]] = False
        scores[i] = farther.sum() / (n_candidates - 1)
    return scores


def centroid_accuracy(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1 where prediction ``i`` is strictly closer (Euclidean) to ``truth[i]`` than to other rows.

    NaN for a non-finite prediction, and for every row when there is only one condition (no
    other centroid to tell it from).
    """
    n = len(pred)
    accuracy = np.full(n, np.nan)
    if n < 2:
        return accuracy
    finite = np.isfinite(pred).all(axis=1)
    if not finite.any():
        return accuracy
    distances = cdist(pred[finite], truth, metric="euclidean")
    rows = np.flatnonzero(finite)
    own = distances[np.arange(len(rows)), rows]
    others = distances.copy()
    others[np.arange(len(rows)), rows] = np.inf
    accuracy[rows] = (own < others.min(axis=1)).astype(np.float64)
    return accuracy

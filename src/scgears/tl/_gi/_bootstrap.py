"""Replicates of a pair's profiles: a seeded cell bootstrap, or draws from a model's uncertainty.

Both give, per condition, ``B`` replicate mean profiles over the genes that the pairs are scored
on. From them :func:`replicate_scores` scores every pair twice per replicate: as observed (the
replicate's ``delta_AB``) and under its additive null (``delta_A + delta_B`` of the point
estimates plus the same replicate's noise of ``A+B``), so that the only difference between the two
is the pair's non-additive part.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from ..._anndata import get_conditions
from ..._constants import CONTROL
from ..._matrix import expression_matrix
from ._statistics import _gene_pairs, _scores, theil_sen_targets

logger = logging.getLogger(__name__)

#: Replicates every pair gets; a pair whose replicates all agree with its call stops there.
FIRST_STAGE = 50
#: Float64 values per array in one batch of replicate fits: small enough that the Theil-Sen
#: temporaries stay in the CPU cache (about 2x faster on 2 cores than 2 million), so in practice
#: one pair's replicates per batch.
_REPLICATE_BATCH_VALUES = 60_000


@dataclass
class Replicates:
    """Point means and replicate means per condition over the genes ``genes`` (var indices).

    Cell replicates are held (``replicates``); a prediction's are drawn per pair when scored
    (``sd``), so that a 4,950-pair map never holds every condition's draws at once.
    """

    genes: np.ndarray
    means: dict[str, np.ndarray]  # condition -> (G,)
    n_bootstrap: int
    replicates: dict[str, np.ndarray] | None = None  # condition -> (B, G)
    sd: dict[str, np.ndarray] | None = None  # condition -> (G,)
    seed: int = 0

    def draw(self, condition: str, local: np.ndarray, pair: str, rows: slice) -> np.ndarray:
        """Replicate means (``rows`` of the B replicates) of ``condition`` on genes ``local``."""
        if self.replicates is not None:
            return self.replicates[condition][rows, local]
        mean = self.means[condition][local]
        n_rows = len(range(*rows.indices(self.n_bootstrap)))
        if condition == CONTROL:  # a prediction's control mean is fixed
            return np.broadcast_to(mean, (n_rows, len(local)))
        # one generator per (condition, pair): a pair's draws do not depend on the other pairs;
        # a row is the same whichever rows are asked for
        rng = np.random.default_rng(
            [int(self.seed), zlib.crc32(condition.encode()), zlib.crc32(pair.encode())]
        )
        first, stop, _ = rows.indices(self.n_bootstrap)
        # rows are drawn in order, so drawing up to ``stop`` gives the same rows as drawing all
        noise = rng.standard_normal((stop, len(local)))[first:]
        return mean + noise * self.sd[condition][local]


def _condition_rng(seed: int, condition: str) -> np.random.Generator:
    """A generator per condition, so a condition's draws do not depend on which pairs are scored."""
    return np.random.default_rng([int(seed), zlib.crc32(condition.encode())])


def cell_replicates(
    adata: AnnData,
    conditions: Sequence[str],
    genes: np.ndarray,
    *,
    n_bootstrap: int,
    seed: int,
    layer: str | None,
    condition_key: str,
) -> Replicates:
    """Resample the cells of each condition (and of the control) with replacement, ``B`` times.

    A replicate mean is ``W @ X / n`` with ``W`` the (B, n) resampling counts, so the cells are
    read once per condition and only on ``genes``.
    """
    labels = get_conditions(adata, condition_key)
    codes = np.asarray(labels.codes)
    position = {c: i for i, c in enumerate(labels.categories)}
    matrix = expression_matrix(adata, layer)
    means, replicates = {}, {}
    for condition in dict.fromkeys([CONTROL, *conditions]):
        rows = np.flatnonzero(codes == position[condition])
        block = matrix[rows][:, genes]
        n = len(rows)
        draws = _condition_rng(seed, condition).integers(n, size=(n_bootstrap, n))
        weights = np.zeros((n_bootstrap, n))
        np.add.at(weights, (np.repeat(np.arange(n_bootstrap), n), draws.ravel()), 1.0 / n)
        if sp.issparse(block):
            block = sp.csr_matrix(block, dtype=np.float64)
            replicates[condition] = np.asarray((block.T @ weights.T).T)
            means[condition] = np.asarray(block.mean(axis=0)).ravel()
        else:
            block = np.asarray(block, dtype=np.float64)
            replicates[condition] = weights @ block
            means[condition] = block.mean(axis=0)
    return Replicates(np.asarray(genes), means, n_bootstrap, replicates=replicates)


def uncertainty_replicates(
    profiles: AnnData,
    conditions: Sequence[str],
    genes: np.ndarray,
    *,
    n_bootstrap: int,
    seed: int,
) -> Replicates:
    """Draws of each predicted mean from a normal with the prediction's per-gene s.d.

    ``layers["uncertainty"]`` is read as the standard deviation of the predicted mean (an
    ensemble's spread); the control mean of a prediction is fixed, so it gets no noise. The draws
    are made per pair when it is scored (:meth:`Replicates.draw`).
    """
    row = {c: i for i, c in enumerate(profiles.obs_names)}
    x = np.asarray(profiles.X, dtype=np.float64)[:, genes]
    sd = np.nan_to_num(np.asarray(profiles.layers["uncertainty"], dtype=np.float64)[:, genes])
    control = np.asarray(profiles.var["control_mean"], dtype=np.float64)[genes]
    means = {CONTROL: control} | {c: x[row[c]] for c in conditions}
    sds = {c: sd[row[c]] for c in conditions}
    return Replicates(np.asarray(genes), means, n_bootstrap, sd=sds, seed=seed)


def replicate_scores(
    reps: Replicates,
    pairs: Sequence[tuple[str, str, str]],
    gene_sets: Sequence[np.ndarray],
    *,
    max_subpopulation: int,
    random_state: int,
    start: np.ndarray | None = None,
    rows: slice = slice(None),
    progress_bar: bool = False,
    with_null: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Scores of every pair on every replicate, observed and under the additive null.

    ``pairs`` holds ``(A, B, A+B)`` labels and ``gene_sets`` var indices (all in ``reps.genes``);
    ``start`` (pairs, 2), the pairs' point estimates of ``c1, c2``, is where the observed
    replicates' Theil-Sen iteration starts (the null's starts at the additive ``(1, 1)``): a
    replicate is a small perturbation of its pair, so it converges in a few steps. The null is
    scored only on what the calls read of it (``c1``, ``c2``, ``fit_residual``). ``rows`` picks
    the replicates scored (a replicate is the same whichever rows are asked for); without
    ``with_null`` the null is not scored (its dict stays empty).
    Returns two dicts of (pairs, rows) arrays (NaN for pairs with fewer than 3 genes).
    """
    from tqdm.auto import tqdm

    n_pairs, n_boot = len(pairs), len(range(*rows.indices(reps.n_bootstrap)))
    local = {int(g): i for i, g in enumerate(reps.genes)}
    sets = [np.array([local[int(g)] for g in s], dtype=np.int64) for s in gene_sets]
    sizes = np.array([len(s) for s in sets])
    observed: dict[str, np.ndarray] = {}
    null: dict[str, np.ndarray] = {}
    ctrl_mean = reps.means[CONTROL]
    with tqdm(total=n_pairs, disable=not progress_bar, desc="bootstrap", unit="pair") as bar:
        for n in np.unique(sizes[sizes >= 3]):
            members = np.flatnonzero(sizes == n)
            combos = _gene_pairs(
                int(n), max_subpopulation, np.random.default_rng([random_state, n])
            )
            per_problem = max(len(combos), 4 * int(n) * int(n))
            batch = max(1, _REPLICATE_BATCH_VALUES // (per_problem * n_boot))
            for offset in range(0, len(members), batch):
                idx = members[offset : offset + batch]
                d_a, d_b, d_ab, d_null = [], [], [], []
                for i in idx:
                    a, b, ab = pairs[i]
                    g = sets[i]
                    ctrl = reps.draw(CONTROL, g, ab, rows)
                    rep_ab = reps.draw(ab, g, ab, rows)
                    d_a.append(reps.draw(a, g, ab, rows) - ctrl)
                    d_b.append(reps.draw(b, g, ab, rows) - ctrl)
                    d_ab.append(rep_ab - ctrl)
                    additive = reps.means[a][g] + reps.means[b][g] - 2.0 * ctrl_mean[g]
                    noise = (rep_ab - reps.means[ab][g]) - (ctrl - ctrl_mean[g])
                    d_null.append(additive + noise)
                d_a = np.concatenate(d_a)
                d_b = np.concatenate(d_b)
                first = None if start is None else np.repeat(start[idx], n_boot, axis=0)
                additive = np.ones((len(d_a), 2))
                d_ab, d_null = np.concatenate(d_ab), np.concatenate(d_null)
                targets, starts = ((d_ab, d_null), (first, additive))
                if not with_null:
                    targets, starts = targets[:1], starts[:1]
                fits = theil_sen_targets(np.stack([d_a, d_b], axis=-1), targets, combos, starts)
                outputs = [(observed, d_ab, fits[0], False)]
                if with_null:
                    outputs.append((null, d_null, fits[1], True))
                for target, d_y, fit, only in outputs:
                    scores = _scores(
                        d_a, d_b, d_y, combos, coefficients=fit, coefficients_only=only
                    )
                    for name, values in scores.items():
                        if name not in target:
                            target[name] = np.full((n_pairs, n_boot), np.nan)
                        target[name][idx] = values.reshape(len(idx), n_boot)
                bar.update(len(idx))
    return observed, null

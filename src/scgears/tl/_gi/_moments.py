"""The call's features from cells: cross-fitted, noise-corrected moments of the pair's fit.

Theil-Sen's ``c1, c2`` on a pair's informative genes are biased towards 0 when the singles are
noisy (errors in variables) and by the choice of the genes on the same noisy means (a gene picked
for a large ``|delta_A|`` carries noise aligned with ``delta_A``), and by how much depends on each
pair's signal-to-noise ratio, so no null centred on the estimated singles removes it (on weak
singles an additive pair scored 0.75 of additive). From cells both biases have principled cures:

Cross-fitting
    The cells of every condition (and of the control) are split at random into two halves. The
    genes are chosen on one half (the ``n_top_genes`` largest ``|delta|`` of ``A``, ``B`` and
    ``A+B``, the pair's own genes left out, as the scores do) and the moments are taken on the
    other half, then the halves swap and the moments are summed: the noise of the genes used is
    independent of their choice.
Noise correction
    Each half's per-gene variance of its mean (cells' variance over their number) is subtracted
    from the moments it inflates (``sum a**2`` by ``var A + var control``; the control's noise
    shared by ``a = A - ctrl``, ``b`` and ``y = AB - ctrl`` from the cross moments), so the
    moments estimate those of the true changes (method of moments for errors in variables).

Features (1, 1, 1, 0 for an additive pair whatever the noise):

``scale``  ``<y, s> / <s, s>`` with ``s = a + b``: the double's size along the sum of its singles.
``k1, k2`` the least-squares ``c1, c2`` of ``y`` on ``a, b`` (each gene's share).
``new_variance``  the least-squares residual over ``max(<s, s>, <y, y>, noise of <y, y>)``: what
                  no combination of the singles explains, in units of the larger of the additive
                  and the observed effect.
``along``         ``(scale - 1)**2 <s, s>`` in the same units: the departure from additivity
                  along the singles' sum (a synergy's or suppression's), to weigh against
                  ``new_variance`` when a pair shows both.

A seeded bootstrap resamples the cells within each half and repeats everything, the choice of
genes included, so the replicates carry the spread of the whole procedure.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from ..._anndata import get_conditions
from ..._constants import CONTROL
from ..._matrix import expression_matrix

#: Fewest cells in a condition for the cross-fitted features (two halves of at least 3).
MIN_CELLS = 6
#: Candidate genes per condition and half, as a multiple of ``n_top_genes``: a replicate's chosen
#: genes are searched among the candidates of the point estimate.
CANDIDATE_FACTOR = 4

FEATURES = ("scale", "k1", "k2", "new_variance", "along")


def _rng(seed: int, condition: str, purpose: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(condition.encode()), purpose])


def _dense(block) -> np.ndarray:
    return np.asarray(block.toarray() if sp.issparse(block) else block, dtype=np.float64)


class HalfMeans:
    """Per condition: the two halves' cells, their means, variances of the means, replicates."""

    def __init__(self, adata: AnnData, conditions, *, n_bootstrap, seed, layer, condition_key):
        labels = get_conditions(adata, condition_key)
        codes = np.asarray(labels.codes)
        position = {c: i for i, c in enumerate(labels.categories)}
        self.matrix = expression_matrix(adata, layer)
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.halves: dict[str, list[np.ndarray]] = {}
        self.mean: dict[str, np.ndarray] = {}  # (2, genes)
        self.var: dict[str, np.ndarray] = {}  # (2, genes): variance of the half's mean
        for condition in dict.fromkeys([CONTROL, *conditions]):
            rows = np.flatnonzero(codes == position[condition])
            rows = rows[_rng(seed, condition, 1).permutation(len(rows))]
            halves = [np.sort(rows[: len(rows) // 2]), np.sort(rows[len(rows) // 2 :])]
            self.halves[condition] = halves
            means, variances = [], []
            for half in halves:
                block = self.matrix[half]
                if sp.issparse(block):
                    block = sp.csr_matrix(block, dtype=np.float64)
                    m = np.asarray(block.mean(axis=0)).ravel()
                    m2 = np.asarray(block.multiply(block).mean(axis=0)).ravel()
                else:
                    block = np.asarray(block, dtype=np.float64)
                    m, m2 = block.mean(axis=0), (block**2).mean(axis=0)
                n = len(half)
                means.append(m)
                variances.append(np.maximum(m2 - m**2, 0.0) * n / max(n - 1, 1) / n)
            self.mean[condition] = np.stack(means)
            self.var[condition] = np.stack(variances)

    def candidates(self, condition: str, n_top: int) -> np.ndarray:
        """Genes with the largest ``|delta|`` of a condition in either half."""
        delta = np.abs(self.mean[condition] - self.mean[CONTROL])
        k = min(CANDIDATE_FACTOR * n_top, delta.shape[1])
        top = np.argpartition(-delta, k - 1, axis=1)[:, :k]
        return np.unique(top)

    def replicates(self, condition: str, genes: np.ndarray) -> np.ndarray:
        """(1 + B, 2, len(genes)): the point half means, then the bootstrap's."""
        out = np.empty((1 + self.n_bootstrap, 2, len(genes)))
        out[0] = self.mean[condition][:, genes]
        for h, half in enumerate(self.halves[condition]):
            n = len(half)
            draws = _rng(self.seed, condition, 2 + h).integers(n, size=(self.n_bootstrap, n))
            weights = np.zeros((self.n_bootstrap, n))
            np.add.at(weights, (np.repeat(np.arange(self.n_bootstrap), n), draws.ravel()), 1.0 / n)
            block = self.matrix[half][:, genes]
            if sp.issparse(block):
                out[1:, h] = np.asarray((sp.csr_matrix(block, dtype=np.float64).T @ weights.T).T)
            else:
                out[1:, h] = weights @ _dense(block)
        return out


def cross_fitted_features(
    adata: AnnData,
    triples: Sequence[tuple[str, str, str]],
    own_genes: Sequence[np.ndarray],
    usable: np.ndarray,
    *,
    n_top: int,
    n_bootstrap: int,
    seed: int,
    layer,
    condition_key,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
    """Point (P,) and replicate (P, B) features of every pair, or ``None`` (too few cells).

    ``triples`` holds ``(A, B, A+B)``; ``own_genes`` the var indices left out of each pair's
    genes; ``usable`` marks the pairs to score (the others get NaN).
    """
    conditions = sorted({c for i in np.flatnonzero(usable) for c in triples[i]})
    labels = get_conditions(adata, condition_key)
    counts = labels.value_counts()
    if not conditions or min(int(counts.get(c, 0)) for c in [CONTROL, *conditions]) < MIN_CELLS:
        return None
    halves = HalfMeans(
        adata, conditions, n_bootstrap=n_bootstrap, seed=seed, layer=layer,
        condition_key=condition_key,
    )  # fmt: skip
    candidates = {c: halves.candidates(c, n_top) for c in conditions}
    pair_genes = {}
    needed: dict[str, set] = {c: set() for c in [CONTROL, *conditions]}
    for i in np.flatnonzero(usable):
        genes = np.unique(np.concatenate([candidates[c] for c in triples[i]]))
        pair_genes[i] = genes
        for c in (CONTROL, *triples[i]):
            needed[c].update(genes.tolist())
    needed_arr = {c: np.array(sorted(g), dtype=np.int64) for c, g in needed.items() if g}
    reps = {c: halves.replicates(c, g) for c, g in needed_arr.items()}
    n_pairs = len(triples)
    point = {name: np.full(n_pairs, np.nan) for name in FEATURES}
    boot = {name: np.full((n_pairs, n_bootstrap), np.nan) for name in FEATURES}
    for i, genes in pair_genes.items():
        a, b, ab = triples[i]

        def take(c, genes=genes):
            return reps[c][:, :, np.searchsorted(needed_arr[c], genes)]

        def var(c, genes=genes):
            return halves.var[c][:, genes]

        values = _pair_features(
            take(CONTROL), take(a), take(b), take(ab),
            (var(CONTROL), var(a), var(b), var(ab)),
            np.isin(genes, own_genes[i]), n_top,
        )  # fmt: skip
        for name, v in values.items():
            point[name][i] = v[0]
            boot[name][i] = v[1:]
    return point, boot


def _top_mask(delta: np.ndarray, n_top: int, excluded: np.ndarray) -> np.ndarray:
    """(R, genes) mask of the ``n_top`` largest non-zero ``|delta|`` per row, ``excluded`` out."""
    magnitude = np.where(excluded, -1.0, np.abs(delta))
    k = min(n_top, magnitude.shape[1])
    top = np.argpartition(-magnitude, k - 1, axis=1)[:, :k]
    mask = np.zeros(magnitude.shape, dtype=bool)
    np.put_along_axis(mask, top, True, axis=1)
    return mask & (magnitude > 0)


def _pair_features(ctrl, rep_a, rep_b, rep_ab, variances, excluded, n_top) -> dict:
    """Features of one pair for the point (row 0) and every replicate; inputs (R, 2, genes)."""
    v_c, v_a, v_b, v_ab = variances
    sums = {k: 0.0 for k in ("aa", "bb", "ab", "ay", "by", "yy", "va", "vb", "vc", "vy")}
    for pick in (0, 1):
        use = 1 - pick
        d = {k: m[:, pick] - ctrl[:, pick] for k, m in (("a", rep_a), ("b", rep_b), ("y", rep_ab))}
        # the scores' genes: the top |delta| of A, B and A+B
        mask = (
            _top_mask(d["a"], n_top, excluded)
            | _top_mask(d["b"], n_top, excluded)
            | _top_mask(d["y"], n_top, excluded)
        ).astype(np.float64)
        a = rep_a[:, use] - ctrl[:, use]
        b = rep_b[:, use] - ctrl[:, use]
        y = rep_ab[:, use] - ctrl[:, use]
        for key, x, z in (("aa", a, a), ("bb", b, b), ("ab", a, b), ("ay", a, y), ("by", b, y)):
            sums[key] = sums[key] + np.einsum("rg,rg,rg->r", mask, x, z)
        sums["yy"] = sums["yy"] + np.einsum("rg,rg,rg->r", mask, y, y)
        for key, v in (("va", v_a), ("vb", v_b), ("vc", v_c), ("vy", v_ab)):
            sums[key] = sums[key] + mask @ v[use]
    # moments of the true changes: the noise of a = A - ctrl is that of A plus the control's,
    # and the control's noise is shared by a, b and y
    m_aa = sums["aa"] - sums["va"] - sums["vc"]
    m_bb = sums["bb"] - sums["vb"] - sums["vc"]
    m_ab = sums["ab"] - sums["vc"]
    r_a = sums["ay"] - sums["vc"]
    r_b = sums["by"] - sums["vc"]
    r_yy = sums["yy"] - sums["vy"] - sums["vc"]
    s_ss = m_aa + m_bb + 2.0 * m_ab
    # the noise expected in y's sum of squares: a floor under the units of new_variance, so that
    # a double whose singles show nothing measurable is judged against its noise, not against 0
    noise = sums["vy"] + sums["vc"]
    with np.errstate(invalid="ignore", divide="ignore"):
        # neither single measurable: nothing to scale (1), the double can still be new
        measured = s_ss > 0
        scale = np.where(measured, (r_a + r_b) / np.where(measured, s_ss, 1.0), 1.0)
        det = m_aa * m_bb - m_ab**2
        # a single without a measurable effect, or (near-)collinear singles: only the sum is
        # identified, each share is the scale
        regular = (m_aa > 0) & (m_bb > 0) & (det > 1e-3 * m_aa * m_bb)
        safe = np.where(regular, det, 1.0)
        c1 = np.where(regular, (m_bb * r_a - m_ab * r_b) / safe, scale)
        c2 = np.where(regular, (m_aa * r_b - m_ab * r_a) / safe, scale)
        explained = np.where(
            regular, c1 * r_a + c2 * r_b, np.where(measured, scale * (r_a + r_b), 0.0)
        )
        residual = r_yy - explained
        units = np.maximum(np.maximum(s_ss, r_yy), noise)
        new_variance = residual / units
        # the departure from additivity along the singles' sum, in the same units
        along = np.where(measured, (scale - 1.0) ** 2 * np.maximum(s_ss, 0.0) / units, 0.0)
    return {"scale": scale, "k1": c1, "k2": c2, "new_variance": new_variance, "along": along}

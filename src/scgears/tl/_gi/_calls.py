"""One calibrated subtype per pair: the pair against its own additive null.

The rules and their parameters are in ``scgears._gi_rules``; docs/metrics.md gives the reasons.
Every rule reads four features of a fit of ``delta_AB ~ c1 delta_A + c2 delta_B``:

``scale``
    ``(c1 + c2) / (c1_null + c2_null)``: the double's size against the sum of its singles, where
    the null's coefficients (medians over the null replicates) carry the shrinkage that noise in
    the singles puts on the fit; 1 for an additive pair.
``k1``, ``k2``
    ``c1 / c1_null`` and ``c2 / c2_null``: each gene's share, 1 when additive.
``new_variance``
    ``fit_residual`` (the sum of squares that the fit leaves unexplained, over that of the
    additive expectation ``delta_A + delta_B``) minus its null median: what no combination of
    the singles explains, beyond what noise leaves, in units of the additive effect. (An
    absolute residual: a share of the double's own variance would grow for any weak double.)
``similar``
    Bias-corrected distance correlation of ``delta_A`` with ``delta_B`` of at least
    :data:`~scgears._gi_rules.SIMILAR_SINGLES`.

The point estimates of ``scale``, ``k1`` and ``k2`` are bias-corrected by the bootstrap
(``2 * estimate - median(replicates)``): genes chosen on noisy singles shrink the estimate against
the truth as a replicate's is shrunk against the estimate, which the null does not share.
Significance is a z-score against the null replicates' spread (median absolute deviation); where
there is no noise model (a prediction without uncertainty) the spread is 0 and only the effect
sizes decide.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..._gi_rules import (
    MASKED_RATIO,
    MAX_REFERENCE_SHIFT,
    MIN_NEW_VARIANCE,
    MIN_REFERENCE_PAIRS,
    MIN_SCALE_CHANGE,
    MIN_SCALE_INCREASE,
    NEW_OVER_ALONG,
    SIMILAR_SINGLES,
    SUBTYPES,
    Z_CRITICAL,
    Z_MARGIN,
    Z_NEW,
)

_CODE = {name: i for i, name in enumerate(SUBTYPES)}
_MAD_TO_SD = 1.4826
#: Bootstrap bias correction of the point estimates of scale and k (see call_pairs).
_BIAS_CORRECT = True


@dataclass
class NullReference:
    """Per pair (arrays of length P): the additive null's centre and spread of each feature."""

    c1: np.ndarray
    c2: np.ndarray
    scale_sd: np.ndarray
    k1_sd: np.ndarray
    k2_sd: np.ndarray
    unexplained: np.ndarray
    unexplained_sd: np.ndarray


def _robust_sd(values: np.ndarray) -> np.ndarray:
    centre = np.nanmedian(values, axis=1, keepdims=True)
    return _MAD_TO_SD * np.nanmedian(np.abs(values - centre), axis=1)


def null_reference(point: dict, null: dict | None) -> NullReference:
    """The null's reference values; without replicates, the exact additive values, spread 0."""
    n = len(point["c1"])
    if null is None:
        zero = np.zeros(n)
        return NullReference(np.ones(n), np.ones(n), zero, zero, zero, zero, zero)
    with np.errstate(invalid="ignore", divide="ignore"):
        c1 = np.nanmedian(null["c1"], axis=1)
        c2 = np.nanmedian(null["c2"], axis=1)
        scale = (null["c1"] + null["c2"]) / (c1 + c2)[:, None]
        unexplained = null["fit_residual"]
        return NullReference(
            c1=c1,
            c2=c2,
            scale_sd=_robust_sd(scale),
            k1_sd=_robust_sd(null["c1"] / c1[:, None]),
            k2_sd=_robust_sd(null["c2"] / c2[:, None]),
            unexplained=np.nanmedian(unexplained, axis=1),
            unexplained_sd=_robust_sd(unexplained),
        )


def features(scores: dict, ref: NullReference) -> dict[str, np.ndarray]:
    """The decision features of point scores (P,) or replicate scores (P, B)."""

    def per_pair(x):
        x = np.asarray(x, dtype=np.float64)
        return x if np.ndim(scores["c1"]) == 1 else x[:, None]

    c1, c2 = np.asarray(scores["c1"]), np.asarray(scores["c2"])
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "scale": (c1 + c2) / per_pair(ref.c1 + ref.c2),
            "k1": c1 / per_pair(ref.c1),
            "k2": c2 / per_pair(ref.c2),
            "new_variance": np.asarray(scores["fit_residual"]) - per_pair(ref.unexplained),
            "similarity": np.asarray(scores["dcor_singles_bc"], dtype=np.float64),
        }


def _z(deviation: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Deviation / sd, with a spread of 0 (no noise model) giving +-inf, or 0 for no deviation."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z = deviation / sd
        return np.where(sd > 0, z, np.sign(deviation) * np.inf)


def decide(feat: dict[str, np.ndarray], ref: NullReference) -> np.ndarray:
    """Subtype codes (index into ``SUBTYPES``; -1 where a feature is NaN)."""
    shape = np.shape(feat["scale"])

    def per_pair(x):
        return x if len(shape) == 1 else x[:, None]

    scale, k1, k2 = feat["scale"], feat["k1"], feat["k2"]
    z_scale = _z(scale - 1.0, per_pair(ref.scale_sd))
    z_new = _z(feat["new_variance"], per_pair(ref.unexplained_sd))
    first_masked = k1 < k2
    k_min = np.where(first_masked, k1, k2)
    k_max = np.where(first_masked, k2, k1)
    z_min = _z(k_min - 1.0, np.where(first_masked, per_pair(ref.k1_sd), per_pair(ref.k2_sd)))
    with np.errstate(invalid="ignore"):
        new = (feat["new_variance"] > MIN_NEW_VARIANCE) & (z_new > Z_NEW)
        # beyond additive at Z_CRITICAL and beyond the minimum effect at Z_MARGIN (one-sided)
        z_up = _z(scale - 1.0 - MIN_SCALE_INCREASE, per_pair(ref.scale_sd))
        # the scale is a ratio: the minimum effect is symmetric on the log scale
        z_down = _z(scale - 1.0 / (1.0 + MIN_SCALE_CHANGE), per_pair(ref.scale_sd))
        up = (z_up > Z_MARGIN) & (z_scale > Z_CRITICAL)
        down = (z_down < -Z_MARGIN) & (z_scale < -Z_CRITICAL)
        similar = feat["similarity"] >= SIMILAR_SINGLES
        masked = (
            (k_max > 0)
            & (k_min < MASKED_RATIO * k_max)
            & (z_min < -Z_CRITICAL)
            & (k_max <= 1.0 + MIN_SCALE_CHANGE)
        )
    if "along" in feat:
        # a pair both scaled and with a residual is neomorphism only when the residual is
        # NEW_OVER_ALONG times its departure along the singles' sum: a synergy whose amplified
        # response is distorted (a saturating network) stays synergy, new genes on top of an
        # additive (or slightly scaled) response are neomorphism
        with np.errstate(invalid="ignore"):
            new = new & ~((up | down) & (NEW_OVER_ALONG * feat["along"] > feat["new_variance"]))
    code = np.full(shape, _CODE["additive"], dtype=np.int64)
    # the first rule that holds wins, so the order below is the precedence
    code = np.where(~similar & down, _CODE["suppression"], code)
    code = np.where(up, _CODE["synergy"], code)
    code = np.where(~similar & masked, _CODE["epistasis"], code)
    code = np.where(similar & down, _CODE["redundancy"], code)
    code = np.where(new, _CODE["neomorphism"], code)
    missing = ~np.isfinite(scale) | ~np.isfinite(feat["new_variance"])
    return np.where(missing, -1, code)


def screen_reference(scale: np.ndarray, codes: np.ndarray) -> tuple[float, float] | None:
    """The typical ``scale`` of the screen's additive pairs and its standard error, or ``None``.

    A screen's response can saturate (or amplify) for every pair alike: then an additive pair's
    double is systematically a little smaller (larger) than the sum of its singles, and the
    interaction of a pair is its departure from that typical pair, as genetic-interaction screens
    score a pair against the bulk of the screen's pairs. The typical value is the median
    ``scale`` of the pairs a first pass (against 1) calls additive, used only when at least
    :data:`~scgears._gi_rules.MIN_REFERENCE_PAIRS` are; its standard error (from the pairs'
    spread) is added to each pair's null spread, and it is bounded to
    ``1 +- MAX_REFERENCE_SHIFT`` so that a screen can never redefine additivity wholesale.
    """
    additive = np.isfinite(scale) & (codes == _CODE["additive"])
    n = int(additive.sum())
    if n < MIN_REFERENCE_PAIRS:
        return None
    values = scale[additive]
    centre = float(np.median(values))
    # s.e. of a median: sqrt(pi / 2) * sd / sqrt(n), with a robust sd
    se = np.sqrt(np.pi / 2.0) * _MAD_TO_SD * float(np.median(np.abs(values - centre))) / np.sqrt(n)
    centre = float(np.clip(centre, 1.0 - MAX_REFERENCE_SHIFT, 1.0 + MAX_REFERENCE_SHIFT))
    return centre, se


def call_pairs(
    point: dict, observed: dict | None, null: dict | None
) -> tuple[pd.Categorical, np.ndarray, dict[str, np.ndarray]]:
    """The subtype of each pair, its confidence and the features behind it.

    ``point`` holds (P,) scores, ``observed`` and ``null`` (P, B) replicate scores or ``None``
    (no noise model: confidence NaN). Replicate features are re-centred on the point estimate
    (the bootstrap's spread around the estimate), since a replicate's singles carry the noise
    twice and its fit is shrunk more than the estimate's.
    """
    ref = null_reference(point, null)
    feat = features(point, ref)
    boot = features(observed, ref) if observed is not None else None
    if boot is not None and _BIAS_CORRECT:
        # bootstrap bias correction of the coefficients' shrinkage: a replicate's fit is shrunk
        # against the estimate as the estimate's is against the truth (noisy singles, genes
        # chosen on them), which the null, built on the estimated singles, does not share
        for name in ("scale", "k1", "k2"):
            with np.errstate(invalid="ignore"):
                feat[name] = 2.0 * feat[name] - np.nanmedian(boot[name], axis=1)
    scored = None if observed is None else np.isfinite(np.asarray(observed["c1"], float))
    return _finish(feat, boot, ref, scored)


def call_cross_fitted(
    point: dict[str, np.ndarray], boot: dict[str, np.ndarray], similarity: np.ndarray
) -> tuple[pd.Categorical, np.ndarray, dict[str, np.ndarray]]:
    """Calls from the cross-fitted, noise-corrected features of cells (``_moments``).

    Those features are 1 (``scale``, ``k1``, ``k2``) and 0 (``new_variance``) for an additive
    pair whatever the noise, so the reference is the exact additive pair and the spread is the
    bootstrap's (the replicates repeat the whole procedure, the choice of genes included).
    """
    feat = dict(point) | {"similarity": np.asarray(similarity, dtype=np.float64)}
    replicates = dict(boot) | {"similarity": feat["similarity"][:, None]}
    n = len(feat["scale"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows (pairs not scored)
        ref = NullReference(
            c1=np.ones(n),
            c2=np.ones(n),
            scale_sd=_robust_sd(replicates["scale"]),
            k1_sd=_robust_sd(replicates["k1"]),
            k2_sd=_robust_sd(replicates["k2"]),
            unexplained=np.zeros(n),
            unexplained_sd=_robust_sd(replicates["new_variance"]),
        )
    scored = np.isfinite(replicates["scale"])
    return _finish(feat, replicates, ref, scored)


def _finish(feat, boot, ref, scored):
    """Calls of the features (against the screen's typical pair when there is one), confidence."""
    codes = decide(feat, ref)
    raw_scale = feat["scale"].copy()
    typical = screen_reference(feat["scale"], codes)
    if typical is not None:
        # the pairs against the screen's typical additive pair (see screen_reference)
        # only the scale: a masked pair's double is one single, which a saturating response
        # does not shrink as it shrinks a sum, so each gene's share k stays against 1
        centre, se = typical
        feat["scale"] = feat["scale"] / centre
        if boot is not None:
            boot["scale"] = boot["scale"] / centre
        ref.scale_sd = np.hypot(ref.scale_sd, se) / centre
        codes = decide(feat, ref)
    confidence = np.full(len(codes), np.nan)
    if boot is not None:
        for name in ("scale", "k1", "k2", "new_variance", "along"):
            if name not in boot:
                continue
            with np.errstate(invalid="ignore"):
                shift = feat[name] - np.nanmedian(boot[name], axis=1)
            boot[name] = boot[name] + shift[:, None]
        replicate_codes = decide(boot, ref)
        # replicates a pair did not score (NaN c1: stopped early, see _sequential_scores) are
        # not votes
        agree = ((replicate_codes == codes[:, None]) & scored).sum(axis=1)
        valid = (codes >= 0) & (scored.sum(axis=1) > 0)
        confidence[valid] = agree[valid] / scored[valid].sum(axis=1)
    subtype = pd.Categorical.from_codes(codes, categories=list(SUBTYPES))
    z_scale = _z(feat["scale"] - 1.0, ref.scale_sd)
    summary = {
        "scale": raw_scale,
        "additive_scale": np.full(len(codes), 1.0 if typical is None else typical[0]),
        "scale_z": np.where(codes >= 0, z_scale, np.nan),
        "new_variance": feat["new_variance"],
        "masked_ratio": np.minimum(feat["k1"], feat["k2"]) / np.maximum(feat["k1"], feat["k2"]),
    }
    return subtype, confidence, summary

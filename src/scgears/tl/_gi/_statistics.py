"""Numerical kernels of the GI scores, batched over pairs: Theil-Sen, distance correlation."""

from __future__ import annotations

import logging
from itertools import combinations

import numpy as np

logger = logging.getLogger(__name__)

#: Newton steps before the Weiszfeld iteration when Theil-Sen is started near its answer (one:
#: a second costs more than the Weiszfeld steps it saves, about 20% of the median's time).
NEWTON_STEPS = 1
#: GEARS' Theil-Sen settings (``TheilSenRegressor(max_iter=1000)``; sklearn's default ``tol``).
THEIL_SEN_MAX_ITER = 1000
THEIL_SEN_TOL = 1.0e-3

SCORE_COLUMNS = (
    "c1",
    "c2",
    "mag",
    "dcor",
    "dcor_singles",
    "dcor_first",
    "dcor_second",
    "corr_fit",
    "dominance",
    "eq_contr",
    "dcor_bc",
    "dcor_singles_bc",
    "eq_contr_bc",
    "fit_residual",
)

_EPS = np.finfo(np.float64).eps
#: Upper bound on the number of float64 values held per array while scoring a batch of pairs.
_BATCH_VALUES = 2_000_000


def _informative_genes(
    delta, first, second, double, n_top: int, exclude: list[np.ndarray] | None = None
) -> list[np.ndarray]:
    """Per pair, the union of the top-``n_top`` |delta| genes of A, B and A+B (non-zero only).

    ``exclude`` holds, per pair, genes left out before the top genes are taken (the pair's own
    perturbed genes).
    """
    conditions = np.unique(np.concatenate([first, second, double]))
    extra = 0 if exclude is None else max((len(e) for e in exclude), default=0)
    n_keep = min(n_top + extra, delta.shape[1])
    top = {}
    for c in conditions:
        magnitude = np.abs(delta[c])
        order = np.argsort(-magnitude, kind="stable")[:n_keep]
        top[c] = order[magnitude[order] > 0]
    sets = []
    for i, (a, b, ab) in enumerate(zip(first, second, double, strict=True)):
        parts = [top[a], top[b], top[ab]]
        if exclude is not None and len(exclude[i]):
            parts = [p[~np.isin(p, exclude[i])] for p in parts]
        sets.append(np.unique(np.concatenate([p[:n_top] for p in parts])))
    return sets


def _score_pairs(delta, first, second, double, gene_sets, max_subpopulation, random_state):
    """Scores of every pair, batched over pairs that share the number of genes."""
    n_pairs = len(gene_sets)
    out = {name: np.full(n_pairs, np.nan) for name in SCORE_COLUMNS}
    out["n_fit_genes"] = np.array([len(g) for g in gene_sets], dtype=np.int64)
    sizes = out["n_fit_genes"]
    rng = np.random.default_rng(random_state)
    too_few = np.flatnonzero((sizes < 3) & (sizes > 0))
    if len(too_few):
        logger.warning(
            "%d pairs have fewer than 3 informative genes and get NaN scores (e.g. %s).",
            len(too_few),
            too_few[:3].tolist(),
        )
    for n in np.unique(sizes[sizes >= 3]):
        members = np.flatnonzero(sizes == n)
        combos = _gene_pairs(int(n), max_subpopulation, rng)
        batch = max(1, _BATCH_VALUES // max(len(combos), 4 * int(n) * int(n)))
        for start in range(0, len(members), batch):
            idx = members[start : start + batch]
            genes = np.stack([gene_sets[i] for i in idx])  # (P, n)
            rows = np.arange(len(idx))[:, None]
            d_a = delta[first[idx]][rows, genes]
            d_b = delta[second[idx]][rows, genes]
            d_ab = delta[double[idx]][rows, genes]
            for name, values in _scores(d_a, d_b, d_ab, combos).items():
                out[name][idx] = values
    return out


def _gene_pairs(n: int, max_subpopulation: int, rng: np.random.Generator) -> np.ndarray:
    """All pairs of ``n`` genes, or ``max_subpopulation`` distinct ones at random."""
    n_all = n * (n - 1) // 2
    if n_all <= max_subpopulation:
        return np.array(list(combinations(range(n), 2)), dtype=np.int64)
    chosen = np.empty((0, 2), dtype=np.int64)
    while len(chosen) < max_subpopulation:
        draw = rng.integers(0, n, size=(2 * max_subpopulation, 2))
        draw = np.sort(draw[draw[:, 0] != draw[:, 1]], axis=1)
        chosen = np.unique(np.concatenate([chosen, draw]), axis=0)
    keep = rng.choice(len(chosen), size=max_subpopulation, replace=False)
    return chosen[np.sort(keep)]


def _scores(
    d_a: np.ndarray,
    d_b: np.ndarray,
    d_ab: np.ndarray,
    combos: np.ndarray,
    *,
    start: np.ndarray | None = None,
    coefficients_only: bool = False,
    coefficients: np.ndarray | None = None,
) -> dict:
    """GEARS' get_coeffs for a batch of pairs; inputs are (pairs, genes).

    ``start`` (pairs, 2) starts Theil-Sen's spatial median there (see :func:`theil_sen`);
    ``coefficients_only`` returns only ``c1``, ``c2`` and ``fit_residual`` (what the additive null
    is read for), skipping the distance correlations; ``coefficients`` (pairs, 2), the fit when
    it is already known.
    """
    if coefficients is None:
        c1, c2 = theil_sen(np.stack([d_a, d_b], axis=-1), d_ab, combos, start=start).T
    else:
        c1, c2 = coefficients.T
    if coefficients_only:
        return {"c1": c1, "c2": c2, "fit_residual": _fit_residual(d_a, d_b, d_ab)}
    fit = c1[:, None] * d_a + c2[:, None] * d_b
    dcor = _distance_correlations(d_a, d_b, d_ab)
    residual = _fit_residual(d_a, d_b, d_ab)
    with np.errstate(divide="ignore", invalid="ignore"):
        dominance = np.abs(np.log10(c1 / c2))
        eq_contr = np.minimum(dcor["first"], dcor["second"]) / np.maximum(
            dcor["first"], dcor["second"]
        )
        eq_contr_bc = np.minimum(dcor["first_bc"], dcor["second_bc"]) / np.maximum(
            dcor["first_bc"], dcor["second_bc"]
        )
    return {
        "c1": c1,
        "c2": c2,
        "mag": np.sqrt(c1**2 + c2**2),
        "dcor": dcor["joint"],
        "dcor_singles": dcor["singles"],
        "dcor_first": dcor["first"],
        "dcor_second": dcor["second"],
        "corr_fit": _rowwise_pearson(fit, d_ab),
        "dominance": dominance,
        "eq_contr": eq_contr,
        "dcor_bc": dcor["joint_bc"],
        "dcor_singles_bc": dcor["singles_bc"],
        "eq_contr_bc": eq_contr_bc,
        "fit_residual": residual,
    }


def _fit_residual(d_a: np.ndarray, d_b: np.ndarray, d_ab: np.ndarray) -> np.ndarray:
    """What no combination of the singles explains (see ``fit_residual``)."""
    additive = d_a + d_b
    with np.errstate(divide="ignore", invalid="ignore"):
        # the least-squares residual (Theil-Sen may fit part of the genes and leave the rest), in
        # units of the size of the additive expectation or of the fit, whichever is larger: noise
        # stays small against a weak double, and a strong double's distortions are measured
        # against its own size
        return _least_squares_residual(d_a, d_b, d_ab) / np.maximum(
            np.einsum("pn,pn->p", additive, additive), np.einsum("pn,pn->p", d_ab, d_ab)
        )


# --------------------------------------------------------------------------------------------
# Theil-Sen and distance correlation for many problems at once


def theil_sen(
    x: np.ndarray,
    y: np.ndarray,
    combos: np.ndarray | None = None,
    *,
    max_iter: int = THEIL_SEN_MAX_ITER,
    tol: float = THEIL_SEN_TOL,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Theil-Sen slopes without intercept on two features, for a batch of regressions.

    ``x`` is (problems, samples, 2) and ``y`` (problems, samples); ``combos`` (pairs of samples,
    2) defaults to all pairs of samples. Each problem's estimate is the spatial median of the
    exact solutions on the pairs of samples, as sklearn's ``TheilSenRegressor(fit_intercept=False,
    max_iter=max_iter, tol=tol)`` computes it when it uses all pairs. ``start`` (problems, 2)
    replaces sklearn's start (the mean of the solutions): a replicate started at its pair's point
    estimate converges to the same median (within ``tol``) in a few steps. Returns (problems, 2).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 2 or y.shape != x.shape[:2]:
        raise ValueError(
            f"x must be (problems, samples, 2) and y (problems, samples); got "
            f"{x.shape} and {y.shape}."
        )
    if combos is None:
        combos = np.array(list(combinations(range(x.shape[1]), 2)), dtype=np.int64)
    first, second = _pair_solutions(x[..., 0], x[..., 1], y, combos)
    return _spatial_median(first, second, max_iter=max_iter, tol=tol, start=start)


def _pair_solutions(xa, xb, y, combos) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares solutions of the 2x2 system of every pair of samples, (problems, pairs) each.

    A pair whose matrix is singular to machine precision gets the minimum-norm solution (what
    LAPACK's ``gelss`` with ``rcond=-1`` returns in sklearn), an all-zero matrix gets zero.
    """
    return _solve_pairs(_pair_systems(xa, xb, combos), y, combos)


def _pair_systems(xa, xb, combos) -> tuple:
    """What the pairs' 2x2 systems share whatever ``y`` is (so two targets solve once)."""
    i, j = combos[:, 0], combos[:, 1]
    a1, a2 = xa[:, i], xb[:, i]
    b1, b2 = xa[:, j], xb[:, j]
    det = a1 * b2 - a2 * b1
    frob = a1**2 + a2**2 + b1**2 + b2**2
    # singular values s1 >= s2 with s1 * s2 = |det| and s1**2 <= frob: s2 / s1 below machine
    # precision (gelss' rank cut-off) is |det| <= eps * s1**2, up to a factor 2 at the edge
    singular = np.abs(det) <= _EPS * frob
    if singular.any():
        det[singular] = 1.0
        f = frob[singular]
        # rank one: the pseudo-inverse is M^T / ||M||_F^2; rank zero: the solution is 0
        pinv = np.where(f > 0, 1.0 / np.where(f > 0, f, 1.0), 0.0)
    else:
        singular, pinv = None, None
    return a1, a2, b1, b2, det, singular, pinv


def _solve_pairs(system, y, combos) -> tuple[np.ndarray, np.ndarray]:
    a1, a2, b1, b2, det, singular, pinv = system
    y_i, y_j = y[:, combos[:, 0]], y[:, combos[:, 1]]
    c1 = (y_i * b2 - a2 * y_j) / det
    c2 = (a1 * y_j - b1 * y_i) / det
    if singular is not None:
        c1[singular] = (a1[singular] * y_i[singular] + b1[singular] * y_j[singular]) * pinv
        c2[singular] = (a2[singular] * y_i[singular] + b2[singular] * y_j[singular]) * pinv
    return c1, c2


def theil_sen_targets(
    x, targets, combos, starts, *, max_iter=THEIL_SEN_MAX_ITER, tol=THEIL_SEN_TOL
):
    """:func:`theil_sen` of several targets on the same ``x`` (the pairs' systems solved once)."""
    x = np.asarray(x, dtype=np.float64)
    system = _pair_systems(x[..., 0], x[..., 1], combos)
    return [
        _spatial_median(
            *_solve_pairs(system, np.asarray(y, dtype=np.float64), combos),
            max_iter=max_iter,
            tol=tol,
            start=start,
        )
        for y, start in zip(targets, starts, strict=True)
    ]


def _spatial_median(
    px: np.ndarray, py: np.ndarray, *, max_iter: int, tol: float, start: np.ndarray | None = None
) -> np.ndarray:
    """Spatial median of each problem's 2-d points (coordinates ``px``, ``py``: problems x n).

    sklearn's modified Weiszfeld iteration: each problem starts at the mean of its points and
    stops after its own first step shorter than ``tol``, so the result is what sklearn's
    ``_spatial_median`` returns for that problem alone. Returns (problems, 2).
    """
    if start is None:
        result = np.stack([px.mean(axis=1), py.mean(axis=1)], axis=1)
    else:
        # Newton steps from a start near the median converge quadratically where Weiszfeld's
        # converge linearly; the Weiszfeld iteration below then stops as sklearn's does
        result = _newton_steps(px, py, np.array(start, dtype=np.float64), NEWTON_STEPS)
    active = np.arange(px.shape[0])
    median = result.copy()
    tol_sq = tol**2
    for _ in range(max_iter):
        if len(active) == 0:
            break
        step = _weiszfeld_step(px, py, median)
        done = np.sum((median - step) ** 2, axis=1) < tol_sq
        result[active] = step
        median = step
        if done.any():
            keep = ~done
            active, px, py, median = active[keep], px[keep], py[keep], median[keep]
    if len(active):
        logger.warning(
            "Theil-Sen spatial median did not converge in %d iterations for %d problems.",
            max_iter,
            len(active),
        )
    return result


def _newton_steps(px: np.ndarray, py: np.ndarray, median: np.ndarray, steps: int) -> np.ndarray:
    """Newton steps on the sum of distances to the points.

    The gradient is ``-sum(u_i)`` and the Hessian ``sum((I - u_i u_i^T) / r_i)`` (``u_i`` the unit
    vectors to the points, ``r_i`` their distances), skipping points within machine precision of
    the median; a problem whose step is not finite or whose Hessian is singular keeps its median.
    """
    for _ in range(steps):
        dx = px - median[:, :1]
        dy = py - median[:, 1:]
        r = np.sqrt(dx * dx + dy * dy)
        w = np.where(r >= _EPS, 1.0 / np.maximum(r, _EPS), 0.0)
        ux, uy = dx * w, dy * w
        gx, gy = -ux.sum(axis=1), -uy.sum(axis=1)
        hxx = np.einsum("pn,pn->p", uy * uy, w)
        hyy = np.einsum("pn,pn->p", ux * ux, w)
        hxy = -np.einsum("pn,pn->p", ux * uy, w)
        det = hxx * hyy - hxy * hxy
        ok = det > _EPS * np.maximum(hxx * hyy, _EPS)
        with np.errstate(divide="ignore", invalid="ignore"):
            sx = -(hyy * gx - hxy * gy) / det
            sy = -(hxx * gy - hxy * gx) / det
        ok &= np.isfinite(sx) & np.isfinite(sy)
        median = median + np.where(ok[:, None], np.stack([sx, sy], axis=1), 0.0)
    return median


def _weiszfeld_step(px: np.ndarray, py: np.ndarray, median: np.ndarray) -> np.ndarray:
    dx = px - median[:, :1]
    dy = py - median[:, 1:]
    norm = np.sqrt(dx * dx + dy * dy)
    away = norm >= _EPS
    if away.all():
        inverse = 1.0 / norm
        on_point = np.zeros(len(px))
    else:  # the median sits on one of the points: sklearn leaves that point out
        inverse = np.where(away, 1.0 / np.where(away, norm, 1.0), 0.0)
        on_point = (~away).any(axis=1).astype(np.float64)
    quotient = np.hypot(np.einsum("pn,pn->p", dx, inverse), np.einsum("pn,pn->p", dy, inverse))
    total = inverse.sum(axis=1)
    moving = quotient > _EPS
    denominator = np.where(moving, total, 1.0)
    direction = (
        np.stack([np.einsum("pn,pn->p", px, inverse), np.einsum("pn,pn->p", py, inverse)], axis=1)
        / denominator[:, None]
    )
    direction = np.where(moving[:, None], direction, 1.0)
    ratio = on_point / np.where(moving, quotient, 1.0)
    return (
        np.maximum(0.0, 1.0 - ratio)[:, None] * direction + np.minimum(1.0, ratio)[:, None] * median
    )


def _distance_correlations(d_a: np.ndarray, d_b: np.ndarray, d_ab: np.ndarray) -> dict:
    """The four distance correlations of get_coeffs for a batch of pairs (inputs: pairs x genes).

    V-statistics, as the ``dcor`` package's ``distance_correlation`` (keys ``joint``,
    ``singles``, ``first``, ``second``), and the bias-corrected (U-statistic) versions, as its
    ``u_distance_correlation_sqr`` (keys with ``_bc``; reported as the square root of the
    estimate clipped at 0). With ``D`` the distance matrices (zero diagonal), ``r`` their row sums
    and ``R`` their totals, both come from three sums: the double-centred product is
    ``sum(D_x * D_y) - 2 / n * sum(r_x * r_y) + R_x * R_y / n**2`` and the U-centred one
    ``sum(D_x * D_y) - 2 / (n - 2) * sum(r_x * r_y) + R_x * R_y / ((n - 1) (n - 2))``, so no
    centred matrix is formed; the joint distance of ``[delta_A, delta_B]`` is
    ``hypot(D_A, D_B)``.
    """
    n = d_a.shape[1]
    dist_a = np.abs(d_a[:, :, None] - d_a[:, None, :])
    dist_b = np.abs(d_b[:, :, None] - d_b[:, None, :])
    dist_ab = np.abs(d_ab[:, :, None] - d_ab[:, None, :])
    joint = np.hypot(dist_a, dist_b)
    mats = {"a": dist_a, "b": dist_b, "ab": dist_ab, "j": joint}
    rows = {k: m.sum(axis=2) for k, m in mats.items()}
    totals = {k: r.sum(axis=1) for k, r in rows.items()}
    # sum(joint**2) = sum(dist_a**2) + sum(dist_b**2): saves one pass over the joint matrix
    products = {
        (x, y): np.einsum("pij,pij->p", mats[x], mats[y])
        for x, y in (("a", "a"), ("b", "b"), ("ab", "ab"), ("j", "ab"), ("a", "b"), ("a", "ab"))
    }
    products["b", "ab"] = np.einsum("pij,pij->p", dist_b, dist_ab)
    products["j", "j"] = products["a", "a"] + products["b", "b"]

    def centred(x, y, biased: bool):
        cross = np.einsum("pi,pi->p", rows[x], rows[y])
        if biased:
            return products[x, y] - 2.0 / n * cross + totals[x] * totals[y] / n**2
        if n < 4:
            return np.full(len(cross), np.nan)
        return products[x, y] - 2.0 / (n - 2) * cross + totals[x] * totals[y] / ((n - 1) * (n - 2))

    out = {}
    for biased, suffix in ((True, ""), (False, "_bc")):
        var = {k: centred(k, k, biased) for k in mats}
        for name, (x, y) in (
            ("joint", ("j", "ab")),
            ("singles", ("a", "b")),
            ("first", ("a", "ab")),
            ("second", ("b", "ab")),
        ):
            out[name + suffix] = _dcor(centred(x, y, biased), var[x], var[y])
    return out


def _dcor(cov: np.ndarray, var_x: np.ndarray, var_y: np.ndarray) -> np.ndarray:
    """Distance correlation from the double-centred sums; 0 when either variable is constant."""
    denominator = np.sqrt(np.maximum(var_x, 0.0) * np.maximum(var_y, 0.0))
    positive = denominator > 0
    ratio = np.where(positive, cov / np.where(positive, denominator, 1.0), 0.0)
    return np.sqrt(np.clip(ratio, 0.0, None))


def _least_squares_residual(d_a: np.ndarray, d_b: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Residual sum of squares of ``y`` after projection on the span of ``d_a`` and ``d_b``."""
    aa = np.einsum("pn,pn->p", d_a, d_a)
    bb = np.einsum("pn,pn->p", d_b, d_b)
    ab = np.einsum("pn,pn->p", d_a, d_b)
    ay = np.einsum("pn,pn->p", d_a, y)
    by = np.einsum("pn,pn->p", d_b, y)
    yy = np.einsum("pn,pn->p", y, y)
    det = aa * bb - ab * ab
    regular = det > 1e-12 * np.maximum(aa * bb, 1e-300)
    safe = np.where(regular, det, 1.0)
    explained = np.where(
        regular,
        (bb * ay * ay - 2.0 * ab * ay * by + aa * by * by) / safe,
        # (near-)collinear singles: project on the larger one
        np.where(aa >= bb, ay**2 / np.maximum(aa, 1e-300), by**2 / np.maximum(bb, 1e-300)),
    )
    return np.maximum(yy - explained, 0.0)


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching rows; NaN where a row is constant (as numpy's corrcoef)."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.einsum("pn,pn->p", xc, yc) / np.sqrt(
            np.einsum("pn,pn->p", xc, xc) * np.einsum("pn,pn->p", yc, yc)
        )

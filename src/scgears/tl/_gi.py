"""Genetic-interaction scores of two-gene perturbations (Norman et al. 2019, GEARS).

The effect of a pair is regressed on the effects of its two singles across genes with a Theil-Sen
estimator without intercept; the scores and the five interaction subtypes follow GEARS'
``get_coeffs`` and the thresholds of the paper. The numerical work is batched over pairs in numpy
so that a whole gene panel (4,950 pairs) is scored in seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from anndata import AnnData

from .._anndata import get_conditions
from .._conditions import as_condition, condition_genes
from .._constants import CONDITION_KEY, CONTROL, GI_KEY
from .._profiles import is_profiles, measured_profiles

logger = logging.getLogger(__name__)

#: Thresholds of the paper (GEARS_misc ``fig_utils``) that call each subtype from a score.
GI_THRESHOLDS: dict[str, float] = {
    "synergy": 1.15,  # mag above
    "suppression": 1.0,  # mag below
    "neomorphism": 0.88,  # corr_fit below
    "redundancy": 0.85,  # dcor above
    "epistasis": 0.28,  # eq_contr below
    "additive": 0.25,  # |mag - 1| below
}

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
)
SUBTYPE_COLUMNS = ("synergy", "suppression", "neomorphism", "redundancy", "epistasis", "additive")

_EPS = np.finfo(np.float64).eps
#: Upper bound on the number of float64 values held per array while scoring a batch of pairs.
_BATCH_VALUES = 2_000_000


def genetic_interactions(
    data: AnnData,
    pairs: Sequence[str | Sequence[str]] | None = None,
    *,
    genes: Sequence[str] | np.ndarray | None = None,
    n_top_genes: int = 20,
    max_subpopulation: int = 10_000,
    random_state: int = 0,
    thresholds: Mapping[str, float] | None = None,
    layer: str | None = None,
    condition_key: str = CONDITION_KEY,
    key_added: str | None = GI_KEY,
) -> pd.DataFrame:
    """Score the genetic interaction of two-gene perturbations and call their subtypes.

    For a pair ``A+B``, the effects are the deltas from the control mean of the three profiles
    ``A``, ``B`` and ``A+B`` (``delta_A``, ``delta_B``, ``delta_AB``), one value per gene. Over a
    set of genes (see *Genes* below) the scores are GEARS' ``get_coeffs``:

    ``c1``, ``c2``
        Theil-Sen regression without intercept of ``delta_AB`` on ``[delta_A, delta_B]``
        (``c1`` belongs to the first gene of the canonical label, ``A``).
    ``mag``
        ``sqrt(c1**2 + c2**2)``: about 1.41 when the pair is the sum of its singles.
    ``dcor``
        Distance correlation of ``[delta_A, delta_B]`` (two columns) with ``delta_AB``.
    ``dcor_singles``, ``dcor_first``, ``dcor_second``
        Distance correlations of ``delta_A`` with ``delta_B``, ``delta_A`` with ``delta_AB``, and
        ``delta_B`` with ``delta_AB``.
    ``corr_fit``
        Pearson correlation of the Theil-Sen fit ``c1 delta_A + c2 delta_B`` with ``delta_AB``.
    ``dominance``
        ``|log10(c1 / c2)|`` (NaN when ``c1 / c2 <= 0``, as in GEARS).
    ``eq_contr``
        ``min(dcor_first, dcor_second) / max(dcor_first, dcor_second)``.

    Subtypes, with the paper's thresholds (``thresholds`` overrides them by name):
    ``synergy`` = ``mag > 1.15``, ``suppression`` = ``mag < 1.0``, ``neomorphism`` =
    ``corr_fit < 0.88``, ``redundancy`` = ``dcor > 0.85``, ``epistasis`` = ``eq_contr < 0.28``,
    and ``additive`` = ``|mag - 1| < 0.25``. They are independent calls, so a pair may carry several
    (``additive`` overlaps ``synergy`` and ``suppression`` by construction); a NaN score calls
    nothing. The thresholds were set on the paper's measured Norman pairs, whose fitted ``c1``,
    ``c2`` are shrunk by noise: a pair that is exactly the sum of its singles has ``mag = 1.41``
    and is called ``synergy``. Likewise the distance correlations are V-statistics, biased upward
    on few genes: on the ~40 genes of the default rule, a gene that contributes nothing to the
    pair still has ``dcor`` of about 0.3 with it, so epistatic pairs reach ``eq_contr`` of about
    0.35 rather than below 0.28 (in simulated screens they still have the lowest ``eq_contr`` of
    all pairs, which is what :func:`~scgears.tl.gi_precision` ranks). Rank by the scores, or
    pass ``thresholds``, rather than reading the calls as ground truth.

    Genes
        Theil-Sen estimates the slope from the exact fits of every pair of genes and returns their
        spatial median. Genes that none of the three perturbations changes sit at the origin and
        carry no information, yet they make up most pairs of genes in a typical panel and drag the
        median to zero: on the Norman subset (500 genes, most of them silent in K562) every pair
        gets ``mag = 0.0`` over all genes. So by default (``genes=None``) each pair is scored on
        its own informative genes: the union of the ``n_top_genes`` genes with the largest
        ``|delta|`` in each of ``A``, ``B`` and ``A+B``, leaving out genes whose three deltas are
        all exactly zero (between ``n_top_genes`` and ``3 * n_top_genes`` genes). The rule needs
        only the profiles, so measured and predicted pairs are scored the same way and can be
        compared (:func:`~scgears.tl.gi_precision`); it keeps the genes that respond to the pair,
        to either single, or only to the pair (what ``neomorphism`` looks for); and, like GEARS'
        top-20 DE genes, it does not depend on the size of the panel. Pass ``genes`` (names or a
        boolean mask over ``var``) to score every pair on one fixed set instead, e.g. the paper's
        highly expressed genes: ``genes=pred.var_names[pred.var["control_mean"] > 0.5]``.

    Theil-Sen, exactly
        The estimate is sklearn's ``TheilSenRegressor(fit_intercept=False, max_iter=1000)`` as GEARS
        calls it: the least-squares (minimum-norm, for singular systems) solution of every pair of
        genes, then the spatial median of those solutions by sklearn's modified Weiszfeld
        iteration, started at their mean and stopped when a step moves less than ``1e-3``. It is
        computed for many pairs at once in numpy. With ``n`` genes there are ``n (n - 1) / 2``
        pairs of genes; all are used when that is at most ``max_subpopulation`` (always, by
        default: 60 genes give 1,770 pairs), and the result then equals sklearn's to rounding.
        Above it, a random subset of ``max_subpopulation`` pairs of genes, drawn once with
        ``random_state`` and shared by all perturbation pairs, is used (GEARS' sklearn call draws
        up to 100,000 at random per fit; 10,000 keeps a 4,950-pair panel over a few hundred genes
        under a minute). The distance correlation is the V-statistic of the ``dcor`` package's
        ``distance_correlation``.

    Parameters
    ----------
    data
        Cells with registered conditions (profiles are computed with
        :func:`~scgears._profiles.measured_profiles` over all cells), or a profile AnnData: a
        prediction, a baseline, or the output of :func:`~scgears.tl.predict_combinations`.
    pairs
        Pairs to score, as labels (``"A+B"``) or gene lists. Default: every two-gene condition of
        ``data`` whose two singles are present.
    genes
        A fixed set of genes for all pairs (names, or a boolean mask over ``var``); default: each
        pair's informative genes (see *Genes*).
    n_top_genes
        Genes taken from each of ``A``, ``B`` and ``A+B`` by the default rule.
    max_subpopulation
        Most pairs of genes in one Theil-Sen fit (see *Theil-Sen, exactly*).
    random_state
        Seed of the subset of pairs of genes, used only above ``max_subpopulation``.
    thresholds
        Overrides of :data:`GI_THRESHOLDS`, by subtype name.
    layer
        Layer of ``data`` holding log-normalised expression (cells input only).
    condition_key
        Column of ``obs`` with the registered conditions (cells input only).
    key_added
        Key of ``data.uns`` where the table is written; ``None`` writes nothing.

    Returns
    -------
    A DataFrame indexed by the canonical pair label, with ``gene_a``, ``gene_b``, the scores above,
    ``n_fit_genes`` (genes used) and one boolean column per subtype. It is also written to
    ``data.uns[key_added]``.

    Examples
    --------
    >>> import numpy as np
    >>> import scgears as sg
    >>> from scgears._profiles import make_profiles
    >>> rng = np.random.default_rng(0)
    >>> d_a, d_b = rng.normal(size=50), rng.normal(size=50)
    >>> deltas = np.stack([d_a, d_b, 0.8 * d_a + 0.9 * d_b])
    >>> profiles = make_profiles(["A", "B", "A+B"], [f"g{i}" for i in range(50)],
    ...                          deltas + 1.0, np.ones(50), source="example")
    >>> gi = sg.tl.genetic_interactions(profiles)
    >>> print(round(gi.loc["A+B", "c1"], 2), round(gi.loc["A+B", "c2"], 2))
    0.8 0.9
    """
    thresholds = _check_thresholds(thresholds)
    if n_top_genes < 2:
        raise ValueError(f"n_top_genes must be at least 2, got {n_top_genes}.")
    if max_subpopulation < 1:
        raise ValueError(f"max_subpopulation must be positive, got {max_subpopulation}.")
    profiles = _gi_profiles(data, pairs, layer=layer, condition_key=condition_key)
    pair_labels = _resolve_pairs(profiles.obs_names, pairs)
    gene_mask = None if genes is None else _gene_mask(profiles.var_names, genes)

    delta = np.asarray(profiles.layers["delta"], dtype=np.float64)
    row = {label: i for i, label in enumerate(profiles.obs_names)}
    first = np.array([row[condition_genes(p)[0]] for p in pair_labels], dtype=np.int64)
    second = np.array([row[condition_genes(p)[1]] for p in pair_labels], dtype=np.int64)
    double = np.array([row[p] for p in pair_labels], dtype=np.int64)

    if gene_mask is None:
        gene_sets = _informative_genes(delta, first, second, double, n_top_genes)
    else:
        fixed = np.flatnonzero(gene_mask)
        gene_sets = [fixed] * len(pair_labels)
    scores = _score_pairs(delta, first, second, double, gene_sets, max_subpopulation, random_state)
    table = pd.DataFrame(scores, index=pd.Index(pair_labels, name="pair"))
    table.insert(0, "gene_b", [condition_genes(p)[1] for p in pair_labels])
    table.insert(0, "gene_a", [condition_genes(p)[0] for p in pair_labels])
    table = call_subtypes(table, thresholds)
    if key_added is not None:
        data.uns[key_added] = table
    logger.info("Scored %d pairs%s.", len(table), f" into uns[{key_added!r}]" if key_added else "")
    return table


def call_subtypes(
    table: pd.DataFrame, thresholds: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """Add the boolean subtype columns to a table of GI scores (see genetic_interactions)."""
    t = _check_thresholds(thresholds)
    table = table.copy()
    table["synergy"] = table["mag"] > t["synergy"]
    table["suppression"] = table["mag"] < t["suppression"]
    table["neomorphism"] = table["corr_fit"] < t["neomorphism"]
    table["redundancy"] = table["dcor"] > t["redundancy"]
    table["epistasis"] = table["eq_contr"] < t["epistasis"]
    table["additive"] = (table["mag"] - 1.0).abs() < t["additive"]
    return table


# --------------------------------------------------------------------------------------------
# Input checks


def _check_thresholds(thresholds: Mapping[str, float] | None) -> dict[str, float]:
    merged = dict(GI_THRESHOLDS)
    if thresholds:
        unknown = sorted(set(thresholds) - set(GI_THRESHOLDS))
        if unknown:
            raise ValueError(
                f"Unknown subtypes in thresholds: {unknown}; known: {sorted(GI_THRESHOLDS)}."
            )
        merged.update({k: float(v) for k, v in thresholds.items()})
    return merged


def _gi_profiles(data, pairs, *, layer, condition_key) -> AnnData:
    """Profiles of the conditions the scores need (computed from cells when given cells)."""
    if not isinstance(data, AnnData):
        raise TypeError(f"data must be an AnnData (cells or profiles), got {type(data).__name__}.")
    if is_profiles(data):
        return data

    labels = get_conditions(data, condition_key)
    counts = pd.Series(np.asarray(labels)).value_counts()
    present = [c for c in counts.index if counts[c] > 0]
    if pairs is None:
        wanted = [c for c in present if c != CONTROL]
    else:
        wanted = sorted(
            {g for p in pairs for g in condition_genes(as_condition(p))}
            | {as_condition(p) for p in pairs}
        )
        wanted = [c for c in wanted if c in counts.index and counts[c] > 0]
    return measured_profiles(data, wanted, layer=layer, condition_key=condition_key)


def _resolve_pairs(available: pd.Index, pairs) -> list[str]:
    available = set(available)
    if pairs is None:
        found = sorted(
            c
            for c in available
            if len(condition_genes(c)) == 2 and all(g in available for g in condition_genes(c))
        )
        if not found:
            raise ValueError(
                "No two-gene condition with both singles present: nothing to score. Pass pairs= "
                "or profiles that hold the singles (sg.tl.predict_combinations(..., "
                "include_singles=True))."
            )
        return found
    labels = [as_condition(p) for p in pairs]
    not_pairs = [p for p in labels if len(condition_genes(p)) != 2]
    if not_pairs:
        raise ValueError(f"Pairs must have exactly two genes; got {not_pairs[:10]}.")
    missing = sorted(
        {p for p in labels if p not in available}
        | {g for p in labels for g in condition_genes(p) if g not in available}
    )
    if missing:
        raise ValueError(
            f"Conditions needed to score the pairs are missing from the data: {missing[:10]}"
            + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
            + ". Each pair A+B needs the profiles of A, B and A+B."
        )
    return list(dict.fromkeys(labels))


def _gene_mask(var_names: pd.Index, genes) -> np.ndarray:
    genes = np.asarray(genes)
    if genes.dtype == bool:
        if genes.shape != (len(var_names),):
            raise ValueError(
                f"A boolean genes mask must have one value per gene ({len(var_names)}), "
                f"got shape {genes.shape}."
            )
        mask = genes.copy()
    else:
        genes = genes.astype(str)
        unknown = [g for g in genes if g not in var_names]
        if unknown:
            raise ValueError(f"genes not found in var_names: {unknown[:10]}.")
        mask = np.asarray(var_names.isin(genes))
    if mask.sum() < 3:
        raise ValueError(f"genes selects {int(mask.sum())} genes; the fit needs at least 3.")
    return mask


# --------------------------------------------------------------------------------------------
# Gene selection and batched scores


def _informative_genes(delta, first, second, double, n_top: int) -> list[np.ndarray]:
    """Per pair, the union of the top-``n_top`` |delta| genes of A, B and A+B (non-zero only)."""
    conditions = np.unique(np.concatenate([first, second, double]))
    n_top = min(n_top, delta.shape[1])
    top = {}
    for c in conditions:
        magnitude = np.abs(delta[c])
        order = np.argsort(-magnitude, kind="stable")[:n_top]
        top[c] = order[magnitude[order] > 0]
    return [
        np.union1d(np.union1d(top[a], top[b]), top[ab])
        for a, b, ab in zip(first, second, double, strict=True)
    ]


def _score_pairs(delta, first, second, double, gene_sets, max_subpopulation, random_state):
    """Scores of every pair, batched over pairs that share the number of genes."""
    n_pairs = len(gene_sets)
    out = {name: np.full(n_pairs, np.nan) for name in SCORE_COLUMNS}
    out["n_fit_genes"] = np.array([len(g) for g in gene_sets], dtype=np.int64)
    sizes = out["n_fit_genes"]
    rng = np.random.default_rng(random_state)
    too_few = np.flatnonzero(sizes < 3)
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


def _scores(d_a: np.ndarray, d_b: np.ndarray, d_ab: np.ndarray, combos: np.ndarray) -> dict:
    """GEARS' get_coeffs for a batch of pairs; inputs are (pairs, genes)."""
    c1, c2 = theil_sen(np.stack([d_a, d_b], axis=-1), d_ab, combos).T
    fit = c1[:, None] * d_a + c2[:, None] * d_b
    dcor = _distance_correlations(d_a, d_b, d_ab)
    with np.errstate(divide="ignore", invalid="ignore"):
        dominance = np.abs(np.log10(c1 / c2))
        eq_contr = np.minimum(dcor["first"], dcor["second"]) / np.maximum(
            dcor["first"], dcor["second"]
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
    }


# --------------------------------------------------------------------------------------------
# Theil-Sen and distance correlation for many problems at once


def theil_sen(
    x: np.ndarray,
    y: np.ndarray,
    combos: np.ndarray | None = None,
    *,
    max_iter: int = THEIL_SEN_MAX_ITER,
    tol: float = THEIL_SEN_TOL,
) -> np.ndarray:
    """Theil-Sen slopes without intercept on two features, for a batch of regressions.

    ``x`` is (problems, samples, 2) and ``y`` (problems, samples); ``combos`` (pairs of samples,
    2) defaults to all pairs of samples. Each problem's estimate is the spatial median of the
    exact solutions on the pairs of samples, as sklearn's ``TheilSenRegressor(fit_intercept=False,
    max_iter=max_iter, tol=tol)`` computes it when it uses all pairs. Returns (problems, 2).
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
    return _spatial_median(first, second, max_iter=max_iter, tol=tol)


def _pair_solutions(xa, xb, y, combos) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares solutions of the 2x2 system of every pair of samples, (problems, pairs) each.

    A pair whose matrix is singular to machine precision gets the minimum-norm solution (what
    LAPACK's ``gelss`` with ``rcond=-1`` returns in sklearn), an all-zero matrix gets zero.
    """
    i, j = combos[:, 0], combos[:, 1]
    a1, a2, y_i = xa[:, i], xb[:, i], y[:, i]
    b1, b2, y_j = xa[:, j], xb[:, j], y[:, j]
    det = a1 * b2 - a2 * b1
    frob = a1**2 + a2**2 + b1**2 + b2**2
    # singular values s1 >= s2 with s1 * s2 = |det| and s1**2 <= frob: s2 / s1 below machine
    # precision (gelss' rank cut-off) is |det| <= eps * s1**2, up to a factor 2 at the edge
    singular = np.abs(det) <= _EPS * frob
    any_singular = bool(singular.any())
    if any_singular:
        det[singular] = 1.0
    c1 = (y_i * b2 - a2 * y_j) / det
    c2 = (a1 * y_j - b1 * y_i) / det
    if any_singular:
        # rank one: the pseudo-inverse is M^T / ||M||_F^2; rank zero: the solution is 0
        f = frob[singular]
        scale = np.where(f > 0, 1.0 / np.where(f > 0, f, 1.0), 0.0)
        c1[singular] = (a1[singular] * y_i[singular] + b1[singular] * y_j[singular]) * scale
        c2[singular] = (a2[singular] * y_i[singular] + b2[singular] * y_j[singular]) * scale
    return c1, c2


def _spatial_median(px: np.ndarray, py: np.ndarray, *, max_iter: int, tol: float) -> np.ndarray:
    """Spatial median of each problem's 2-d points (coordinates ``px``, ``py``: problems x n).

    sklearn's modified Weiszfeld iteration: each problem starts at the mean of its points and
    stops after its own first step shorter than ``tol``, so the result is what sklearn's
    ``_spatial_median`` returns for that problem alone. Returns (problems, 2).
    """
    result = np.stack([px.mean(axis=1), py.mean(axis=1)], axis=1)
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

    V-statistics, as the ``dcor`` package. With ``D`` the distance matrices, ``r`` their row sums
    and ``R`` their totals, the double-centred product is
    ``sum(D_x * D_y) - 2 / n * sum(r_x * r_y) + R_x * R_y / n**2``, so no centred matrix is formed;
    the joint distance of ``[delta_A, delta_B]`` is ``hypot(D_A, D_B)``.
    """
    n = d_a.shape[1]
    dist_a = np.abs(d_a[:, :, None] - d_a[:, None, :])
    dist_b = np.abs(d_b[:, :, None] - d_b[:, None, :])
    dist_ab = np.abs(d_ab[:, :, None] - d_ab[:, None, :])
    joint = np.hypot(dist_a, dist_b)
    rows = {
        k: m.sum(axis=2) for k, m in (("a", dist_a), ("b", dist_b), ("ab", dist_ab), ("j", joint))
    }

    def dcov(x, rx, y, ry):
        return (
            np.einsum("pij,pij->p", x, y)
            - 2.0 / n * np.einsum("pi,pi->p", rx, ry)
            + rx.sum(axis=1) * ry.sum(axis=1) / n**2
        )

    var_a = dcov(dist_a, rows["a"], dist_a, rows["a"])
    var_b = dcov(dist_b, rows["b"], dist_b, rows["b"])
    var_ab = dcov(dist_ab, rows["ab"], dist_ab, rows["ab"])
    # sum(joint**2) = sum(dist_a**2) + sum(dist_b**2): saves one pass over the joint matrix
    var_j = (
        np.einsum("pij,pij->p", dist_a, dist_a)
        + np.einsum("pij,pij->p", dist_b, dist_b)
        - 2.0 / n * np.einsum("pi,pi->p", rows["j"], rows["j"])
        + rows["j"].sum(axis=1) ** 2 / n**2
    )
    return {
        "joint": _dcor(dcov(joint, rows["j"], dist_ab, rows["ab"]), var_j, var_ab),
        "singles": _dcor(dcov(dist_a, rows["a"], dist_b, rows["b"]), var_a, var_b),
        "first": _dcor(dcov(dist_a, rows["a"], dist_ab, rows["ab"]), var_a, var_ab),
        "second": _dcor(dcov(dist_b, rows["b"], dist_ab, rows["ab"]), var_b, var_ab),
    }


def _dcor(cov: np.ndarray, var_x: np.ndarray, var_y: np.ndarray) -> np.ndarray:
    """Distance correlation from the double-centred sums; 0 when either variable is constant."""
    denominator = np.sqrt(np.maximum(var_x, 0.0) * np.maximum(var_y, 0.0))
    positive = denominator > 0
    ratio = np.where(positive, cov / np.where(positive, denominator, 1.0), 0.0)
    return np.sqrt(np.clip(ratio, 0.0, None))


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching rows; NaN where a row is constant (as numpy's corrcoef)."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.einsum("pn,pn->p", xc, yc) / np.sqrt(
            np.einsum("pn,pn->p", xc, xc) * np.einsum("pn,pn->p", yc, yc)
        )

"""Genetic-interaction scores of two-gene perturbations (Norman et al. 2019, GEARS).

The effect of a pair is regressed on the effects of its two singles across genes with a Theil-Sen
estimator without intercept; the scores and the five interaction subtypes follow GEARS'
``get_coeffs`` and the thresholds of the paper. The numerical work is batched over pairs in numpy
so that a whole gene panel (4,950 pairs) is scored in seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from ..._anndata import get_conditions
from ..._conditions import as_condition, condition_genes
from ..._constants import CONDITION_KEY, CONTROL, GI_KEY
from ..._profiles import is_profiles, measured_profiles
from ._statistics import _informative_genes, _score_pairs

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


SUBTYPE_COLUMNS = ("synergy", "suppression", "neomorphism", "redundancy", "epistasis", "additive")


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

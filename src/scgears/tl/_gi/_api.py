"""Genetic interactions of two-gene perturbations: GEARS' scores, one calibrated call per pair.

The effect of a pair is regressed on the effects of its two singles across genes with a Theil-Sen
estimator without intercept; the scores follow GEARS' ``get_coeffs``. Each pair then gets one
subtype, decided against its own additive null, with a bootstrap confidence (``_calls``), and
optionally its non-additive genes (``_genes``). The numerical work is batched over pairs in numpy.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from ..._anndata import get_conditions
from ..._conditions import as_condition, condition_genes
from ..._constants import CONDITION_KEY, CONTROL, GI_KEY, PROFILE_KEY
from ..._gi_rules import GI_THRESHOLDS, SUBTYPE_RULES, paper_call
from ..._matrix import expression_matrix, group_stats
from ..._profiles import is_profiles, measured_profiles
from ._bootstrap import FIRST_STAGE, cell_replicates, replicate_scores, uncertainty_replicates
from ._calls import call_cross_fitted, call_pairs
from ._genes import nonadditive_table
from ._moments import cross_fitted_features
from ._statistics import _informative_genes, _score_pairs

logger = logging.getLogger(__name__)

#: Scores that get bootstrap percentile intervals (``{score}_low``, ``{score}_high``).
INTERVAL_SCORES = ("c1", "c2", "mag", "corr_fit", "dcor", "eq_contr", "dominance")
#: Coverage of the percentile intervals.
INTERVAL_LEVEL = 0.95
SUBTYPE_COLUMNS = tuple(f"paper_{name}" for name in SUBTYPE_RULES)


def genetic_interactions(
    data: AnnData,
    pairs: Sequence[str | Sequence[str]] | None = None,
    *,
    genes: Sequence[str] | np.ndarray | None = None,
    n_top_genes: int = 20,
    n_bootstrap: int = 200,
    seed: int = 0,
    return_genes: bool = False,
    max_subpopulation: int = 10_000,
    thresholds: Mapping[str, float] | None = None,
    layer: str | None = None,
    condition_key: str = CONDITION_KEY,
    key_added: str | None = GI_KEY,
    progress_bar: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, AnnData]:
    """Score the genetic interaction of two-gene perturbations and call one subtype per pair.

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
    ``dcor_bc``, ``dcor_singles_bc``, ``eq_contr_bc``
        The same with the bias-corrected distance correlation (the ``dcor`` package's
        ``u_distance_correlation_sqr``, square root of the estimate clipped at 0). GEARS'
        V-statistic is biased upward on few genes: two unrelated effects over ~40 genes have
        ``dcor`` of about 0.3-0.4, the bias-corrected one about 0.

    One subtype per pair
        ``subtype`` (categorical) is exactly one of ``additive``, ``synergy``, ``suppression``,
        ``neomorphism``, ``redundancy``, ``epistasis``, decided by comparing the pair with its own
        *additive null*: the same pair with its non-additive part removed (``delta_AB`` replaced
        by ``delta_A + delta_B``, plus the same replicate's noise of ``A+B`` and control),
        re-scored on every replicate. A subtype is called when the pair differs from its null
        significantly (the scale more than 3 null standard deviations from 1, new variance
        beyond one-sided 95%) *and* by a minimum effect size (the double's scale a factor 1.1
        above or 1.2 below the sum of its singles, 7.5% of its variance new, the masked gene
        under half the dominant one's share); otherwise ``additive``. With
        at least 20 pairs called additive, the scale is judged against the screen's typical
        additive pair (their median ``scale``, bounded to 0.8-1.2, column ``additive_scale``;
        1 otherwise), so a pair's call then depends on the screen it is scored with. The rules,
        in order of precedence, and their reasons are in the docs (*Metrics*, genetic
        interactions); the numbers live in ``scgears._gi_rules``. From cells (the default gene
        rule, at least 6 cells per condition) the features are cross-fitted and noise-corrected
        instead: each condition's cells are split in two halves, the genes are chosen on one and
        the moments taken on the other, and each half's variance of its mean is subtracted, so
        an additive pair has ``scale`` 1 and ``new_variance`` 0 however noisy its singles; their
        significance is judged against the bootstrap's spread of the same procedure. A pair both
        scaled and with a residual is neomorphism only when the residual is 8 times its departure
        along the singles' sum (else synergy or suppression). ``confidence`` is the share of
        the replicates that give the same call. ``scale`` (1 = additive against the pair's own
        null), ``scale_z`` (against ``additive_scale``), ``new_variance`` and ``masked_ratio``
        are the features behind the call.
    Replicates
        From cells: a seeded bootstrap that resamples the cells within the control, ``A``, ``B``
        and ``A+B``, ``n_bootstrap`` times. From profiles with ``layers["uncertainty"]`` (a
        model's per-gene s.d. of its prediction, e.g. an ensemble's spread): ``n_bootstrap``
        normal draws around each prediction, made per pair. From profiles without it there is
        no noise model: the calls use the effect sizes alone and ``confidence`` and the
        intervals are NaN, as no uncertainty is known. With a prediction's replicates, every pair
        is scored on its first 50; a pair whose 50 replicates all give its call stops there
        (confidence 1, intervals from 50 replicates), the others get all ``n_bootstrap``; from
        cells every pair gets all ``n_bootstrap``.
        ``{score}_low`` and ``{score}_high`` are percentile intervals
        (95%) of ``c1``, ``c2``, ``mag``, ``corr_fit``, ``dcor``, ``eq_contr`` and ``dominance``.
    Paper calls
        The paper's threshold calls stay available as boolean columns ``paper_synergy``
        (``mag > 1.15``), ``paper_suppression`` (``mag < 1.0``), ``paper_neomorphism``
        (``corr_fit < 0.88``), ``paper_redundancy`` (``dcor > 0.85``), ``paper_epistasis``
        (``eq_contr < 0.28``) and ``paper_additive`` (``|mag - 1| < 0.25``), to compare with
        GEARS. They overlap and are not calibrated: an exactly additive pair has ``mag = 1.41``
        and is called synergy.
    Missing values
        A pair whose profiles hold NaN on its genes gets NaN scores and no call (``subtype``
        missing), with a warning naming the conditions.
    Genes
        Theil-Sen's median of pairwise solutions is dragged to zero by genes that no
        perturbation changes (on the Norman subset every pair gets ``mag = 0.0`` over all
        genes). So by default (``genes=None``) each pair is scored on its informative genes: the
        union of the ``n_top_genes`` genes with the largest ``|delta|`` in each of ``A``, ``B``
        and ``A+B``, leaving out genes whose three deltas are all zero. The rule needs only the
        profiles, so measured and predicted pairs are scored alike. Pass ``genes`` (names or a
        boolean mask over ``var``) to score every pair on one fixed set instead.
    Theil-Sen, exactly
        sklearn's ``TheilSenRegressor(fit_intercept=False, max_iter=1000)`` as GEARS calls it,
        batched in numpy: all ``n (n - 1) / 2`` pairs of genes when that is at most
        ``max_subpopulation`` (always, by default), else a random subset of that many, drawn
        with ``seed``.

    Parameters
    ----------
    data
        Cells with registered conditions, or a profile AnnData: a prediction, a baseline, or the
        output of :func:`~scgears.tl.predict_combinations`.
    pairs
        Pairs to score, as labels (``"A+B"``) or gene lists. Default: every two-gene condition of
        ``data`` whose two singles are present.
    genes
        A fixed set of genes for all pairs (names, or a boolean mask over ``var``); default: each
        pair's informative genes (see *Genes*).
    n_top_genes
        Genes taken from each of ``A``, ``B`` and ``A+B`` by the default rule.
    n_bootstrap
        Replicates of the bootstrap (cells) or of the uncertainty draws (predictions); 0 skips
        them (calls from effect sizes alone, ``confidence`` NaN).
    seed
        Seed of the replicates and of the Theil-Sen subset: same seed, same numbers.
    return_genes
        Also return the pairs x genes AnnData of non-additivity (see Returns).
    max_subpopulation
        Most pairs of genes in one Theil-Sen fit (see *Theil-Sen, exactly*).
    thresholds
        Overrides of the paper's thresholds (:data:`GI_THRESHOLDS`) for the ``paper_*`` columns.
    layer
        Layer of ``data`` holding log-normalised expression (cells input only).
    condition_key
        Column of ``obs`` with the registered conditions (cells input only).
    key_added
        Key of ``data.uns`` where the table is written; ``None`` writes nothing.
    progress_bar
        Show a progress bar over the pairs' replicates.

    Returns
    -------
    A DataFrame indexed by the canonical pair label: ``gene_a``, ``gene_b``, the scores,
    ``n_fit_genes``, ``subtype``, ``confidence``, the call's features, the intervals, the
    ``paper_*`` columns, ``source`` (``"measured"`` or the prediction's source) and
    ``noise_model`` (``"cell bootstrap"``, ``"model uncertainty"`` or ``"none"``). It is also
    written to ``data.uns[key_added]``.

    With ``return_genes=True``, ``(table, genes)``: ``genes`` is an AnnData of pairs x genes
    with the table in ``obs`` and layers ``nonadditive`` (observed minus additive expected
    change, ``delta_AB - delta_A - delta_B``), ``expected``, ``observed``, ``nonadditive_se``
    (its bootstrap standard error), ``nonadditive_z`` and ``nonadditive_fdr`` (false discovery
    rate across the pair's genes against an empirical null; NaN without a noise model).

    Examples
    --------
    >>> import numpy as np
    >>> import scgears as sg
    >>> from scgears._profiles import make_profiles
    >>> rng = np.random.default_rng(0)
    >>> d_a, d_b = rng.normal(size=50), rng.normal(size=50)
    >>> deltas = np.stack([d_a, d_b, 0.5 * d_a + 0.5 * d_b])
    >>> profiles = make_profiles(["A", "B", "A+B"], [f"g{i}" for i in range(50)],
    ...                          deltas + 1.0, np.ones(50), source="example")
    >>> gi = sg.tl.genetic_interactions(profiles)
    >>> print(round(gi.loc["A+B", "c1"], 2), round(gi.loc["A+B", "c2"], 2))
    0.5 0.5
    >>> print(gi.loc["A+B", "subtype"], gi.loc["A+B", "confidence"])  # no noise model
    suppression nan

    From cells, with the bootstrap and the non-additive genes:

    >>> adata = sg.datasets.simulate_screen(n_genes=300, n_cells_per_condition=30, seed=0)
    >>> sg.pp.register_perturbations(adata, "perturbation_name")
    >>> gi, per_gene = sg.tl.genetic_interactions(adata, n_bootstrap=50, return_genes=True)
    >>> per_gene.layers["nonadditive_fdr"].shape == (len(gi), adata.n_vars)
    True
    """
    thresholds = _check_thresholds(thresholds)
    if n_top_genes < 2:
        raise ValueError(f"n_top_genes must be at least 2, got {n_top_genes}.")
    if max_subpopulation < 1:
        raise ValueError(f"max_subpopulation must be positive, got {max_subpopulation}.")
    if not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 0:
        raise ValueError(
            f"n_bootstrap must be a non-negative integer, got {n_bootstrap!r}; use 0 to skip the "
            "bootstrap (confidence NaN)."
        )
    if n_bootstrap == 1:
        raise ValueError("n_bootstrap=1 gives no spread: use 0 (no bootstrap) or at least 2.")
    profiles = _gi_profiles(data, pairs, layer=layer, condition_key=condition_key)
    from_cells = profiles is not data
    pair_labels = _resolve_pairs(profiles.obs_names, pairs)
    gene_mask = None if genes is None else _gene_mask(profiles.var_names, genes)

    delta = np.asarray(profiles.layers["delta"], dtype=np.float64)
    row = {label: i for i, label in enumerate(profiles.obs_names)}
    first = np.array([row[condition_genes(p)[0]] for p in pair_labels], dtype=np.int64)
    second = np.array([row[condition_genes(p)[1]] for p in pair_labels], dtype=np.int64)
    double = np.array([row[p] for p in pair_labels], dtype=np.int64)

    if gene_mask is None:
        # the pair's own genes change by the perturbation itself (additive by construction and
        # the largest deltas): as fit points they pin c1 and c2 near 1 whatever the interaction
        position = {g: i for i, g in enumerate(profiles.var_names)}
        own = [
            np.array([position[g] for g in condition_genes(p) if g in position], dtype=np.int64)
            for p in pair_labels
        ]
        gene_sets = _informative_genes(delta, first, second, double, n_top_genes, own)
    else:
        fixed = np.flatnonzero(gene_mask)
        gene_sets = [fixed] * len(pair_labels)
    invalid = _pairs_with_missing_values(delta, first, second, double, gene_sets)
    if invalid.any():
        bad = sorted(
            {profiles.obs_names[i] for r in (first, second, double) for i in r[invalid]}
            - {
                profiles.obs_names[i]
                for r in (first, second, double)
                for i in r
                if np.isfinite(delta[i]).all()
            }
        )
        warnings.warn(
            f"{int(invalid.sum())} pairs have NaN or infinite values in their profiles (conditions "
            f"{bad[:10]}{' ...' if len(bad) > 10 else ''}): they get NaN scores and no subtype.",
            UserWarning,
            stacklevel=2,
        )
        gene_sets = [
            np.array([], dtype=np.int64) if bad_pair else s
            for s, bad_pair in zip(gene_sets, invalid, strict=True)
        ]
    scores = _score_pairs(delta, first, second, double, gene_sets, max_subpopulation, seed)
    scores["n_fit_genes"][invalid] = 0

    cross = None
    if from_cells and gene_mask is None and n_bootstrap >= 2:
        # from cells the calls rest on cross-fitted, noise-corrected features (see _moments)
        cross = cross_fitted_features(
            data,
            [(*condition_genes(p), p) for p in pair_labels],
            own,
            (scores["n_fit_genes"] >= 3) & ~invalid,
            n_top=n_top_genes,
            n_bootstrap=n_bootstrap,
            seed=seed,
            layer=layer,
            condition_key=condition_key,
        )
    noise_model, observed, null = _replicates(
        data,
        profiles,
        from_cells,
        pair_labels,
        gene_sets,
        n_bootstrap=n_bootstrap,
        seed=seed,
        layer=layer,
        condition_key=condition_key,
        max_subpopulation=max_subpopulation,
        point=scores,
        progress_bar=progress_bar,
        staged=cross is None,
    )
    if cross is not None:
        subtype, confidence, summary = call_cross_fitted(*cross, scores["dcor_singles_bc"])
    else:
        subtype, confidence, summary = call_pairs(scores, observed, null)

    table = pd.DataFrame(scores, index=pd.Index(pair_labels, name="pair"))
    table.insert(0, "gene_b", [condition_genes(p)[1] for p in pair_labels])
    table.insert(0, "gene_a", [condition_genes(p)[0] for p in pair_labels])
    table["subtype"] = subtype
    table["confidence"] = confidence
    for name, values in summary.items():
        table[name] = values
    low_q, high_q = 50.0 * (1.0 - INTERVAL_LEVEL), 50.0 * (1.0 + INTERVAL_LEVEL)
    for name in INTERVAL_SCORES:
        if observed is None or name not in observed:
            table[f"{name}_low"] = np.nan
            table[f"{name}_high"] = np.nan
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows (invalid pairs)
            low, high = np.nanpercentile(observed[name], [low_q, high_q], axis=1)
        table[f"{name}_low"] = low
        table[f"{name}_high"] = high
    table = call_subtypes(table, thresholds)
    table["source"] = str(profiles.uns.get(PROFILE_KEY, {}).get("source", "unknown"))
    table["noise_model"] = noise_model
    if key_added is not None:
        data.uns[key_added] = table
    logger.info("Scored %d pairs%s.", len(table), f" into uns[{key_added!r}]" if key_added else "")
    if not return_genes:
        return table
    variance, control_variance = _mean_variances(
        data, profiles, from_cells, layer=layer, condition_key=condition_key
    )
    per_gene = nonadditive_table(
        delta,
        variance,
        (first, second, double),
        control_variance,
        pair_labels=pair_labels,
        var_names=profiles.var_names,
        obs=table,
    )
    return table, per_gene


def call_subtypes(
    table: pd.DataFrame, thresholds: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """Add the paper's boolean threshold calls (``paper_*`` columns) to a table of GI scores."""
    t = _check_thresholds(thresholds)
    table = table.copy()
    for name, rule in SUBTYPE_RULES.items():
        table[f"paper_{name}"] = paper_call(table[rule.score], rule.paper_rule, t[name])
    return table


def _pairs_with_missing_values(delta, first, second, double, gene_sets) -> np.ndarray:
    """Pairs whose three profiles are not finite on their genes (or are entirely non-finite)."""
    finite_rows = np.isfinite(delta).any(axis=1)
    invalid = ~(finite_rows[first] & finite_rows[second] & finite_rows[double])
    for i, genes in enumerate(gene_sets):
        if not invalid[i] and len(genes):
            block = delta[[first[i], second[i], double[i]]][:, genes]
            invalid[i] = not np.isfinite(block).all()
    return invalid


def _replicates(
    data,
    profiles,
    from_cells,
    pair_labels,
    gene_sets,
    *,
    n_bootstrap,
    seed,
    layer,
    condition_key,
    max_subpopulation,
    point,
    progress_bar,
    staged=True,
):
    """Replicate scores (observed, null) from the cells or the prediction's uncertainty.

    ``staged``: stop early the pairs whose first replicates agree (see ``_sequential_scores``);
    without it every pair gets all replicates (the intervals when the calls come from elsewhere).
    """
    has_uncertainty = "uncertainty" in profiles.layers
    if n_bootstrap == 0 or not (from_cells or has_uncertainty):
        return "none", None, None
    usable = [i for i, s in enumerate(gene_sets) if len(s) >= 3]
    if not usable:
        return "none", None, None
    genes = np.unique(np.concatenate([gene_sets[i] for i in usable]))
    triples = [(*condition_genes(p), p) for p in pair_labels]
    conditions = sorted({c for i in usable for c in triples[i]})
    if from_cells:
        reps = cell_replicates(
            data,
            conditions,
            genes,
            n_bootstrap=n_bootstrap,
            seed=seed,
            layer=layer,
            condition_key=condition_key,
        )
        noise_model = "cell bootstrap"
    else:
        reps = uncertainty_replicates(
            profiles, conditions, genes, n_bootstrap=n_bootstrap, seed=seed
        )
        noise_model = "model uncertainty"
    sets = [
        gene_sets[i] if len(gene_sets[i]) >= 3 else np.array([], int)
        for i in range(len(pair_labels))
    ]
    if staged:
        observed, null = _sequential_scores(
            reps,
            triples,
            sets,
            point,
            max_subpopulation=max_subpopulation,
            random_state=seed,
            progress_bar=progress_bar,
        )
    else:
        observed, null = replicate_scores(
            reps,
            triples,
            sets,
            start=np.stack([point["c1"], point["c2"]], axis=1),
            max_subpopulation=max_subpopulation,
            random_state=seed,
            progress_bar=progress_bar,
            with_null=False,
        )
    if not observed:
        return "none", None, None
    return noise_model, observed, null


def _sequential_scores(
    reps, triples, sets, point, *, max_subpopulation, random_state, progress_bar
):
    """Replicate scores in two stages: every pair on the first replicates, then the undecided.

    A pair whose first :data:`FIRST_STAGE` replicates all give its call stops there (its
    confidence is 1; a pair whose true agreement is 0.9 passes this with probability
    ``0.9 ** 50 < 0.01``); the others get all ``n_bootstrap``. The columns a stopped pair did not
    score are NaN, which every reader of the replicates skips.
    """
    start = np.stack([point["c1"], point["c2"]], axis=1)
    first = min(reps.n_bootstrap, FIRST_STAGE)
    kwargs = {"max_subpopulation": max_subpopulation, "random_state": random_state}
    observed, null = replicate_scores(
        reps, triples, sets, start=start, rows=slice(0, first), progress_bar=progress_bar, **kwargs
    )
    if first == reps.n_bootstrap or not observed:
        return observed, null
    _, confidence, _ = call_pairs(point, observed, null)
    rest = np.flatnonzero((confidence < 1.0) & np.array([len(s) >= 3 for s in sets]))
    logger.info("%d of %d pairs undecided after %d replicates.", len(rest), len(sets), first)
    more = ({}, {})
    if len(rest):
        more = replicate_scores(
            reps,
            [triples[i] for i in rest],
            [sets[i] for i in rest],
            start=start[rest],
            rows=slice(first, None),
            progress_bar=progress_bar,
            **kwargs,
        )
    for stage_one, stage_two in zip((observed, null), more, strict=True):
        for name, values in stage_one.items():
            full = np.full((len(sets), reps.n_bootstrap), np.nan)
            full[:, :first] = values
            if name in stage_two:
                full[rest, first:] = stage_two[name]
            stage_one[name] = full
    return observed, null


def _mean_variances(data, profiles, from_cells, *, layer, condition_key):
    """Variance of each profile row's mean and of the control mean (None without noise model)."""
    if from_cells:
        labels = get_conditions(data, condition_key)
        stats = group_stats(
            expression_matrix(data, layer), np.asarray(labels.codes), pd.Index(labels.categories)
        )
        var = stats.variances(ddof=0) / np.maximum(stats.n_cells, 1)[:, None]
        rows = np.array([stats.loc(c) for c in profiles.obs_names], dtype=np.int64)
        return var[rows], var[stats.loc(CONTROL)]
    if "uncertainty" in profiles.layers:
        return np.asarray(profiles.layers["uncertainty"], dtype=np.float64) ** 2, None
    return None, None


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

"""The public entry point: assemble the screen and its truth (see the package docstring)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from anndata import AnnData

from ..._conditions import condition_label
from ..._constants import CONTROL, CONTROL_LABEL
from .._loaders import log_normalise
from ._counts import _assign_cells, _expected_log_normalised, _sample_counts
from ._dynamics import N_EFFICIENCY_LEVELS, _efficiency_levels, _log_fold_rows
from ._genes import CLUSTER_SIZES, _go_universe, _pick_measured_genes, _pick_perturbed_genes
from ._interactions import GI_SUBTYPES, SUPPRESSION_FACTOR, SYNERGY_FACTOR, _plant_interactions
from ._network import _build_network, _n_mediators
from ._truth import _edge_table, _gene_table

logger = logging.getLogger(__name__)

#: Screen types and the label of control cells in ``obs["perturbation_name"]`` (pertpy's).
PERTURBATION_TYPES = ("CRISPRa", "CRISPRi")


def simulate_screen(
    *,
    n_genes: int = 1000,
    n_perturbed_genes: int = 40,
    n_doubles: int = 60,
    n_triples: int = 0,
    n_cells_per_condition: int = 50,
    n_control_cells: int | None = None,
    perturbation_type: str = "CRISPRa",
    n_interactions_per_subtype: int | None = None,
    library_size: float | None = None,
    effect_size: float = 1.0,
    go_consistency: float = 0.8,
    synergy_factor: tuple[float, float] = SYNERGY_FACTOR,
    suppression_factor: tuple[float, float] = SUPPRESSION_FACTOR,
    seed: int = 0,
) -> AnnData:
    """Simulate a CRISPR screen (singles, doubles, triples) from a GO-consistent regulatory network.

    The screen looks like pertpy's preprocessed ``norman_2019``: ``X`` holds log1p of
    ``normalize_total``-normalised counts (median target sum, CSR, float32), ``layers["counts"]``
    the raw negative-binomial counts (CSR, float32), ``obs["perturbation_name"]`` the perturbation
    in pertpy's convention (``"control"``, ``"CBL"``, ``"CBL+CNN1"``; genes sorted), and
    ``var_names`` real human gene symbols, every one annotated in the GO table that scgears ships,
    so that :func:`scgears.pp.perturbation_graph` connects the perturbed genes. Each perturbed gene
    is also measured. Register it with
    ``sg.pp.register_perturbations(adata, "perturbation_name", control="control")``.

    The truth is a two-layer regulatory network whose programmes follow GO terms, so that genes
    sharing GO terms regulate overlapping targets with similar signs; responses saturate, CRISPRa
    raises and CRISPRi lowers the perturbed gene itself and, through the network, its targets.
    Cells vary in library size, perturbation efficiency and cell state; counts are negative
    binomial. Genetic interactions of the five subtypes of Norman et al. (2019) are planted in
    some doubles; the remaining doubles are additive. The docstring of the module
    ``scgears.datasets._simulate`` describes the model step by step.

    Genetic interactions
        A double's effect ``delta_AB`` (its mean minus the control mean, per gene) is regressed on
        the single effects without intercept, ``delta_AB ~ c1 delta_A + c2 delta_B``. An additive
        pair has ``c1 ~ c2 ~ 1``, so ``mag = sqrt(c1**2 + c2**2) ~ 1.4`` without noise (about 1.2
        from 50 cells per condition, as noise in the singles shrinks the fit). Scored from the
        measured cells by :func:`scgears.tl.genetic_interactions` (default gene rule), the planted
        pairs meet the paper's thresholds: ``synergy`` ``mag > 1.15`` (about 1.7, above the
        additive pairs), ``suppression`` ``mag < 1`` (about 0.5), ``neomorphism``
        ``corr_fit < 0.88`` (about 0.7) and ``redundancy`` ``dcor > 0.85`` (about 0.95), for all
        or all but one pair of each subtype at the default size. ``epistasis`` pairs have the
        lowest ``eq_contr`` of all pairs (about 0.3-0.45; the others stay above about 0.45) but
        rarely fall under the paper's 0.28, the level that the distance correlation of ~40
        unrelated values already reaches: rank pairs by ``eq_contr`` (as GEARS' precision@10
        does) to recover them. The paper's calls overlap by construction: additive pairs also
        pass ``mag > 1.15`` and ``dcor > 0.85``, redundant and epistatic ones ``mag < 1``.
        Triples inherit the interaction of any planted pair they contain.

    Parameters
    ----------
    n_genes
        Measured genes (perturbed genes included).
    n_perturbed_genes
        Genes perturbed alone (every one is measured as a single).
    n_doubles
        Two-gene conditions, drawn among the perturbed genes.
    n_triples
        Three-gene conditions, drawn among the perturbed genes.
    n_cells_per_condition
        Cells of every perturbed condition.
    n_control_cells
        Control cells; default five times ``n_cells_per_condition``.
    perturbation_type
        ``"CRISPRa"`` (activation) or ``"CRISPRi"`` (interference).
    n_interactions_per_subtype
        Doubles planted with each of the five interaction subtypes; default
        ``max(1, min(n_doubles // 10, n_perturbed_genes // 6))`` (half of the doubles are left
        additive at the default size; none below 5 doubles).
        Needs ``5 * n_interactions_per_subtype <= n_doubles`` and
        ``4 * n_interactions_per_subtype <= n_perturbed_genes`` (paralog and epistatic pairs use
        their genes once).
    library_size
        Median total counts of a control cell; default ``2 * n_genes`` (10,000 for 5,000 genes).
    effect_size
        Multiplies every regulatory weight: 1 gives top DE genes shifted by about 0.3-2 log units.
    go_consistency
        Share (0-1) of a perturbed gene's regulatory input that comes from its GO programmes; the
        rest is private to the gene and cannot be predicted from GO.
    synergy_factor, suppression_factor
        Range ``(low, high)`` of the factor that multiplies both regulators' activity in a planted
        ``synergy`` pair (above 1) or ``suppression`` pair (between 0 and 1), drawn uniformly per
        pair. The defaults (2.5-3.2 and 0.2-0.35) are strong; ``(1.5, 2.0)`` and ``(0.4, 0.6)``
        are realistic sizes, the ones ``benchmarks/bench_gi.py`` calibrates on.
    seed
        Seed of every random choice: the same arguments always give the same screen.

    Returns
    -------
    AnnData of cells x genes. ``obs``: ``perturbation_name`` (categorical), ``perturbation_type``,
    ``total_counts``. ``uns["simulation"]`` holds the truth:

    ``"params"``
        The arguments and derived settings (seed, library size, ...).
    ``"gi"``
        DataFrame indexed by double (``"A+B"``, canonical) with ``subtype`` (one of the five, or
        ``"additive"``), ``gene_a``, ``gene_b``, ``dominant`` (the masking gene of an epistatic
        pair, else ``""``) and ``factor`` (activity multiplier of synergy and suppression, else
        NaN).
    ``"conditions"``
        Canonical labels of the conditions (``"ctrl"`` first, then singles, doubles, triples): the
        rows of the two arrays below, whose columns are ``var_names``.
    ``"true_means"``
        Array (conditions x genes, float32): the noise-free expected log-normalised expression of
        each condition (negative-binomial expectation of ``X`` at the median library size,
        averaged over perturbation efficiencies, without cell-state noise). Subtract the first
        (``"ctrl"``) row for the true effects; as a table:
        ``pd.DataFrame(sim["true_means"], index=sim["conditions"], columns=adata.var_names)``.
    ``"true_log_fold"``
        Array of the same shape: the network's noise-free log fold change of expected expression
        against control, at full efficiency.
    ``"grn"``
        DataFrame of the regulatory edges: ``source``, ``target``, ``weight`` (signed input
        weight before ``effect_size``), ``kind`` (``"programme"`` for perturbed gene -> target or
        mediator, ``"mediator"`` for mediator -> target, ``"neomorphic"`` for edges only a pair
        switches on, with ``source`` ``"A+B"``).
    ``"genes"``
        DataFrame indexed by gene with ``role`` (``"perturbed"``, ``"mediator"``, ``"target"``),
        ``go_cluster`` (-1 unless perturbed) and ``self_log_fold`` (the CRISPR change of a
        perturbed gene in its own perturbation, 0 otherwise).

    Examples
    --------
    >>> import scgears as sg
    >>> adata = sg.datasets.simulate_screen(n_genes=200, n_cells_per_condition=20, seed=0)
    >>> adata.layers["counts"].dtype
    dtype('float32')
    >>> adata.obs["perturbation_name"].cat.categories[0]
    'control'
    >>> sorted(adata.uns["simulation"]["gi"]["subtype"].unique())  # doctest: +NORMALIZE_WHITESPACE
    ['additive', 'epistasis', 'neomorphism', 'redundancy', 'suppression', 'synergy']

    The size of Norman et al.'s screen (100,015 cells, 236 perturbations), for benchmarks:

    >>> norman_sized = sg.datasets.simulate_screen(
    ...     n_genes=5000, n_perturbed_genes=105, n_doubles=131, n_cells_per_condition=415
    ... )  # doctest: +SKIP
    """
    n_control_cells = 5 * n_cells_per_condition if n_control_cells is None else n_control_cells
    if n_interactions_per_subtype is not None:
        n_planted = n_interactions_per_subtype
    else:
        # at most one paralog pair per GO cluster (clusters hold at most 6 genes)
        fits = min(n_doubles // 10, n_perturbed_genes // CLUSTER_SIZES[1])
        n_planted = max(1, fits) if n_doubles >= len(GI_SUBTYPES) and n_perturbed_genes >= 4 else 0
    library_size = float(2 * n_genes if library_size is None else library_size)
    _check_arguments(
        n_genes=n_genes,
        n_perturbed_genes=n_perturbed_genes,
        n_doubles=n_doubles,
        n_triples=n_triples,
        n_cells_per_condition=n_cells_per_condition,
        n_control_cells=n_control_cells,
        perturbation_type=perturbation_type,
        n_planted=n_planted,
        library_size=library_size,
        effect_size=effect_size,
        go_consistency=go_consistency,
        synergy_factor=synergy_factor,
        suppression_factor=suppression_factor,
    )
    rng = np.random.default_rng(seed)
    go = _go_universe()
    perturbed, clusters = _pick_perturbed_genes(rng, go, n_perturbed_genes)
    genes = _pick_measured_genes(rng, go, perturbed, n_genes)
    net = _build_network(
        rng, go, genes, perturbed, clusters, perturbation_type, effect_size, go_consistency
    )
    planted = _plant_interactions(
        rng, net, n_doubles, n_triples, n_planted, synergy_factor, suppression_factor
    )
    conditions = [(), *[(p,) for p in range(n_perturbed_genes)], *planted.doubles, *planted.triples]

    x_rows = _log_fold_rows(net, conditions, planted)
    cell_rows = _assign_cells(rng, len(conditions), n_cells_per_condition, n_control_cells)
    counts, totals = _sample_counts(rng, net, x_rows, cell_rows, library_size)
    target_sum = float(np.median(totals))
    x_norm = log_normalise(counts, totals, target_sum)

    labels = [condition_label(net.genes[net.perturbed[list(c)]]) for c in conditions]
    true_means = _expected_log_normalised(net, x_rows, library_size, target_sum)
    names = [CONTROL_LABEL if lab == CONTROL else lab for lab in labels]
    obs = pd.DataFrame(
        {
            "perturbation_name": pd.Categorical.from_codes(
                cell_rows // N_EFFICIENCY_LEVELS, categories=names
            ),
            "perturbation_type": pd.Categorical(
                np.full(len(cell_rows), perturbation_type), categories=[perturbation_type]
            ),
            "total_counts": totals.astype(np.float32),
        },
        index=pd.Index([f"cell{i:06d}" for i in range(len(cell_rows))]),
    )
    adata = AnnData(
        X=x_norm, obs=obs, var=pd.DataFrame(index=pd.Index(net.genes)), layers={"counts": counts}
    )
    adata.uns["log1p"] = {"base": None}  # what scanpy's log1p records
    full = x_rows.reshape(len(conditions), N_EFFICIENCY_LEVELS, -1)[:, N_EFFICIENCY_LEVELS // 2]
    adata.uns["simulation"] = {
        "params": {
            "n_genes": n_genes,
            "n_perturbed_genes": n_perturbed_genes,
            "n_doubles": n_doubles,
            "n_triples": n_triples,
            "n_cells_per_condition": n_cells_per_condition,
            "n_control_cells": n_control_cells,
            "perturbation_type": perturbation_type,
            "n_interactions_per_subtype": n_planted,
            "library_size": library_size,
            "target_sum": target_sum,
            "effect_size": float(effect_size),
            "go_consistency": float(go_consistency),
            "synergy_factor": np.array([float(f) for f in synergy_factor]),
            "suppression_factor": np.array([float(f) for f in suppression_factor]),
            "seed": int(seed),
            "n_mediators": len(net.mediators),
            "efficiency_levels": _efficiency_levels(),
        },
        "gi": planted.table(net),
        "conditions": np.array(labels, dtype=object),
        "true_means": true_means,
        "true_log_fold": full.astype(np.float32),
        "grn": _edge_table(net),
        "genes": _gene_table(net),
    }
    logger.info(
        "Simulated %d cells x %d genes: %d singles, %d doubles (%d planted per GI subtype), "
        "%d triples, %s.",
        adata.n_obs,
        adata.n_vars,
        n_perturbed_genes,
        n_doubles,
        n_planted,
        n_triples,
        perturbation_type,
    )
    return adata


def _check_arguments(**kw) -> None:
    for name in ("n_genes", "n_perturbed_genes", "n_cells_per_condition"):
        if not isinstance(kw[name], int | np.integer) or kw[name] < 1:
            raise ValueError(f"{name} must be a positive integer, got {kw[name]!r}.")
    for name in ("n_doubles", "n_triples", "n_control_cells", "n_planted"):
        if not isinstance(kw[name], int | np.integer) or kw[name] < 0:
            label = "n_interactions_per_subtype" if name == "n_planted" else name
            raise ValueError(f"{label} must be a non-negative integer, got {kw[name]!r}.")
    if kw["perturbation_type"] not in PERTURBATION_TYPES:
        raise ValueError(
            f"perturbation_type must be one of {PERTURBATION_TYPES}, got "
            f"{kw['perturbation_type']!r}."
        )
    p = kw["n_perturbed_genes"]
    if kw["n_control_cells"] < 2:
        raise ValueError(
            f"n_control_cells must be at least 2 (the control mean needs cells), got "
            f"{kw['n_control_cells']}."
        )
    n_mediators = _n_mediators(kw["n_genes"])
    if kw["n_genes"] < p + n_mediators + 20:
        raise ValueError(
            f"n_genes={kw['n_genes']} leaves too few target genes beside {p} perturbed genes and "
            f"{n_mediators} mediators; use n_genes >= {p + n_mediators + 20} or fewer perturbed "
            "genes."
        )
    if kw["n_doubles"] > math.comb(p, 2):
        raise ValueError(
            f"n_doubles={kw['n_doubles']} is more than the {math.comb(p, 2)} pairs of "
            f"{p} perturbed genes; lower n_doubles or raise n_perturbed_genes."
        )
    if kw["n_triples"] > math.comb(p, 3):
        raise ValueError(
            f"n_triples={kw['n_triples']} is more than the {math.comb(p, 3)} triples of "
            f"{p} perturbed genes; lower n_triples or raise n_perturbed_genes."
        )
    if len(GI_SUBTYPES) * kw["n_planted"] > kw["n_doubles"]:
        raise ValueError(
            f"n_interactions_per_subtype={kw['n_planted']} needs "
            f"{len(GI_SUBTYPES) * kw['n_planted']} doubles but n_doubles={kw['n_doubles']}; lower "
            "it or raise n_doubles."
        )
    if 4 * kw["n_planted"] > p:
        raise ValueError(
            f"n_interactions_per_subtype={kw['n_planted']} needs {4 * kw['n_planted']} perturbed "
            f"genes (paralog and epistatic pairs use their genes once); n_perturbed_genes={p}. "
            "Lower it or raise n_perturbed_genes."
        )
    if not kw["library_size"] > 0:
        raise ValueError(f"library_size must be positive, got {kw['library_size']!r}.")
    if not kw["effect_size"] >= 0:
        raise ValueError(f"effect_size must be non-negative, got {kw['effect_size']!r}.")
    for name, low, high in (("synergy_factor", 1.0, np.inf), ("suppression_factor", 0.0, 1.0)):
        bounds = kw[name]
        if (
            not isinstance(bounds, tuple | list)
            or len(bounds) != 2
            or not low <= bounds[0] <= bounds[1]
            or (name == "synergy_factor" and bounds[0] <= low)
            or (name == "suppression_factor" and not bounds[1] < high)
        ):
            raise ValueError(
                f"{name} must be a (low, high) range with {low} "
                f"{'<' if name == 'synergy_factor' else '<='} low <= high"
                f"{' < 1' if name == 'suppression_factor' else ''}, got {bounds!r}."
            )
    if not 0 <= kw["go_consistency"] <= 1:
        raise ValueError(f"go_consistency must be between 0 and 1, got {kw['go_consistency']!r}.")

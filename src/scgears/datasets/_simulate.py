"""A simulated CRISPR screen from a known regulatory network, with planted genetic interactions.

The generator is the offline default dataset of scgears: it returns an AnnData shaped like
pertpy's preprocessed ``norman_2019`` (raw counts in ``layers["counts"]``, log-normalised ``X``,
``obs["perturbation_name"]``), and records everything a test or a benchmark needs to know about
the truth in ``uns["simulation"]``.

How the truth is built, in order (the numbers are module constants):

1. **Genes.** Perturbed genes are drawn in clusters of 3-6 genes that share Gene Ontology terms
   (Jaccard index of their term sets >= 0.2, the quantity GEARS' GO graph is built from); the other
   measured genes are drawn from all annotated human genes. All names are real symbols of the GO
   table shipped with scgears (``scgears._resources.go_annotations``).
2. **Regulatory network.** Every GO term of a perturbed gene is a *programme*: a signed set of
   4-12 target genes (up to half of them genes annotated with that term) and, one time in four, a
   mediator gene. A perturbed gene's input weights are the sum of the programmes of its terms,
   weighted by term specificity (squared inverse document frequency), mixed with a private
   programme of its own (``go_consistency`` sets the share), scaled so that its strongest edge is
   2.5, and cut to its 40 strongest target edges. Genes sharing GO terms therefore regulate
   overlapping targets with the same signs, which is what makes an unseen perturbation
   predictable from its GO neighbours. Mediators (3% of the genes) form a second layer, each
   regulating 10-30 targets.
3. **Dynamics.** The noise-free log fold change of a gene is a saturating function of its signed
   regulatory input, ``gain * (log_sigmoid(basal + input) - log_sigmoid(basal))``: activation
   saturates, repression does not, and two regulators hitting the same gene do not simply add.
   CRISPRa multiplies the expression of its target 4- to 30-fold, CRISPRi leaves 8-35% of it; the
   regulatory activity of a perturbed gene is ``2 tanh(log_fold / 2)`` of that change.
4. **Genetic interactions** are planted in some doubles by changing how the two regulators act
   together: ``synergy`` (both act 2.5-3.2 times as strongly), ``suppression`` (0.2-0.35 times),
   ``neomorphism`` (the pair switches on a programme of 30-60 expressed genes that neither single
   touches), ``redundancy`` (paralogs: the second gene copies the regulatory edges of the first,
   and in the pair each acts half as strongly, so the pair looks like either single) and
   ``epistasis`` (the dominant gene silences the other one: neither its induction nor its effects
   show in the pair). The other doubles are left additive, through the nonlinear network.
5. **Cells.** Each cell gets a library size (log-normal, sd 0.35), a perturbation efficiency (one of
   five quantile levels of a log-normal with sd 0.3), a cell-state variation shared by three
   modules of genes, and negative-binomial counts with gene-wise dispersion (inverse dispersion
   log-normal around 4), sampled exactly by a compiled (numba) kernel in parallel chunks.
"""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from scipy.special import log_expit, ndtri

from .._conditions import condition_label
from .._constants import CONTROL, CONTROL_LABEL
from ._loaders import log_normalise

logger = logging.getLogger(__name__)

#: Screen types and the label of control cells in ``obs["perturbation_name"]`` (pertpy's).
PERTURBATION_TYPES = ("CRISPRa", "CRISPRi")
#: Planted genetic-interaction subtypes, in the order they are allotted to doubles.
GI_SUBTYPES = ("synergy", "suppression", "neomorphism", "redundancy", "epistasis")
ADDITIVE = "additive"

#: Perturbation efficiency of a cell: one of these many quantile levels of a log-normal.
N_EFFICIENCY_LEVELS = 5
EFFICIENCY_SD = 0.3
#: Cluster sizes of GO-similar perturbed genes, and the Jaccard range that links two of them.
CLUSTER_SIZES = (3, 6)
MIN_JACCARD = 0.2
MAX_JACCARD = 0.95
#: Perturbed genes are drawn among genes with this many GO terms (informative, not hubs).
TERM_RANGE = (5, 80)
#: Relative edge weights below this fraction of a regulator's strongest edge are dropped.
MIN_RELATIVE_WEIGHT = 0.1
MAX_TARGETS = 40
#: Most dense float values handled at once while sampling counts (per thread).
_CHUNK_VALUES = 8_000_000


@dataclass
class _Network:
    """The regulatory network and the per-gene parameters of the simulation."""

    genes: np.ndarray  # measured gene symbols (var order)
    perturbed: np.ndarray  # var index of each perturbed gene
    mediators: np.ndarray  # var index of each mediator gene
    w_target: np.ndarray  # (P, G) perturbed gene -> target input weights
    w_mediator: np.ndarray  # (P, M) perturbed gene -> mediator input weights
    v_target: np.ndarray  # (M, G) mediator -> target input weights
    basal: np.ndarray  # (G,) basal occupancy of every gene's regulatory function
    gain: np.ndarray  # (G,) gain of every gene's response
    self_shift: np.ndarray  # (P,) log fold change that the CRISPR system imposes on its target
    log_baseline: np.ndarray  # (G,) log of each gene's share of a control cell's counts
    theta: np.ndarray  # (G,) negative-binomial inverse dispersion
    clusters: np.ndarray  # (P,) GO cluster of each perturbed gene
    neomorphic: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)


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
    )
    rng = np.random.default_rng(seed)
    go = _go_universe()
    perturbed, clusters = _pick_perturbed_genes(rng, go, n_perturbed_genes)
    genes = _pick_measured_genes(rng, go, perturbed, n_genes)
    net = _build_network(
        rng, go, genes, perturbed, clusters, perturbation_type, effect_size, go_consistency
    )
    planted = _plant_interactions(rng, net, n_doubles, n_triples, n_planted)
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
    if not 0 <= kw["go_consistency"] <= 1:
        raise ValueError(f"go_consistency must be between 0 and 1, got {kw['go_consistency']!r}.")


def _n_mediators(n_genes: int) -> int:
    return max(5, round(0.03 * n_genes))


def _efficiency_levels() -> np.ndarray:
    """Per-cell multipliers of the CRISPR effect: quantile midpoints of a log-normal."""
    q = (np.arange(N_EFFICIENCY_LEVELS) + 0.5) / N_EFFICIENCY_LEVELS
    return np.exp(EFFICIENCY_SD * ndtri(q))


# --------------------------------------------------------------------------------------------------
# Genes from the shipped GO table


@dataclass(frozen=True)
class _GoUniverse:
    symbols: np.ndarray  # sorted gene symbols with >= 1 GO term
    membership: sp.csr_matrix  # genes x terms, binary
    n_terms: np.ndarray  # terms per gene
    term_sizes: np.ndarray  # genes per term


@lru_cache(maxsize=1)
def _go_universe() -> _GoUniverse:
    from .._resources import go_annotations

    table = go_annotations()
    symbols = np.array(sorted(table), dtype=object)
    term_index: dict[str, int] = {}
    indptr = [0]
    indices: list[int] = []
    for symbol in symbols:
        # sorted: set iteration order changes from one process to the next (string hashing)
        ids = sorted(term_index.setdefault(t, len(term_index)) for t in sorted(table[symbol]))
        indices.extend(ids)
        indptr.append(len(indices))
    membership = sp.csr_matrix(
        (np.ones(len(indices), dtype=np.float32), indices, indptr),
        shape=(len(symbols), len(term_index)),
    )
    n_terms = np.diff(membership.indptr)
    term_sizes = np.asarray(membership.sum(axis=0)).ravel()
    return _GoUniverse(symbols, membership, n_terms, term_sizes)


def _pick_perturbed_genes(
    rng: np.random.Generator, go: _GoUniverse, n_perturbed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Clusters of 3-6 genes whose GO term sets overlap (Jaccard >= 0.2), as GEARS' GO graph sees.

    Genes with few or very many terms, and genes whose term set is shared by two or more other
    genes (olfactory receptors and other families with identical annotations), are left out.
    """
    term_sets = {}
    for i in range(len(go.symbols)):
        key = go.membership.indices[go.membership.indptr[i] : go.membership.indptr[i + 1]]
        term_sets.setdefault(key.tobytes(), []).append(i)
    duplicated = np.zeros(len(go.symbols), dtype=bool)
    for members in term_sets.values():
        if len(members) >= 3:
            duplicated[members] = True
    ok = (go.n_terms >= TERM_RANGE[0]) & (go.n_terms <= TERM_RANGE[1]) & ~duplicated
    candidates = np.flatnonzero(ok)
    sub = go.membership[candidates]
    sizes = go.n_terms[candidates].astype(np.float64)
    taken = np.zeros(len(candidates), dtype=bool)
    chosen: list[int] = []
    cluster_of: list[int] = []
    for seed_gene in rng.permutation(len(candidates)):
        if len(chosen) >= n_perturbed:
            break
        if taken[seed_gene]:
            continue
        overlap = np.asarray((sub @ sub[seed_gene].T).todense()).ravel()
        jaccard = overlap / (sizes + sizes[seed_gene] - overlap)
        jaccard[taken] = 0.0
        jaccard[seed_gene] = 0.0
        linked = np.flatnonzero((jaccard >= MIN_JACCARD) & (jaccard < MAX_JACCARD))
        if len(linked) < CLUSTER_SIZES[0] - 1:
            continue
        size = int(rng.integers(CLUSTER_SIZES[0], CLUSTER_SIZES[1] + 1))
        size = min(size, n_perturbed - len(chosen))
        linked = linked[np.argsort(-jaccard[linked], kind="stable")][: size - 1]
        members = [int(seed_gene), *linked.tolist()]
        taken[members] = True
        chosen.extend(members)
        cluster_of.extend([len(set(cluster_of))] * len(members))
    if len(chosen) < n_perturbed:  # pragma: no cover - the shipped table has thousands of clusters
        raise ValueError(f"Could not find {n_perturbed} GO-clustered genes to perturb.")
    return candidates[np.array(chosen)], np.array(cluster_of)


def _pick_measured_genes(
    rng: np.random.Generator, go: _GoUniverse, perturbed: np.ndarray, n_genes: int
) -> np.ndarray:
    """Universe indices of the measured genes (perturbed genes included), sorted by symbol."""
    others = np.setdiff1d(np.arange(len(go.symbols)), perturbed)
    extra = rng.choice(others, size=n_genes - len(perturbed), replace=False)
    return np.sort(np.concatenate([perturbed, extra]))


# --------------------------------------------------------------------------------------------------
# The regulatory network


def _build_network(
    rng: np.random.Generator,
    go: _GoUniverse,
    measured: np.ndarray,
    perturbed_universe: np.ndarray,
    clusters: np.ndarray,
    perturbation_type: str,
    effect_size: float,
    go_consistency: float,
) -> _Network:
    n_genes = len(measured)
    position = {int(u): i for i, u in enumerate(measured)}
    perturbed = np.array([position[int(u)] for u in perturbed_universe])
    others = np.setdiff1d(np.arange(n_genes), perturbed)
    mediators = np.sort(rng.choice(others, size=_n_mediators(n_genes), replace=False))
    targets = np.setdiff1d(others, mediators)
    is_target = np.zeros(n_genes, dtype=bool)
    is_target[targets] = True

    # Term programmes: signed target sets, half drawn from the term's own measured members.
    members = go.membership[measured].tocsc()
    idf = np.log(len(go.symbols) / np.maximum(go.term_sizes, 1.0)) ** 2
    n_p, n_m = len(perturbed), len(mediators)
    go_input = np.zeros((n_p, n_genes))
    go_mediator = np.zeros((n_p, n_m))
    programmes: dict[int, tuple[np.ndarray, np.ndarray, int, float]] = {}
    for j, u in enumerate(perturbed_universe):
        row = go.membership.indices[go.membership.indptr[u] : go.membership.indptr[u + 1]]
        for t in row:
            if t not in programmes:
                own = members.indices[members.indptr[t] : members.indptr[t + 1]]
                programmes[t] = _programme(rng, own[is_target[own]], targets, n_m)
            idx, weights, mediator, m_weight = programmes[t]
            go_input[j, idx] += idf[t] * weights
            if mediator >= 0:
                go_mediator[j, mediator] += idf[t] * m_weight
    own_input = np.zeros_like(go_input)
    own_mediator = np.zeros_like(go_mediator)
    for j in range(n_p):
        idx, weights, mediator, m_weight = _programme(rng, np.array([], int), targets, n_m)
        own_input[j, idx] = weights
        if mediator >= 0:
            own_mediator[j, mediator] = m_weight
    w_target, w_mediator = _mix_and_scale(
        go_input, go_mediator, own_input, own_mediator, go_consistency, 2.5 * effect_size
    )

    v_target = np.zeros((n_m, n_genes))
    for m in range(n_m):
        idx = rng.choice(targets, size=int(rng.integers(10, 31)), replace=False)
        sign = np.where(rng.random(len(idx)) < 0.8, 1.0, -1.0) * rng.choice([-1.0, 1.0])
        v_target[m, idx] = sign * rng.lognormal(0.0, 0.4, len(idx))
    v_target *= 1.5 * effect_size / np.abs(v_target).max(axis=1, keepdims=True)

    basal = rng.normal(-0.5, 1.2, n_genes)
    gain = rng.uniform(0.8, 1.5, n_genes)
    if perturbation_type == "CRISPRa":
        self_shift = rng.uniform(np.log(4.0), np.log(30.0), n_p)
    else:
        self_shift = np.log(rng.uniform(0.08, 0.35, n_p))

    # Share of each gene in a control cell's counts: log-normal, with the perturbed genes where
    # CRISPRa (lowly expressed genes, often transcription factors) or CRISPRi (expressed genes)
    # is used, and mediators well expressed. Ranges are counts at 2 counts per gene per cell.
    log_share = rng.normal(0.0, 2.3, n_genes)
    log_share -= np.log(np.exp(log_share).sum())
    typical = np.log(2.0 * n_genes)
    low, high = (0.05, 1.0) if perturbation_type == "CRISPRa" else (1.0, 20.0)
    log_share[perturbed] = rng.uniform(np.log(low), np.log(high), n_p) - typical
    log_share[mediators] = rng.uniform(np.log(0.5), np.log(10.0), n_m) - typical
    # No silent genes (a preprocessed screen has none): at least 0.02 counts per cell.
    np.maximum(log_share, np.log(0.02) - typical, out=log_share)
    log_share -= np.log(np.exp(log_share).sum())
    theta = np.clip(rng.lognormal(np.log(4.0), 0.6, n_genes), 0.5, 50.0)

    return _Network(
        genes=go.symbols[measured].astype(str),
        perturbed=perturbed,
        mediators=mediators,
        w_target=w_target,
        w_mediator=w_mediator,
        v_target=v_target,
        basal=basal,
        gain=gain,
        self_shift=self_shift,
        log_baseline=log_share,
        theta=theta,
        clusters=clusters,
    )


def _programme(
    rng: np.random.Generator, own_members: np.ndarray, targets: np.ndarray, n_mediators: int
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """A signed target set: 4-12 genes (up to half from ``own_members``), sometimes a mediator."""
    size = int(rng.integers(4, 13))
    n_own = min(len(own_members), size // 2)
    own = rng.choice(own_members, size=n_own, replace=False) if n_own else np.array([], int)
    rest = rng.choice(targets, size=size + n_own, replace=False)
    rest = rest[~np.isin(rest, own)][: size - n_own]
    idx = np.concatenate([own, rest]).astype(np.int64)
    sign = rng.choice([-1.0, 1.0]) * np.where(rng.random(size) < 0.85, 1.0, -1.0)
    weights = sign * rng.lognormal(0.0, 0.4, size)
    if rng.random() < 0.25:
        return (
            idx,
            weights,
            int(rng.integers(n_mediators)),
            float(rng.choice([-1.0, 1.0]) * rng.lognormal(0.0, 0.3)),
        )
    return idx, weights, -1, 0.0


def _mix_and_scale(go_t, go_m, own_t, own_m, go_consistency, strength):
    """Regulator inputs: GO part and private part mixed by norm, strongest edge = ``strength``."""

    def unit(t, m):
        norm = np.sqrt((t**2).sum(axis=1) + (m**2).sum(axis=1))[:, None]
        norm[norm == 0] = 1.0
        return t / norm, m / norm

    go_t, go_m = unit(go_t, go_m)
    own_t, own_m = unit(own_t, own_m)
    a, b = math.sqrt(go_consistency), math.sqrt(1.0 - go_consistency)
    w_t, w_m = a * go_t + b * own_t, a * go_m + b * own_m
    peak = np.maximum(np.abs(w_t).max(axis=1), np.abs(w_m).max(axis=1))[:, None]
    peak[peak == 0] = 1.0
    w_t, w_m = w_t / peak, w_m / peak
    w_t[np.abs(w_t) < MIN_RELATIVE_WEIGHT] = 0.0
    w_m[np.abs(w_m) < MIN_RELATIVE_WEIGHT] = 0.0
    # Direct targets: the MAX_TARGETS strongest edges of each regulator.
    weakest = np.argsort(-np.abs(w_t), axis=1, kind="stable")[:, MAX_TARGETS:]
    np.put_along_axis(w_t, weakest, 0.0, axis=1)
    return strength * w_t, strength * w_m


# --------------------------------------------------------------------------------------------------
# Conditions and planted genetic interactions


@dataclass
class _Planted:
    doubles: list[tuple[int, int]]
    triples: list[tuple[int, int, int]]
    subtype: dict[tuple[int, int], str]
    dominant: dict[tuple[int, int], int]
    factor: dict[tuple[int, int], float]

    def table(self, net: _Network) -> pd.DataFrame:
        names = net.genes[net.perturbed]
        rows = []
        for a, b in self.doubles:
            kind = self.subtype.get((a, b), ADDITIVE)
            dom = self.dominant.get((a, b))
            rows.append(
                {
                    "subtype": kind,
                    "gene_a": names[a],
                    "gene_b": names[b],
                    "dominant": "" if dom is None else names[dom],
                    "factor": self.factor.get((a, b), np.nan),
                }
            )
        index = pd.Index([condition_label(names[list(d)]) for d in self.doubles], name="pair")
        return pd.DataFrame(
            rows, index=index, columns=["subtype", "gene_a", "gene_b", "dominant", "factor"]
        )


def _plant_interactions(
    rng: np.random.Generator, net: _Network, n_doubles: int, n_triples: int, n_planted: int
) -> _Planted:
    """Choose the doubles and triples and plant the interactions (edits paralogs in ``net``).

    Planted pairs are preferably made of genes whose single effects are not weak (above the 30th
    percentile of effect norm), so that the interaction is visible in measured cells.

    * ``redundancy``: one pair per GO cluster; the second gene becomes a paralog of the first (a
      noisy copy of its regulatory edges and CRISPR strength).
    * ``epistasis``: the pairs whose singles are least alike, each gene used once; the gene with
      the stronger single dominates.
    * ``synergy``, ``suppression``, ``neomorphism``: pairs whose singles differ
      (|cosine| < 0.5), so that no planted pair looks redundant.
    """
    n_p = len(net.perturbed)
    order = np.argsort(net.genes[net.perturbed])  # canonical order: alphabetical gene names
    rank = np.empty(n_p, dtype=np.int64)
    rank[order] = np.arange(n_p)

    def canonical(a: int, b: int) -> tuple[int, int]:
        return (a, b) if rank[a] < rank[b] else (b, a)

    subtype: dict[tuple[int, int], str] = {}
    dominant: dict[tuple[int, int], int] = {}
    factor: dict[tuple[int, int], float] = {}

    def count(kind: str) -> int:
        return sum(1 for v in subtype.values() if v == kind)

    single, _, _ = _single_effects(net)
    # Paralogs copy the gene with the broadest effect (most responding, expressed genes) of the
    # clusters where it is broadest, so that their shared effect stands out of measurement noise.
    expressed = net.log_baseline > np.median(net.log_baseline)
    breadth = ((np.abs(single) > 0.1) & expressed).sum(axis=1)
    best = {c: breadth[net.clusters == c].max() for c in np.unique(net.clusters)}
    used_genes: set[int] = set()
    for cluster in sorted(best, key=lambda c: (-best[c], c)):
        if count("redundancy") >= n_planted:
            break
        genes = [int(g) for g in np.flatnonzero(net.clusters == cluster)]
        if len(genes) < 2:
            continue
        a = max(genes, key=lambda g: (breadth[g], -g))
        b = int(rng.choice([g for g in genes if g != a]))
        _make_paralog(rng, net, a, b)
        used_genes.update((a, b))
        subtype[canonical(a, b)] = "redundancy"

    single, cosine, norm = _single_effects(net)
    strong = norm >= np.quantile(norm, 0.3)
    pairs = [canonical(a, b) for a in range(n_p) for b in range(a + 1, n_p)]
    pairs = [pairs[i] for i in rng.permutation(len(pairs))]
    free = [p for p in pairs if p not in subtype]
    preferred = [p for p in free if strong[p[0]] and strong[p[1]]]
    ordered = preferred + [p for p in free if not (strong[p[0]] and strong[p[1]])]

    def least_alike(p: tuple[int, int]) -> tuple[bool, float]:
        return (not (strong[p[0]] and strong[p[1]]), abs(cosine[p]))

    for a, b in sorted(free, key=least_alike):
        if count("epistasis") >= n_planted:
            break
        if {a, b} & used_genes:
            continue
        subtype[(a, b)] = "epistasis"
        dominant[(a, b)] = a if norm[a] >= norm[b] else b
        used_genes.update((a, b))

    dissimilar = iter(p for p in ordered if p not in subtype and abs(cosine[p]) < 0.5)
    for kind, low, high in (
        ("synergy", 2.5, 3.2),
        ("suppression", 0.2, 0.35),
        ("neomorphism", None, None),
    ):
        for _ in range(n_planted):
            pair = next(dissimilar, None)
            if pair is None:
                break
            subtype[pair] = kind
            if low is not None:
                factor[pair] = float(rng.uniform(low, high))
            else:
                net.neomorphic[pair] = _neomorphic_input(rng, net, single, pair)
    missing = [k for k in GI_SUBTYPES if count(k) < n_planted]
    if missing:
        raise ValueError(
            f"Could not plant {n_planted} pairs of {missing} among {n_p} perturbed genes (in "
            f"{len(np.unique(net.clusters))} GO clusters); lower n_interactions_per_subtype or "
            "raise n_perturbed_genes."
        )
    additive = [p for p in ordered if p not in subtype][: n_doubles - len(subtype)]
    doubles = sorted([*subtype, *additive], key=lambda p: (rank[p[0]], rank[p[1]]))

    triples: set[tuple[int, ...]] = set()
    while len(triples) < n_triples:
        trio = rng.choice(n_p, size=3, replace=False)
        triples.add(tuple(int(g) for g in sorted(trio, key=rank.__getitem__)))
    ordered_triples = sorted(triples, key=lambda t: tuple(rank[g] for g in t))
    return _Planted(doubles, ordered_triples, subtype, dominant, factor)


def _single_effects(net: _Network) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise-free single log fold changes at full efficiency, cosine and norm of their effects."""
    single = _log_fold_rows(net, [(p,) for p in range(len(net.perturbed))], None)[
        N_EFFICIENCY_LEVELS // 2 :: N_EFFICIENCY_LEVELS
    ]
    downstream = np.ones(single.shape[1], dtype=bool)
    downstream[net.perturbed] = False
    effect = single[:, downstream].astype(np.float64)
    norm = np.linalg.norm(effect, axis=1)
    cosine = effect @ effect.T / np.outer(norm, norm).clip(min=1e-12)
    return single, cosine, norm


def _make_paralog(rng: np.random.Generator, net: _Network, a: int, b: int) -> None:
    noise = rng.normal(1.0, 0.05, net.w_target.shape[1])
    net.w_target[b] = net.w_target[a] * noise
    net.w_mediator[b] = net.w_mediator[a] * rng.normal(1.0, 0.05, net.w_mediator.shape[1])
    net.self_shift[b] = net.self_shift[a] * rng.uniform(0.95, 1.05)


def _neomorphic_input(
    rng: np.random.Generator, net: _Network, single: np.ndarray, pair: tuple[int, int]
) -> np.ndarray:
    """Input to 30-60 expressed target genes that neither single changes (|log fold| < 0.05).

    Its strongest edge is 1.5 times the strongest edge of the two genes, so that the new
    programme is as visible as the singles' own effects.
    """
    quiet = np.all(np.abs(single[list(pair)]) < 0.05, axis=0)
    quiet &= net.log_baseline > np.quantile(net.log_baseline, 0.5)
    quiet[net.perturbed] = False
    quiet[net.mediators] = False
    candidates = np.flatnonzero(quiet)
    idx = rng.choice(
        candidates, size=min(len(candidates), int(rng.integers(30, 61))), replace=False
    )
    weights = np.zeros(single.shape[1])
    weights[idx] = rng.choice([-1.0, 1.0]) * np.where(rng.random(len(idx)) < 0.7, 1.0, -1.0)
    weights[idx] *= rng.lognormal(0.0, 0.4, len(idx))
    peak = 1.5 * np.abs(net.w_target[list(pair)]).max()
    return weights * peak / np.abs(weights).max()


# --------------------------------------------------------------------------------------------------
# Noise-free steady state


def _response(inputs: np.ndarray, basal: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Log fold change of a gene with saturating regulation: 0 at zero input."""
    basal = basal.astype(np.float32)
    return gain.astype(np.float32) * (
        log_expit(basal + inputs.astype(np.float32)) - log_expit(basal)
    )


def _activity(log_fold: np.ndarray) -> np.ndarray:
    """Regulatory activity of a regulator whose expression changed by ``log_fold`` (saturating)."""
    return 2.0 * np.tanh(log_fold / 2.0)


def _log_fold_rows(net: _Network, conditions, planted: _Planted | None) -> np.ndarray:
    """Noise-free log fold changes, one row per (condition, efficiency level), level fastest."""
    levels = _efficiency_levels()
    n_p, n_genes = len(net.perturbed), len(net.genes)
    n_rows = len(conditions) * len(levels)
    shift = np.zeros((n_rows, n_p))
    activity = np.zeros((n_rows, n_p))
    extra = np.zeros((n_rows, n_genes))
    subtypes = planted.subtype if planted is not None else {}
    for c, genes in enumerate(conditions):
        rows = slice(c * len(levels), (c + 1) * len(levels))
        if not genes:
            continue
        idx = list(genes)
        self_mult = np.ones(len(idx))
        act_mult = np.ones(len(idx))
        neo = np.zeros(n_genes)
        base = _activity(net.self_shift[idx])
        for i in range(len(idx)):
            for j in range(i + 1, len(idx)):
                pair = (idx[i], idx[j]) if (idx[i], idx[j]) in subtypes else (idx[j], idx[i])
                kind = subtypes.get(pair)
                if kind in ("synergy", "suppression"):
                    act_mult[[i, j]] *= planted.factor[pair]
                elif kind == "redundancy":
                    act_mult[[i, j]] *= 0.5
                elif kind == "epistasis":
                    masked = j if planted.dominant[pair] == idx[i] else i
                    self_mult[masked] = 0.0
                    act_mult[masked] = 0.0
                elif kind == "neomorphism":
                    neo += net.neomorphic[pair] * min(abs(base[i]), abs(base[j]))
        for level_row, level in zip(range(rows.start, rows.stop), levels, strict=True):
            change = net.self_shift[idx] * self_mult * level
            shift[level_row, idx] = change
            activity[level_row, idx] = _activity(change) * act_mult
            extra[level_row] = neo * level
    mediator_fold = _response(
        activity @ net.w_mediator, net.basal[net.mediators], net.gain[net.mediators]
    )
    inputs = activity @ net.w_target + _activity(mediator_fold) @ net.v_target + extra
    log_fold = _response(inputs, net.basal, net.gain)
    log_fold[:, net.mediators] = mediator_fold
    log_fold[:, net.perturbed] = shift
    return log_fold.astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Cells and counts


def _assign_cells(rng, n_conditions: int, n_per_condition: int, n_control: int):
    """Row of ``_log_fold_rows`` of every cell (condition * levels + level), cells shuffled."""
    sizes = np.full(n_conditions, n_per_condition)
    sizes[0] = n_control
    condition = np.repeat(np.arange(n_conditions), sizes)
    condition = condition[rng.permutation(len(condition))]
    level = rng.integers(N_EFFICIENCY_LEVELS, size=len(condition))
    level[condition == 0] = N_EFFICIENCY_LEVELS // 2
    return condition * N_EFFICIENCY_LEVELS + level


def _sample_counts(rng, net: _Network, x_rows, cell_rows, library_size: float):
    """Negative-binomial counts (CSR float32) and total counts per cell, sampled in chunks."""
    n_cells, n_genes = len(cell_rows), len(net.genes)
    log_library = np.log(library_size) + rng.normal(0.0, 0.35, n_cells)
    # Cell-state modules: a few groups of genes that co-vary from cell to cell.
    n_modules = 3
    loadings = np.zeros((n_modules, n_genes))
    for k in range(n_modules):
        idx = rng.choice(n_genes, size=max(5, n_genes // 16), replace=False)
        loadings[k, idx] = rng.normal(0.35, 0.08, len(idx))
    state = rng.normal(size=(n_cells, n_modules))
    offset = net.log_baseline - 0.5 * (loadings**2).sum(axis=0)
    rows_per_chunk = max(64, _CHUNK_VALUES // n_genes)
    starts = range(0, n_cells, rows_per_chunk)
    seeds = rng.integers(0, 2**31 - 1, size=len(starts))
    sampler = _nb_sampler()
    theta = net.theta.astype(np.float32)
    log_library = log_library.astype(np.float32)
    offset = offset.astype(np.float32)
    state = state.astype(np.float32)
    loadings = loadings.astype(np.float32)

    def chunk(args):
        start, chunk_seed = args
        stop = min(start + rows_per_chunk, n_cells)
        mu = x_rows[cell_rows[start:stop]]
        mu += log_library[start:stop, None]
        mu += offset
        mu += state[start:stop] @ loadings
        np.exp(mu, out=mu)
        p_zero = mu / theta
        np.log1p(p_zero, out=p_zero)
        p_zero *= -theta
        np.exp(p_zero, out=p_zero)
        indptr, indices, data = sampler(mu, p_zero, theta, int(chunk_seed))
        return sp.csr_matrix((data, indices, indptr), shape=(stop - start, n_genes))

    n_threads = max(1, min(4, os.cpu_count() or 1, len(starts)))
    with ThreadPoolExecutor(n_threads) as pool:
        blocks = list(pool.map(chunk, zip(starts, seeds, strict=True)))
    counts = sp.vstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]
    totals = np.asarray(counts.sum(axis=1)).ravel()
    if np.any(totals == 0):  # pragma: no cover - needs absurdly small libraries
        raise ValueError("Some simulated cells have no counts; raise library_size.")
    return counts, totals


def _expected_log_normalised(net: _Network, x_rows, library_size: float, target_sum: float):
    """Expected ``X`` per condition: NB expectation of log1p(normalised counts), over levels."""
    mu = library_size * np.exp(net.log_baseline[None, :] + x_rows.astype(np.float64))
    scale = target_sum / mu.sum(axis=1)
    expected = _nb_expectation()(mu, net.theta.astype(np.float64), scale)
    per_condition = expected.reshape(-1, N_EFFICIENCY_LEVELS, expected.shape[1]).mean(axis=1)
    return per_condition.astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Numba kernels (compiled on first use and cached on disk)


def _nb_counts_kernel(mu, p_zero, theta, seed):  # pragma: no cover - compiled by numba
    """Negative-binomial counts by inversion of the CDF, given P(0) per entry, as CSR arrays."""
    np.random.seed(seed)  # noqa: NPY002 - numba knows only the legacy API
    n, g = mu.shape
    indptr = np.zeros(n + 1, np.int64)
    indices = np.empty(n * g, np.int32)
    data = np.empty(n * g, np.float32)
    nnz = 0
    for i in range(n):
        for j in range(g):
            u = np.random.random()  # noqa: NPY002
            p = np.float64(p_zero[i, j])
            if u <= p:
                continue
            m = np.float64(mu[i, j])
            th = np.float64(theta[j])
            if m > 30.0:  # long CDF walks: sample the gamma-Poisson mixture instead
                k = np.random.poisson(np.random.gamma(th, m / th))  # noqa: NPY002
                if k == 0:
                    continue
            else:
                q = m / (m + th)
                cdf = p
                k = 0
                while u > cdf and k < 100_000:
                    k += 1
                    p *= (k - 1 + th) / k * q
                    cdf += p
            indices[nnz] = j
            data[nnz] = k
            nnz += 1
        indptr[i + 1] = nnz
    return indptr, indices[:nnz].copy(), data[:nnz].copy()


def _nb_expectation_kernel(mu, theta, scale):  # pragma: no cover - compiled by numba
    """E[log1p(scale * K)] for K ~ NB(mu, theta), per entry (delta method for large means)."""
    n, g = mu.shape
    out = np.empty((n, g))
    for i in range(n):
        s = scale[i]
        for j in range(g):
            m = mu[i, j]
            th = theta[j]
            if m * s > 30.0 or m > 100.0:
                var = m + m * m / th
                out[i, j] = math.log1p(s * m) - 0.5 * s * s * var / (1.0 + s * m) ** 2
                continue
            q = m / (m + th)
            p = math.exp(th * math.log1p(-q))
            cdf = p
            total = 0.0
            k = 0
            while cdf < 1.0 - 1e-8 and k < 100_000:
                k += 1
                p *= (k - 1 + th) / k * q
                cdf += p
                total += p * math.log1p(s * k)
            out[i, j] = total
    return out


@lru_cache(maxsize=1)
def _nb_sampler():
    import numba

    return numba.njit(cache=True, nogil=True)(_nb_counts_kernel)


@lru_cache(maxsize=1)
def _nb_expectation():
    import numba

    return numba.njit(cache=True, nogil=True)(_nb_expectation_kernel)


# --------------------------------------------------------------------------------------------------
# Ground-truth tables


def _edge_table(net: _Network) -> pd.DataFrame:
    names = net.genes
    parts = []
    src, tgt = np.nonzero(net.w_target)
    parts.append((names[net.perturbed[src]], names[tgt], net.w_target[src, tgt], "programme"))
    src, tgt = np.nonzero(net.w_mediator)
    parts.append(
        (
            names[net.perturbed[src]],
            names[net.mediators[tgt]],
            net.w_mediator[src, tgt],
            "programme",
        )
    )
    src, tgt = np.nonzero(net.v_target)
    parts.append((names[net.mediators[src]], names[tgt], net.v_target[src, tgt], "mediator"))
    for (a, b), weights in net.neomorphic.items():
        tgt = np.flatnonzero(weights)
        label = condition_label(names[net.perturbed[[a, b]]])
        parts.append(
            (np.full(len(tgt), label, dtype=object), names[tgt], weights[tgt], "neomorphic")
        )
    return pd.DataFrame(
        {
            "source": np.concatenate([p[0] for p in parts]).astype(str),
            "target": np.concatenate([p[1] for p in parts]).astype(str),
            "weight": np.concatenate([p[2] for p in parts]).astype(np.float32),
            "kind": np.concatenate([np.full(len(p[0]), p[3]) for p in parts]).astype(str),
        }
    )


def _gene_table(net: _Network) -> pd.DataFrame:
    role = np.full(len(net.genes), "target", dtype=object)
    role[net.perturbed] = "perturbed"
    role[net.mediators] = "mediator"
    cluster = np.full(len(net.genes), -1, dtype=np.int64)
    cluster[net.perturbed] = net.clusters
    self_fold = np.zeros(len(net.genes), dtype=np.float32)
    self_fold[net.perturbed] = net.self_shift
    return pd.DataFrame(
        {"role": role.astype(str), "go_cluster": cluster, "self_log_fold": self_fold},
        index=pd.Index(net.genes, name="gene"),
    )

"""Experiment design: which perturbations to measure next, from a trained model."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from anndata import AnnData

from .._anndata import get_conditions
from .._conditions import as_condition, condition_genes
from .._constants import CONTROL, N_PERTURBED
from . import _recommend_evidence as evidence

logger = logging.getLogger(__name__)

RECOMMEND_KEY = "scgears_recommend"
#: The objectives :func:`recommend` knows; a mapping of them to weights combines them.
OBJECTIVES = ("interactions", "uncertainty", "coverage")
#: The factors of the ``"interactions"`` score, each a column of the returned table.
INTERACTION_FACTORS = ("predicted_nonadditivity", "detectability", "hub_propensity")


def recommend(
    model,
    candidates: Sequence[str | Sequence[str]] | None = None,
    *,
    budget: int = 10,
    objective: str | Mapping[str, float] = "interactions",
    exclude: Sequence[str | Sequence[str]] | None = None,
    random_state: int = 0,
    batch_size: int = 512,
    key_added: str = RECOMMEND_KEY,
) -> pd.DataFrame:
    """Recommend the perturbations to measure next.

    Candidates are scored with the trained model and the best ``budget`` of them are returned, in
    the order they were picked. The objectives:

    ``"interactions"``
        Pairs most likely to be strong genetic interactions *that a measurement can confirm*. The
        score of a candidate pair ``A+B`` is the product of three factors, each a column of the
        returned table:

        ``predicted_nonadditivity``
            The norm (over genes) of the model's predicted non-additive part
            ``delta_AB - delta_A - delta_B`` (the ensemble's mean prediction for an ensemble): how
            far the model expects the pair to be from the sum of its singles.
        ``detectability``
            ``d_A * d_B``, with ``d = s^2 / (s^2 + n^2)`` of each single's measured effect: ``s``
            the norm of its mean change from control with the noise's share removed, ``n`` the
            norm of its standard error. A gene whose guide moves nothing beyond noise has
            ``d ~ 0``: a pair with it cannot be called with confidence whatever it does. A gene
            not measured alone gets the screen's median ``d``.
        ``hub_propensity``
            Evidence from the pairs already measured: each measured pair's calibrated call
            (:func:`~scgears.tl.genetic_interactions` with 50 bootstrap replicates; the
            probability that it is non-additive) updates an empirical-Bayes propensity of each of
            its genes to interact, whose prior strength is estimated from the data (see
            ``gene_propensity`` in ``scgears.tl._recommend_evidence``). The factor is
            ``1 - (1 - p_A)(1 - p_B)`` over its screen-wide value: above 1 for pairs with
            interaction hubs, and exactly 1 for every pair when the genes' rates vary no more
            than chance explains (no hubs, or too few measured pairs).

        Only the cells the model may learn from (the split's ``train`` and ``val`` cells, all
        cells without a split) count as measured evidence. Singles have no interaction and score
        0. The benchmark behind this choice (``benchmarks/bench_design.py``, docs: *Benchmarks*)
        found this score above random selection both on scgears' simulator and on an independent
        generator (1.6-1.8 times random's expected finds, short of the 2x aimed for), and an
        ensemble's mean prediction better than one model's.
    ``"uncertainty"``
        Where the model knows least: the per-condition uncertainty of the prediction
        (``obs["uncertainty"]``, else the mean of ``layers["uncertainty"]``). Needs a model that
        predicts an uncertainty (an ensemble or ``uncertainty=True``); otherwise a ``ValueError``.
    ``"coverage"``
        A diverse batch over the knowledge graph: greedy max-min distance in the model's
        perturbation embedding (a condition is the sum of its genes' embeddings, as the model
        fuses them). Each pick is the candidate farthest from every measured condition and every
        earlier pick, so that each measurement teaches the model about many unmeasured genes.
    A mapping such as ``{"interactions": 1, "coverage": 1}``
        A weighted sum of the objectives' percentile ranks among the candidates (each in [0, 1]);
        the coverage term is re-ranked after every pick, so the batch mixes strong candidates with
        diverse ones.

    Parameters
    ----------
    model
        A trained :class:`~scgears.model.GEARS` or :class:`~scgears.model.GEARSEnsemble` (the
        registry, graph and embedding of its first member stand for it).
    candidates
        Conditions to choose from (gene lists or labels). Default: every single and every pair over
        the screen's perturbed genes that the model can predict and that has no measured cells.
    budget
        How many conditions to recommend.
    objective
        ``"interactions"``, ``"uncertainty"``, ``"coverage"`` or a mapping of them to weights.
    exclude
        Conditions never to recommend (e.g. already planned or infeasible).
    random_state
        Breaks ties between equal scores reproducibly.
    batch_size
        Conditions per forward pass of the model.
    key_added
        The table is also written to ``model.adata.uns[key_added]``.

    Returns
    -------
    DataFrame indexed by condition label, one row per recommended condition in pick order:
    ``rank``, ``genes``, ``n_perturbed_genes``, ``score`` (the objective's, or the combined one),
    one column per objective used (``interactions``, ``uncertainty``, ``coverage``), under
    ``"interactions"`` its three factors (``predicted_nonadditivity``, ``detectability``,
    ``hub_propensity``; 0 for singles) and for pairs the predicted GI ``subtype`` and
    ``confidence`` of :func:`~scgears.tl.genetic_interactions` on the predicted profiles when it
    provides them (``confidence`` is NaN without a model uncertainty: see that function).

    Examples
    --------
    >>> table = sg.tl.recommend(model, budget=10, objective="interactions")  # doctest: +SKIP
    >>> table = sg.tl.recommend(
    ...     model, budget=20, objective={"interactions": 1, "coverage": 1}
    ... )  # doctest: +SKIP
    """
    weights = _objective_weights(objective)
    if not isinstance(budget, int | np.integer) or budget < 1:
        raise ValueError(f"budget must be a positive integer, got {budget!r}.")
    adata = model.adata
    labels = _candidates(model, candidates, exclude)
    if not labels:
        raise ValueError(
            "No candidate conditions left: every candidate is measured or excluded. Pass "
            "candidates= with conditions that have no measured cells."
        )
    budget = min(int(budget), len(labels))
    logger.info("scoring %d candidate conditions (%s)", len(labels), ", ".join(weights))

    scores: dict[str, np.ndarray] = {}
    need_prediction = "interactions" in weights or "uncertainty" in weights
    prediction = _predict_with_singles(model, labels, batch_size) if need_prediction else None
    factors: dict[str, np.ndarray] = {}
    if "interactions" in weights:
        scores["interactions"], factors = _interaction_scores(model, prediction, labels)
    if "uncertainty" in weights:
        scores["uncertainty"] = _uncertainty_scores(prediction, labels)

    rng = np.random.default_rng(random_state)
    jitter = rng.random(len(labels)) * 1e-9  # reproducible tie-breaking
    if "coverage" in weights:
        picked, coverage = _greedy_coverage(model, adata, labels, budget, weights, scores, jitter)
        scores["coverage"] = coverage
        total = _combined(weights, scores, len(labels))
    else:
        total = _combined(weights, scores, len(labels))
        picked = list(np.argsort(-(total + jitter), kind="stable")[:budget])

    rows = []
    for rank, i in enumerate(picked, start=1):
        label = labels[i]
        row = {
            "rank": rank,
            "genes": list(condition_genes(label)),
            N_PERTURBED: len(condition_genes(label)),
            "score": float(total[i]),
        }
        row.update({name: float(values[i]) for name, values in scores.items()})
        row.update({name: float(values[i]) for name, values in factors.items()})
        rows.append(pd.Series(row, name=label))
    table = pd.DataFrame(rows)
    table.index.name = "condition"
    if "interactions" in weights:
        # GI calls for the picked pairs only: scoring every candidate pair is not needed
        table = table.join(_predicted_calls(prediction, list(table.index)))
    adata.uns[key_added] = table.assign(genes=table["genes"].map("+".join))
    return table


# --------------------------------------------------------------------------------------------------
# candidates


def _objective_weights(objective) -> dict[str, float]:
    if isinstance(objective, str):
        weights = {objective: 1.0}
    elif isinstance(objective, Mapping):
        weights = {str(k): float(v) for k, v in objective.items()}
    else:
        raise TypeError(
            f"objective must be one of {OBJECTIVES} or a mapping of them to weights, got "
            f"{type(objective).__name__}."
        )
    unknown = sorted(set(weights) - set(OBJECTIVES))
    if unknown:
        raise ValueError(
            f"Unknown objective(s) {unknown}: choose among {list(OBJECTIVES)} or pass a mapping "
            'such as {"interactions": 1, "coverage": 1}.'
        )
    if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"Objective weights must be non-negative with a positive sum: {weights}.")
    return {k: w for k, w in weights.items() if w > 0}


def _reference(model):
    """The model whose registry, graph and embedding stand for the ensemble (its first member)."""
    members = getattr(model, "models", None)
    return members[0] if members else model


def _registry(model) -> dict:
    return _reference(model).adata_manager.registry["setup_args"]


def _measured(model) -> set[str]:
    args = _registry(model)
    labels = get_conditions(_reference(model).adata, args["condition_key"])
    counts = pd.Series(np.asarray(labels).astype(str)).value_counts()
    return set(counts.index[counts > 0])


def _screen_genes(measured: set[str]) -> list[str]:
    return sorted({g for c in measured if c != CONTROL for g in condition_genes(c)})


def _candidates(model, candidates, exclude) -> list[str]:
    measured = _measured(model)
    perturbable = set(np.asarray(_reference(model).perturbable_genes).astype(str))
    if candidates is None:
        genes = [g for g in _screen_genes(measured) if g in perturbable]
        pool = [*genes, *(as_condition(p) for p in combinations(genes, 2))]
        pool = [c for c in pool if c not in measured]
    else:
        if isinstance(candidates, str):
            candidates = [candidates]
        pool = list(dict.fromkeys(as_condition(c) for c in candidates))
        pool = [c for c in pool if c != CONTROL]
        unknown = sorted({g for c in pool for g in condition_genes(c)} - perturbable)
        if unknown:
            raise ValueError(
                f"Candidates perturb genes the model cannot predict: {unknown[:10]}. Rebuild the "
                "perturbation graph with these genes (sg.pp.perturbation_graph(adata, genes=...)) "
                "and retrain, or drop them from candidates."
            )
    if exclude is not None:
        if isinstance(exclude, str):
            exclude = [exclude]
        dropped = {as_condition(c) for c in exclude}
        pool = [c for c in pool if c not in dropped]
    return pool


# --------------------------------------------------------------------------------------------------
# objectives


def _predict_with_singles(model, labels: list[str], batch_size: int) -> AnnData:
    singles = [g for c in labels for g in condition_genes(c)]
    wanted = list(dict.fromkeys([*labels, *singles]))
    return model.predict(wanted, batch_size=batch_size)


def _interaction_parts(prediction: AnnData, labels: list[str]):
    delta = np.asarray(prediction.layers["delta"], dtype=np.float64)
    row = {c: i for i, c in enumerate(prediction.obs_names)}
    index = [i for i, c in enumerate(labels) if len(condition_genes(c)) >= 2]
    rest = np.zeros((len(index), delta.shape[1]))
    for k, i in enumerate(index):
        genes = condition_genes(labels[i])
        rest[k] = delta[row[labels[i]]] - sum(delta[row[g]] for g in genes)
    return index, rest, row


def _interaction_scores(
    model, prediction: AnnData, labels: list[str]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The ``"interactions"`` score of every candidate and its three factors (see recommend)."""
    n = len(labels)
    parts = {name: np.zeros(n) for name in INTERACTION_FACTORS}
    index, rest, _ = _interaction_parts(prediction, labels)
    if not index:
        return np.zeros(n), parts
    parts["predicted_nonadditivity"][index] = np.sqrt((rest**2).sum(1))
    args = _registry(model)
    adata = _reference(model).adata
    key, split, layer = args["condition_key"], args["split_key"], args["layer"]
    pair_genes = [condition_genes(labels[i]) for i in index]

    singles = evidence.single_detectability(adata, key, split, layer)["detectability"]
    # a gene never measured alone: the typical measured single (no evidence either way)
    typical = float(singles.median()) if len(singles) else 1.0
    gate = np.array([np.prod([singles.get(g, typical) for g in genes]) for genes in pair_genes])
    parts["detectability"][index] = gate

    measured = evidence.measured_pairs(adata, key, split, exclude=set(labels))
    calls = evidence.pair_interaction_evidence(adata, measured, key, split, layer)
    propensity, p0, _ = evidence.gene_propensity(calls)
    base = 1.0 - (1.0 - p0) ** 2
    hub = np.array(
        [1.0 - np.prod([1.0 - propensity.get(g, p0) for g in genes]) for genes in pair_genes]
    )
    parts["hub_propensity"][index] = hub / base
    score = np.zeros(n)
    score[index] = parts["predicted_nonadditivity"][index] * gate * hub / base
    return score, parts


def _predicted_calls(prediction: AnnData, labels: list[str]) -> pd.DataFrame:
    from ._gi import genetic_interactions

    pairs = [c for c in labels if len(condition_genes(c)) == 2]
    columns = pd.DataFrame(index=pd.Index(labels))
    if not pairs:
        return columns
    gi = genetic_interactions(prediction, pairs=pairs)
    for name in ("subtype", "confidence"):
        if name in gi.columns:
            columns[name] = gi[name].reindex(columns.index)
    return columns


def _uncertainty_scores(prediction: AnnData, labels: list[str]) -> np.ndarray:
    if "uncertainty" in prediction.obs.columns:
        values = prediction.obs["uncertainty"]
    elif "uncertainty" in prediction.layers:
        values = pd.Series(
            np.asarray(prediction.layers["uncertainty"]).mean(1), index=prediction.obs_names
        )
    else:
        raise ValueError(
            'objective="uncertainty" needs a model that predicts its uncertainty: train an '
            "ensemble (several seeds) or GEARS(adata, uncertainty=True), or choose "
            'objective="interactions" or "coverage".'
        )
    return values.reindex(labels).to_numpy(dtype=np.float64)


def _embedding(model, labels: Sequence[str]) -> np.ndarray:
    table = _reference(model).get_perturbation_embedding()
    values = table.to_numpy(dtype=np.float64)
    scale = values.std(0)
    values = (values - values.mean(0)) / np.where(scale > 0, scale, 1.0)
    row = {g: i for i, g in enumerate(table.index.astype(str))}
    out = np.zeros((len(labels), values.shape[1]))
    for i, label in enumerate(labels):
        for gene in condition_genes(label):
            if gene in row:
                out[i] += values[row[gene]]
    return out


def _percentile(values: np.ndarray) -> np.ndarray:
    """Rank of each value among the candidates, scaled to [0, 1] (ties share their mean rank)."""
    if len(values) <= 1:
        return np.ones_like(values, dtype=np.float64)
    ranks = pd.Series(values).rank(method="average").to_numpy()
    return (ranks - 1) / (len(values) - 1)


def _combined(weights, scores, n) -> np.ndarray:
    if len(weights) == 1:
        (name,) = weights
        return np.asarray(scores[name], dtype=np.float64)
    total = np.zeros(n)
    for name, weight in weights.items():
        total += weight * _percentile(np.asarray(scores[name], dtype=np.float64))
    return total


def _greedy_coverage(model, adata, labels, budget, weights, scores, jitter):
    """Greedy max-min picks; with other objectives, each pick maximises the weighted ranks."""
    points = _embedding(model, labels)
    measured = sorted(_measured(model) - {CONTROL})
    anchors = _embedding(model, measured) if measured else np.zeros((1, points.shape[1]))
    nearest = np.full(len(labels), np.inf)
    for start in range(0, len(anchors), 256):
        block = anchors[start : start + 256]
        distance = np.sqrt(((points[:, None, :] - block[None, :, :]) ** 2).sum(-1))
        nearest = np.minimum(nearest, distance.min(1))
    fixed = {name: _percentile(np.asarray(s, dtype=np.float64)) for name, s in scores.items()}
    picked: list[int] = []
    coverage_at_pick = nearest.copy()
    available = np.ones(len(labels), dtype=bool)
    for _ in range(budget):
        if len(weights) == 1:
            value = nearest.copy()
        else:
            value = weights["coverage"] * _percentile(nearest)
            for name, ranks in fixed.items():
                value += weights[name] * ranks
        value = np.where(available, value + jitter, -np.inf)
        best = int(np.argmax(value))
        picked.append(best)
        coverage_at_pick[best] = nearest[best]
        available[best] = False
        distance = np.sqrt(((points - points[best]) ** 2).sum(-1))
        nearest = np.minimum(nearest, distance)
    return picked, coverage_at_pick

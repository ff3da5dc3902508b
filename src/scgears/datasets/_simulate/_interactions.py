"""Which doubles and triples are screened, and the genetic interactions planted in them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..._conditions import condition_label
from ._dynamics import N_EFFICIENCY_LEVELS, _log_fold_rows
from ._network import _Network

#: Planted genetic-interaction subtypes, in the order they are allotted to doubles.
GI_SUBTYPES = ("synergy", "suppression", "neomorphism", "redundancy", "epistasis")
ADDITIVE = "additive"
#: Default ranges of the activity multiplier of planted synergy and suppression.
SYNERGY_FACTOR = (2.5, 3.2)
SUPPRESSION_FACTOR = (0.2, 0.35)


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
    rng: np.random.Generator,
    net: _Network,
    n_doubles: int,
    n_triples: int,
    n_planted: int,
    synergy_factor: tuple[float, float] = SYNERGY_FACTOR,
    suppression_factor: tuple[float, float] = SUPPRESSION_FACTOR,
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
        ("synergy", *synergy_factor),
        ("suppression", *suppression_factor),
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

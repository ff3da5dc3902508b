"""The two-layer regulatory network whose programmes follow GO terms."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ._genes import _GoUniverse

#: Relative edge weights below this fraction of a regulator's strongest edge are dropped.
MIN_RELATIVE_WEIGHT = 0.1
MAX_TARGETS = 40


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


def _n_mediators(n_genes: int) -> int:
    return max(5, round(0.03 * n_genes))


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

"""Noise-free steady state: saturating responses of the network to perturbations."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.special import log_expit, ndtri

if TYPE_CHECKING:
    from ._interactions import _Planted
    from ._network import _Network

#: Perturbation efficiency of a cell: one of these many quantile levels of a log-normal.
N_EFFICIENCY_LEVELS = 5
EFFICIENCY_SD = 0.3


def _efficiency_levels() -> np.ndarray:
    """Per-cell multipliers of the CRISPR effect: quantile midpoints of a log-normal."""
    q = (np.arange(N_EFFICIENCY_LEVELS) + 0.5) / N_EFFICIENCY_LEVELS
    return np.exp(EFFICIENCY_SD * ndtri(q))


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

"""What was measured, as the model's starting point: single effects, on-target change, silent genes.

GEARS' network predicts every perturbation from graphs, even one whose single perturbations were
measured in training, where the additive expectation (the sum of the measured single effects) is
known to be hard to beat. The scgears variant starts from what was measured instead (see
:class:`~scgears.model.GEARSModule`, ``measured_prior``); this module gathers those statistics
from the training cells (``train`` and ``val`` conditions, never ``test``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._conditions import condition_genes
from .._constants import CONTROL
from ._data import SplitStatistics


@dataclass
class MeasuredPrior:
    """Training statistics the ``measured_prior`` model starts from.

    ``single_effect[k]`` is the measured change (condition mean minus control mean) of the training
    single of ``genes[k]``; ``single_mean`` their mean (the change assumed for a gene whose single
    was not measured, before the network's correction); ``on_target`` the mean measured change of
    a perturbed gene's own expression over the training perturbations whose genes are measured
    genes (0 when there is none); ``expressed`` the genes with a non-zero mean in some training
    condition or the control: the others are predicted exactly zero.
    """

    genes: np.ndarray
    single_effect: np.ndarray
    single_mean: np.ndarray
    on_target: float
    expressed: np.ndarray


def measured_prior(
    statistics: SplitStatistics, var_names: Sequence[str], seen_genes: np.ndarray
) -> MeasuredPrior:
    """Compute :class:`MeasuredPrior` from the ``train`` and ``val`` cells' statistics.

    ``statistics`` is the model's one pass over ``X``: no cell is read again. ``seen_genes`` (the
    model's vocabulary of genes with a training single) fixes the order of ``single_effect``.
    """
    labels = statistics.conditions
    n_cells = statistics.n_cells("train") + statistics.n_cells("val")
    sums = statistics.stats.sums[statistics.rows("train")]
    sums = sums + statistics.stats.sums[statistics.rows("val")]
    has_cells = n_cells > 0
    means = np.zeros_like(sums, dtype=np.float64)
    means[has_cells] = sums[has_cells] / n_cells[has_cells, None]
    control = means[statistics.control_code]
    expressed = (means[has_cells] != 0).any(axis=0)

    single_row = {
        condition_genes(label)[0]: i
        for i, label in enumerate(labels)
        if has_cells[i] and len(condition_genes(label)) == 1
    }
    missing = [g for g in seen_genes if g not in single_row]
    if missing:
        raise ValueError(
            f"Genes {missing[:10]} are listed as seen but have no training single; rebuild the "
            "model after sg.pp.split_perturbations."
        )
    n_genes = means.shape[1]
    rows = [single_row[g] for g in seen_genes]
    single_effect = means[rows] - control if rows else np.zeros((0, n_genes))
    single_mean = single_effect.mean(axis=0) if rows else np.zeros(n_genes)

    column = {g: j for j, g in enumerate(np.asarray(var_names).astype(str))}
    changes = [
        means[i, column[g]] - control[column[g]]
        for i, label in enumerate(labels)
        if has_cells[i] and label != CONTROL
        for g in condition_genes(label)
        if g in column
    ]
    on_target = float(np.mean(changes)) if changes else 0.0
    return MeasuredPrior(
        genes=np.asarray(seen_genes, dtype=str),
        single_effect=single_effect.astype(np.float32),
        single_mean=single_mean.astype(np.float32),
        on_target=on_target,
        expressed=expressed,
    )


@dataclass
class PriorNoise:
    """How far the measured prior itself can be off, per gene: the variances of its parts.

    ``single_noise[k]``: the sampling variance of ``single_effect[k]`` (the variance of the mean of
    the single's cells plus that of the control mean); ``single_spread``: the variance of the
    measured single effects across genes, the error of the mean single effect as a guess for a
    gene never measured; ``interaction``: the variance of a pair's departure from the sum of its
    measured singles over the training pairs, net of their sampling noise (method of moments,
    clipped at 0; ``single_spread`` when no training pair has both singles measured). See
    :class:`~scgears.model.GEARSEnsemble`.
    """

    genes: np.ndarray
    single_noise: np.ndarray
    single_spread: np.ndarray
    interaction: np.ndarray

    def variance(self, conditions: Sequence[str]) -> np.ndarray:
        """(conditions, genes) variance the prior leaves unknown; 0 for the control.

        The sum over a condition's genes of ``single_noise`` (measured) or ``single_spread`` (not
        measured), plus ``interaction`` for a condition of two genes or more.
        """
        row = {g: k for k, g in enumerate(self.genes)}
        out = np.zeros((len(conditions), self.single_spread.shape[0]))
        for i, label in enumerate(conditions):
            genes = [] if label == CONTROL else condition_genes(label)
            for g in genes:
                out[i] += self.single_noise[row[g]] if g in row else self.single_spread
            if len(genes) > 1:
                out[i] += self.interaction
        return out


def prior_noise(statistics: SplitStatistics, seen_genes: np.ndarray) -> PriorNoise:
    """Compute :class:`PriorNoise` from the ``train`` and ``val`` cells' statistics."""
    labels = statistics.conditions
    stats = statistics.stats
    n = statistics.n_cells("train") + statistics.n_cells("val")
    sums = stats.sums[statistics.rows("train")] + stats.sums[statistics.rows("val")]
    squares = stats.sums_sq[statistics.rows("train")] + stats.sums_sq[statistics.rows("val")]
    has_cells = n > 0
    means = np.zeros_like(sums, dtype=np.float64)
    means[has_cells] = sums[has_cells] / n[has_cells, None]
    # variance of each condition's mean: sample variance / cells (a lone cell: no estimate, 0)
    n_col = n[:, None].astype(np.float64)
    variance = np.maximum(squares - n_col * means**2, 0) / np.maximum(n_col - 1, 1)
    mean_noise = np.where(n_col > 1, variance / np.maximum(n_col, 1), 0.0)
    control = statistics.control_code
    change = means - means[control]
    noise = mean_noise + mean_noise[control]  # variance of (condition mean - control mean)

    single_row = {
        condition_genes(label)[0]: i
        for i, label in enumerate(labels)
        if has_cells[i] and len(condition_genes(label)) == 1 and label != CONTROL
    }
    rows = [single_row[g] for g in seen_genes]
    n_genes = means.shape[1]
    single_noise = noise[rows] if rows else np.zeros((0, n_genes))
    spread = change[rows].var(axis=0, ddof=1) if len(rows) > 1 else np.zeros(n_genes)
    departures = []
    for i, label in enumerate(labels):
        genes = condition_genes(label)
        if not has_cells[i] or len(genes) < 2 or any(g not in single_row for g in genes):
            continue
        singles = [single_row[g] for g in genes]
        residual = change[i] - change[singles].sum(axis=0)
        # E[residual^2] = interaction^2 + the sampling noise of the pair's and singles' means
        # and of the control mean, which enters the residual (k - 1) times
        sampling = mean_noise[i] + mean_noise[singles].sum(axis=0)
        sampling = sampling + (len(genes) - 1) ** 2 * mean_noise[control]
        departures.append(residual**2 - sampling)
    interaction = np.maximum(np.mean(departures, axis=0), 0) if departures else spread
    return PriorNoise(
        genes=np.asarray(seen_genes, dtype=str),
        single_noise=single_noise.astype(np.float32),
        single_spread=spread.astype(np.float32),
        interaction=np.asarray(interaction, dtype=np.float32),
    )

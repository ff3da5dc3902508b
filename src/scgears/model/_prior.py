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

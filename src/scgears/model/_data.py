"""The model's view of the AnnData: per-condition statistics computed once, and the data module.

Everything the model learns from cells goes through :class:`SplitStatistics`: per condition and
split part, the cell count, the sums and the sums of squares of expression, gathered in ONE chunked
pass over ``X`` (sparse, dense or backed). The control mean, the mean effect, the loss mask, the
sufficient statistics of the training loss and the no-change baseline of validation are all read
from it. The cell-level loaders (the paper's autofocus loss) read only the rows a batch needs.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from torch.utils.data import DataLoader

from .._anndata import get_conditions
from .._constants import CONTROL
from .._matrix import GroupStats, expression_matrix, group_stats
from ._loaders import ConditionBatches, StatisticsBatches

logger = logging.getLogger(__name__)

PARTS = ("train", "val")


def _digest(*arrays) -> str:
    h = hashlib.sha1()
    for array in arrays:
        array = np.ascontiguousarray(np.asarray(array))
        if array.dtype.kind in "OUS":
            array = np.asarray(array, dtype=str).astype("U")
        h.update(str(array.shape).encode())
        h.update(array.tobytes())
    return h.hexdigest()[:16]


def data_fingerprint(
    adata: AnnData, *, condition_key: str, split_key: str, coexpression_key: str, graph_key: str
) -> dict[str, str]:
    """Short hashes of what the model's statistics and graphs were built from.

    Compared at :meth:`~scgears.model.GEARS.train` with the values recorded when the model was
    created, so that re-running ``split_perturbations`` (or rebuilding a graph, or re-registering
    the conditions) afterwards is an error instead of a silent leak of test cells.
    """
    conditions = get_conditions(adata, condition_key)
    stored = adata.uns.get(graph_key, {})
    coexpression = (
        sp.csr_matrix(adata.varp[coexpression_key]) if coexpression_key in adata.varp else None
    )
    return {
        "genes": _digest(np.asarray(adata.var_names).astype(str)),
        "conditions": _digest(np.asarray(conditions).astype(str)),
        "split": _digest(adata.obs[split_key].astype(str).to_numpy())
        if split_key in adata.obs
        else "",
        "coexpression": ""
        if coexpression is None
        else _digest(coexpression.indptr, coexpression.indices, coexpression.data),
        "perturbation_graph": _digest(
            np.asarray(stored.get("genes", [])).astype(str),
            sp.csr_matrix(stored["graph"]).indices if "graph" in stored else [],
            sp.csr_matrix(stored["graph"]).data if "graph" in stored else [],
        ),
    }


#: What to rerun when one fingerprint entry changed.
FINGERPRINT_FIX = {
    "genes": "the AnnData's genes changed",
    "conditions": "obs[condition_key] changed (sg.pp.register_perturbations was re-run?)",
    "split": "obs[split_key] changed (sg.pp.split_perturbations was re-run?)",
    "coexpression": "varp[coexpression_key] changed (sg.pp.coexpression_graph was re-run?)",
    "perturbation_graph": "the perturbation graph changed (sg.pp.perturbation_graph was re-run?)",
}


@dataclass(frozen=True)
class SplitStatistics:
    """Per-condition statistics of the ``train`` and ``val`` cells, from one pass over ``X``.

    Row ``p * n_conditions + c`` of ``stats`` holds condition ``c`` in part ``PARTS[p]``.
    """

    conditions: list[str]
    codes: np.ndarray  # (cells,) condition of each cell, -1 for cells in no training part
    split: np.ndarray  # (cells,) "train" / "val" / "test"
    stats: GroupStats

    @classmethod
    def from_anndata(
        cls, adata: AnnData, *, condition_key: str, split_key: str, layer: str | None
    ) -> SplitStatistics:
        conditions = get_conditions(adata, condition_key)
        if split_key not in adata.obs.columns:
            raise KeyError(
                f"obs[{split_key!r}] not found: split the perturbations with "
                "`sg.pp.split_perturbations(adata)`."
            )
        split = adata.obs[split_key].astype(str).to_numpy()
        labels = [str(c) for c in conditions.categories]
        codes = np.asarray(conditions.codes).astype(np.int64)
        part = np.full(len(codes), -1)
        for p, name in enumerate(PARTS):
            part[split == name] = p
        used = (part >= 0) & (codes >= 0)
        groups = np.where(used, part * len(labels) + codes, -1)
        index = pd.Index([f"{name}:{label}" for name in PARTS for label in labels])
        # the model never reads non-zero counts: not counting them saves a (2 x conditions x
        # genes) float64 array
        stats = group_stats(expression_matrix(adata, layer), groups, index, nonzero=False)
        return cls(labels, np.where(used, codes, -1), split, stats)

    @property
    def n_conditions(self) -> int:
        return len(self.conditions)

    @property
    def control_code(self) -> int:
        return self.conditions.index(CONTROL)

    def rows(self, part: str) -> slice:
        p = PARTS.index(part)
        return slice(p * self.n_conditions, (p + 1) * self.n_conditions)

    def n_cells(self, part: str) -> np.ndarray:
        """(conditions,) cells of each condition in ``part``."""
        return self.stats.n_cells[self.rows(part)]

    def means(self, part: str) -> np.ndarray:
        rows = self.rows(part)  # only this part's rows: no full-size temporary
        return self.stats.sums[rows] / np.maximum(self.stats.n_cells[rows], 1)[:, None]

    def variances(self, part: str, rows: slice | None = None) -> np.ndarray:
        """Population variances (``ddof=0``): the within-condition term of the squared error.

        ``rows`` selects conditions (all by default); only those are computed, so that a screen
        of 10,000 conditions x 8,000 genes needs no full-size float64 temporaries.
        """
        rows = slice(None) if rows is None else rows
        start = self.rows(part).start
        select = slice(
            start + (rows.start or 0),
            start + min(self.n_conditions, self.n_conditions if rows.stop is None else rows.stop),
        )
        n = self.stats.n_cells[select, None].astype(np.float64)
        mean = self.stats.sums[select] / np.maximum(n, 1)
        return np.maximum((self.stats.sums_sq[select] - n * mean**2) / np.maximum(n, 1), 0.0)

    def training_targets(self, part: str, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Targets and variances of the statistics loss for the conditions of ``part``.

        Per condition: its mean minus the training control mean, and the variance of the squared
        error under random control pairing (the condition's plus the controls'); float32,
        (conditions, genes) each, computed ``block`` conditions at a time.
        """
        control = self.control_mean()
        control_var = self.variances("train", slice(self.control_code, self.control_code + 1))[0]
        n_genes = self.stats.sums.shape[1]
        target = np.empty((self.n_conditions, n_genes), dtype=np.float32)
        variance = np.empty((self.n_conditions, n_genes), dtype=np.float32)
        sums = self.stats.sums[self.rows(part)]
        n_cells = self.n_cells(part)
        for start in range(0, self.n_conditions, block):
            rows = slice(start, start + block)
            means = sums[rows] / np.maximum(n_cells[rows], 1)[:, None]
            target[rows] = means - control
            variance[rows] = self.variances(part, rows) + control_var
        return target, variance

    def control_mean(self) -> np.ndarray:
        """Mean expression of the training control cells."""
        control = self.control_code
        if self.n_cells("train")[control] == 0:
            raise ValueError(
                "No control cells in the training set: sg.pp.split_perturbations always puts "
                "'ctrl' in train; re-run it (and check that control cells are registered as "
                "'ctrl')."
            )
        row = self.rows("train").start + control
        return self.stats.sums[row] / max(int(self.stats.n_cells[row]), 1)

    def mean_effect(self) -> np.ndarray:
        """Unweighted mean over the train and val perturbations of (condition mean - control).

        The "train mean" baseline's change, which ``residual`` models start from. Like every
        statistic scgears fits, it never sees a test cell.
        """
        n = self.n_cells("train") + self.n_cells("val")
        sums = self.stats.sums[self.rows("train")] + self.stats.sums[self.rows("val")]
        perturbed = [i for i in range(self.n_conditions) if i != self.control_code and n[i] > 0]
        if not perturbed:
            return np.zeros(self.stats.sums.shape[1])
        means = sums[perturbed] / n[perturbed, None]
        return (means - self.control_mean()).mean(0)

    def expressed(self) -> np.ndarray:
        """(conditions, genes) genes with a non-zero mean over the condition's train+val cells."""
        sums = self.stats.sums[self.rows("train")] + self.stats.sums[self.rows("val")]
        return sums != 0


@dataclass
class TrainingData:
    """What the loaders need, prepared once per training run by :class:`~scgears.model.GEARS`."""

    matrix: object  # expression (cells x genes): in-memory or backed
    statistics: SplitStatistics
    condition_nodes: np.ndarray  # (conditions, max genes) perturbation-graph nodes, -1 padded
    de_index: np.ndarray  # (conditions, n_de) positions of the top DE genes, -1 padded
    cells: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self):
        s = self.statistics
        self.conditions = s.conditions
        self.control_code = s.control_code
        self.condition_codes = s.codes
        self.split = s.split
        self.expressed = s.expressed()
        self.control_cells = np.flatnonzero((s.codes == s.control_code) & (s.split == "train"))
        for part in PARTS:
            rows = np.flatnonzero((s.split == part) & (s.codes >= 0))
            codes = s.codes[rows]
            order = np.argsort(codes, kind="stable")
            bounds = np.flatnonzero(np.diff(codes[order])) + 1
            groups = np.split(rows[order], bounds)
            self.cells[part] = {int(s.codes[g[0]]): g for g in groups if len(g)}
        for part in PARTS:
            perturbed = set(self.cells[part]) - {self.control_code}
            if not perturbed:
                raise ValueError(
                    f"The split has no perturbed {part} condition; GEARS needs both train and val "
                    "conditions. Re-run sg.pp.split_perturbations."
                )

    @classmethod
    def from_anndata(
        cls, adata: AnnData, statistics: SplitStatistics, *, de_key: str, layer: str | None, encode
    ) -> TrainingData:
        """Node rows, DE genes and the matrix, on top of statistics computed beforehand."""
        labels = statistics.conditions
        nodes = encode(labels)
        de = adata.uns[de_key]["top_genes"]
        position = {g: i for i, g in enumerate(adata.var_names)}
        n_de = max([len(v) for v in de.values()] or [1])
        de_index = np.full((len(labels), n_de), -1, dtype=np.int64)
        for i, label in enumerate(labels):
            genes = [position[g] for g in de.get(label, []) if g in position]
            de_index[i, : len(genes)] = genes
        return cls(expression_matrix(adata, layer), statistics, nodes, de_index)

    def codes(self, part: str) -> list[int]:
        """Conditions with cells in ``part``, in code order."""
        return sorted(self.cells[part])

    def perturbed_nodes(self, part: str) -> np.ndarray:
        """Node rows of the perturbed conditions with cells in ``part``."""
        codes = [c for c in self.codes(part) if c != self.control_code]
        return self.condition_nodes[codes]

    def n_cells(self, part: str) -> int:
        """Number of cells in ``part`` (``"train"`` or ``"val"``)."""
        return int(self.statistics.n_cells(part).sum())


class PerturbationDataSplitter(pl.LightningDataModule):
    """Lightning data module for GEARS; the split comes from ``split_perturbations``.

    It has the constructor signature scvi-tools' training mixin calls; ``train_size`` and
    ``validation_size`` must stay ``None`` because the split is set per condition beforehand.

    Parameters
    ----------
    adata_manager
        The model's AnnData manager (kept for scvi-tools' interface).
    batch_size
        Cells per training step (about ``batch_size / cells_per_condition`` conditions).
    training_data
        Prepared by the model.
    cells_per_condition
        Cells of one condition per step.
    min_steps_per_epoch
        Fewest optimiser steps in an epoch (an epoch repeats its visit of the training data
        until it has them; 1, the default, is one visit).
    statistics
        Batches of per-condition sufficient statistics instead of cells (see
        :meth:`~scgears.model.GEARS.train`).
    seed
        Seed of the batch plan and the control pairing.
    """

    def __init__(
        self,
        adata_manager=None,
        train_size: float | None = None,
        validation_size: float | None = None,
        batch_size: int = 512,
        shuffle_set_split: bool = True,
        distributed_sampler: bool = False,
        load_sparse_tensor: bool = False,
        *,
        training_data: TrainingData,
        cells_per_condition: int = 32,
        min_steps_per_epoch: int = 1,
        statistics: bool = True,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__()
        if train_size is not None or validation_size is not None:
            raise ValueError(
                "GEARS trains on the split written by sg.pp.split_perturbations; train_size and "
                "validation_size cannot be set. Re-run split_perturbations to change it."
            )
        if kwargs:
            raise TypeError(f"Unexpected data splitter arguments: {sorted(kwargs)}")
        self.adata_manager = adata_manager
        self.data = training_data
        self.batch_size = batch_size
        self.cells_per_condition = cells_per_condition
        self.seed = seed
        self.n_train = training_data.n_cells("train")
        self.n_val = training_data.n_cells("val")
        per_batch = batch_size // cells_per_condition
        kind = StatisticsBatches if statistics else ConditionBatches
        common = {"conditions_per_batch": per_batch, "seed": seed}
        if not statistics:
            common["cells_per_condition"] = cells_per_condition
        self._train = kind(
            training_data, "train", shuffle=True, min_steps=min_steps_per_epoch, **common
        )
        self._val = kind(training_data, "val", shuffle=False, **common)

    def set_epoch(self, epoch: int) -> None:
        """Plan the batches of ``epoch`` (called by the training plan; resumed runs continue)."""
        self._train.epoch = epoch

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self._train, batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self._val, batch_size=None, num_workers=0)

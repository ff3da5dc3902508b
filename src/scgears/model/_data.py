"""Batches of conditions for GEARS: the split, the control pairing and the loaders.

A batch is a set of conditions, each with a sample of its cells, and each cell paired with a random
training control cell (a control cell is paired with itself, as in GEARS). Only the rows a batch
needs are read from the expression matrix, so backed AnnData trains without loading ``X``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from .._matrix import read_rows

logger = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """What the loaders need, prepared once per training run by :class:`~scgears.model.GEARS`."""

    matrix: object  # expression (cells x genes): in-memory or backed
    condition_codes: np.ndarray  # (cells,) index into `conditions`, -1 for cells not used
    conditions: list[str]
    condition_nodes: np.ndarray  # (conditions, max genes) perturbation-graph nodes, -1 padded
    split: np.ndarray  # (cells,) "train" / "val" / "test"
    expressed: np.ndarray  # (conditions, genes) bool: genes with a non-zero mean (loss mask)
    control_cells: np.ndarray  # training control cells that perturbed cells are paired with
    de_index: np.ndarray  # (conditions, n_de) positions of the top DE genes, -1 padded
    control_code: int
    cells: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self):
        for part in ("train", "val"):
            rows = np.flatnonzero((self.split == part) & (self.condition_codes >= 0))
            codes = self.condition_codes[rows]
            order = np.argsort(codes, kind="stable")
            bounds = np.flatnonzero(np.diff(codes[order])) + 1
            groups = np.split(rows[order], bounds)
            self.cells[part] = {int(self.condition_codes[g[0]]): g for g in groups if len(g)}

    def perturbed_nodes(self, part: str) -> np.ndarray:
        """Node rows of the perturbed conditions with cells in ``part``."""
        codes = sorted(c for c in self.cells[part] if c != self.control_code)
        return self.condition_nodes[codes]

    def n_cells(self, part: str) -> int:
        """Number of cells in ``part`` (``"train"`` or ``"val"``)."""
        return int(sum(len(v) for v in self.cells[part].values()))


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ConditionBatches(IterableDataset):
    """Iterates over batches of conditions; one item is a whole collated batch.

    Training (``shuffle=True``): in a pass, each condition's cells are shuffled and cut into
    chunks of ``cells_per_condition``, the chunks are shuffled and grouped ``conditions_per_batch``
    at a time, so every training cell is seen once. An epoch is one pass, or as many passes as
    it takes to make ``min_steps`` steps: small screens would otherwise get too few optimiser
    steps to learn anything in a few epochs. Validation (``shuffle=False``):
    whole conditions, in a fixed order, with a fixed pairing. Under distributed training each
    process takes every ``world_size``-th training batch (the same number on every process) and
    all validation batches.
    """

    def __init__(
        self,
        data: TrainingData,
        part: str,
        *,
        conditions_per_batch: int,
        cells_per_condition: int,
        shuffle: bool,
        seed: int,
        min_steps: int = 1,
    ):
        super().__init__()
        self.data = data
        self.part = part
        self.conditions_per_batch = max(2, conditions_per_batch)
        self.cells_per_condition = cells_per_condition
        self.shuffle = shuffle
        self.seed = seed
        self.min_steps = max(1, min_steps)
        self.epoch = 0
        self._planned: tuple[int, list] | None = None

    def _plan(self, rng: np.random.Generator) -> list[list[tuple[int, np.ndarray]]]:
        groups = self.data.cells[self.part]
        if not self.shuffle:
            items = [(code, cells) for code, cells in sorted(groups.items())]
            return [
                items[i : i + self.conditions_per_batch]
                for i in range(0, len(items), self.conditions_per_batch)
            ]
        batches: list[list[tuple[int, np.ndarray]]] = []
        while True:  # passes over the training cells, until the epoch has its minimum of steps
            batches += self._one_pass(groups, rng)
            if len(batches) >= self.min_steps:
                return batches

    def _one_pass(self, groups, rng: np.random.Generator) -> list[list[tuple[int, np.ndarray]]]:
        chunks: list[tuple[int, np.ndarray]] = []
        for code, cells in sorted(groups.items()):
            cells = rng.permutation(cells)
            chunks += [
                (code, cells[i : i + self.cells_per_condition])
                for i in range(0, len(cells), self.cells_per_condition)
            ]
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
        batches: list[list[tuple[int, np.ndarray]]] = []
        for i in range(0, len(chunks), self.conditions_per_batch):
            batch = _merge(chunks[i : i + self.conditions_per_batch])
            if len(batch) < 2 and batches:
                # batch norm over conditions needs at least two of them
                batches[-1] = _merge(batches[-1] + batch)
            else:
                batches.append(batch)
        return batches

    def _batches(self) -> list[list[tuple[int, np.ndarray]]]:
        """The batches of the current epoch for this process (planned once per epoch)."""
        if self._planned is None or self._planned[0] != self.epoch:
            rng = np.random.default_rng([self.seed, self.epoch])
            batches = self._plan(rng)
            rank, world = _world()
            # Validation is not sharded: every process scores all validation conditions (cheap),
            # so the metric reduced over processes is the plain mean, however few they are.
            if world > 1 and self.shuffle:
                n_each = len(batches) // world
                if n_each == 0:
                    raise ValueError(
                        f"{len(batches)} training batches cannot be shared by {world} processes: "
                        "lower batch_size, raise min_steps_per_epoch or use fewer devices."
                    )
                batches = batches[rank : n_each * world : world]
            self._planned = (self.epoch, batches)
        return self._planned[1]

    def __len__(self) -> int:
        return len(self._batches())

    def __iter__(self):
        batches = self._batches()
        rank, _ = _world()
        for number, batch in enumerate(batches):
            rng = np.random.default_rng([self.seed, self.epoch, rank, number, 1])
            yield self._collate(batch, rng)
        if self.shuffle:  # the next epoch gets a new plan and a new control pairing
            self.epoch += 1

    def _collate(self, batch, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        data = self.data
        codes = np.array([code for code, _ in batch], dtype=np.int64)
        cells = np.concatenate([cells for _, cells in batch])
        index = np.concatenate([np.full(len(c), i) for i, (_, c) in enumerate(batch)])
        is_control = codes[index] == data.control_code
        paired = cells.copy()
        n_perturbed = int((~is_control).sum())
        if n_perturbed:
            paired[~is_control] = rng.choice(data.control_cells, n_perturbed, replace=True)
        rows = read_rows(data.matrix, np.concatenate([cells, paired[~is_control]]))
        x = rows[: len(cells)]
        x_control = x.copy()
        x_control[~is_control] = rows[len(cells) :]
        expressed = data.expressed[codes].copy()
        expressed[codes == data.control_code] = True
        return {
            "perturbations": torch.from_numpy(data.condition_nodes[codes]),
            "condition_index": torch.from_numpy(index.astype(np.int64)),
            "x": torch.from_numpy(x),
            "x_control": torch.from_numpy(x_control),
            "expressed": torch.from_numpy(expressed),
            "de_index": torch.from_numpy(data.de_index[codes]),
        }


def _merge(batch: list[tuple[int, np.ndarray]]) -> list[tuple[int, np.ndarray]]:
    merged: dict[int, list[np.ndarray]] = {}
    for code, cells in batch:
        merged.setdefault(code, []).append(cells)
    return [(code, np.concatenate(parts)) for code, parts in merged.items()]


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
        Fewest optimiser steps in an epoch (small screens repeat their cells to reach it).
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
        min_steps_per_epoch: int = 50,
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
        if batch_size < 2 * cells_per_condition:
            raise ValueError(
                f"batch_size ({batch_size}) must hold at least two conditions of "
                f"cells_per_condition ({cells_per_condition}) cells."
            )
        self.adata_manager = adata_manager
        self.data = training_data
        self.batch_size = batch_size
        self.cells_per_condition = cells_per_condition
        self.seed = seed
        self.n_train = training_data.n_cells("train")
        self.n_val = training_data.n_cells("val")
        self._train = ConditionBatches(
            training_data,
            "train",
            conditions_per_batch=batch_size // cells_per_condition,
            cells_per_condition=cells_per_condition,
            shuffle=True,
            seed=seed,
            min_steps=min_steps_per_epoch,
        )
        self._val = ConditionBatches(
            training_data,
            "val",
            conditions_per_batch=batch_size // cells_per_condition,
            cells_per_condition=cells_per_condition,
            shuffle=False,
            seed=seed,
        )

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self._train, batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self._val, batch_size=None, num_workers=0)

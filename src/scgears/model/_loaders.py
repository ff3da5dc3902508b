"""Batches of conditions for GEARS: of per-condition statistics, or of cells paired with controls.

Both kinds plan an epoch the same way: a seeded shuffle of the training items cut into batches of
``conditions_per_batch`` conditions, repeated until the epoch has ``min_steps`` optimiser steps
(small screens would otherwise learn nothing in a few epochs). Under distributed training each
process takes every ``world_size``-th training batch (the same number on every process) and all
validation batches (cheap, so the metric reduced over processes is the plain mean).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import IterableDataset

from .._matrix import read_rows


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class _Batches(IterableDataset):
    """Shared planning, sharding and iteration; subclasses define one pass and the collation."""

    def __init__(
        self,
        data,
        part: str,
        *,
        conditions_per_batch: int,
        shuffle: bool,
        seed: int,
        min_steps: int = 1,
    ):
        super().__init__()
        self.data = data
        self.part = part
        self.conditions_per_batch = max(2, conditions_per_batch)
        self.shuffle = shuffle
        self.seed = seed
        self.min_steps = max(1, min_steps)
        self.epoch = 0
        self._planned: tuple[int, list] | None = None

    def _one_pass(self, rng: np.random.Generator) -> list:
        raise NotImplementedError

    def _fixed(self) -> list:
        raise NotImplementedError

    def _collate(self, batch, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _batches(self) -> list:
        """The batches of the current epoch for this process (planned once per epoch)."""
        if self._planned is None or self._planned[0] != self.epoch:
            if not self.shuffle:
                batches = self._fixed()
            else:
                rng = np.random.default_rng([self.seed, self.epoch])
                batches = []
                while len(batches) < self.min_steps:
                    batches += self._one_pass(rng)
                rank, world = _world()
                if world > 1:
                    n_each = len(batches) // world
                    if n_each == 0:
                        raise ValueError(
                            f"{len(batches)} training batches cannot be shared by {world} "
                            "processes: lower batch_size, raise min_steps_per_epoch or use fewer "
                            "devices."
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
        if self.shuffle:  # the next epoch gets a new plan (the training plan also sets it)
            self.epoch += 1

    def _cut(self, items: list) -> list[list]:
        """Cut items into batches; a last batch of one condition joins the previous one."""
        batches: list[list] = []
        for i in range(0, len(items), self.conditions_per_batch):
            batch = self._merge(items[i : i + self.conditions_per_batch])
            if len(batch) < 2 and batches:
                # batch norm over conditions needs at least two of them
                batches[-1] = self._merge(batches[-1] + batch)
            else:
                batches.append(batch)
        return batches

    @staticmethod
    def _merge(batch: list) -> list:
        return batch


class StatisticsBatches(_Batches):
    """Batches of per-condition sufficient statistics: no cell is read while training.

    An item is a condition code. A training pass visits every training condition once; an
    "epoch" is as many passes as it takes to reach ``min_steps`` steps. The target of a condition
    is its mean minus the training control mean (the expected pairing of GEARS' random control
    cells), its variance the sum of the condition's and the controls' (the within-condition part
    of the squared error under that pairing); the control is paired with itself, so its target
    and variance are zero.
    """

    def __init__(self, data, part: str, **kwargs):
        super().__init__(data, part, **kwargs)
        s = data.statistics
        self._target, self._variance = s.training_targets(part)
        self._target[s.control_code] = 0.0
        self._variance[s.control_code] = 0.0
        self._n = s.n_cells(part).astype(np.float32)

    def _one_pass(self, rng):
        codes = np.array(self.data.codes(self.part))
        return self._cut(list(codes[rng.permutation(len(codes))]))

    def _fixed(self):
        return self._cut(self.data.codes(self.part))

    def _collate(self, batch, rng) -> dict[str, torch.Tensor]:
        data = self.data
        codes = np.asarray(batch, dtype=np.int64)
        expressed = data.expressed[codes].copy()
        expressed[codes == data.control_code] = True
        return {
            "perturbations": torch.from_numpy(data.condition_nodes[codes]),
            "target": torch.from_numpy(self._target[codes]),
            "variance": torch.from_numpy(self._variance[codes]),
            "n_cells": torch.from_numpy(self._n[codes]),
            "expressed": torch.from_numpy(expressed),
            "de_index": torch.from_numpy(data.de_index[codes]),
        }


class ConditionBatches(_Batches):
    """Batches of cells, each paired with a random training control cell (GEARS' pairing).

    In a training pass, each condition's cells are shuffled and cut into chunks of
    ``cells_per_condition``, the chunks are shuffled and grouped ``conditions_per_batch`` at a
    time, so every training cell is seen once. Validation: whole conditions in a fixed order.
    A control cell is paired with itself, as in GEARS. Only the rows a batch needs are read, so
    backed AnnData trains without loading ``X``.
    """

    def __init__(self, data, part: str, *, cells_per_condition: int, **kwargs):
        super().__init__(data, part, **kwargs)
        self.cells_per_condition = cells_per_condition

    def _fixed(self):
        items = sorted(self.data.cells[self.part].items())
        return [
            items[i : i + self.conditions_per_batch]
            for i in range(0, len(items), self.conditions_per_batch)
        ]

    def _one_pass(self, rng):
        chunks: list[tuple[int, np.ndarray]] = []
        for code, cells in sorted(self.data.cells[self.part].items()):
            cells = rng.permutation(cells)
            chunks += [
                (code, cells[i : i + self.cells_per_condition])
                for i in range(0, len(cells), self.cells_per_condition)
            ]
        return self._cut([chunks[i] for i in rng.permutation(len(chunks))])

    @staticmethod
    def _merge(batch):
        merged: dict[int, list[np.ndarray]] = {}
        for code, cells in batch:
            merged.setdefault(code, []).append(cells)
        return [(code, np.concatenate(parts)) for code, parts in merged.items()]

    def _collate(self, batch, rng) -> dict[str, torch.Tensor]:
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

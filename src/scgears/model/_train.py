"""GEARS.train: checks, the choice of statistics or cells, checkpoints, a quiet Lightning."""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Literal

import torch

from .._constants import CONTROL
from .._threads import training_threads
from ._callbacks import KeepEpoch
from ._data import FINGERPRINT_FIX, SplitStatistics, TrainingData

logger = logging.getLogger(__name__)

#: Lightning loggers whose INFO lines (devices found, an advertisement, model summary) go to
#: stderr on every training; scgears raises them to WARNING while it trains.
_LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.pytorch.accelerators.cuda",
    "lightning.fabric.utilities.rank_zero",
    "lightning.fabric.utilities.seed",
)

#: Lightning's warnings that concern its own defaults, not the user's data or settings.
_LIGHTNING_NOISE = (
    r".*IterableDataset. has .__len__. defined",
    r".*smaller than the logging interval",
    r".*isinstance\(treespec, LeafSpec\)",
    r".*does not have many workers",
    r".*litmodels",
)


@contextlib.contextmanager
def quiet_lightning(verbose: bool = False):
    """Silence Lightning's informational stderr lines (progress bars are not logging)."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in _LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in _LIGHTNING_NOISE:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _check_positive_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _last_checkpoint(dirpath: Path):
    """Lightning's checkpoint of the last epoch, as a callback scvi-tools' trainer accepts.

    scvi-tools' trainer enables checkpointing only for its own ``SaveCheckpoint`` class, which
    also saves a whole model folder per checkpoint; this subclass keeps Lightning's plain
    ``last.ckpt`` (weights, optimiser, epoch, callbacks' state) and nothing else.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint
    from scvi.train import SaveCheckpoint

    class LastCheckpoint(SaveCheckpoint):
        def __init__(self):
            ModelCheckpoint.__init__(self, dirpath=dirpath, save_last=True, save_top_k=1)
            self.load_best_on_end = False
            self.loss_is_nan = False
            self.check_nan_gradients = False

        def on_save_checkpoint(self, trainer, *args) -> None:
            return None

    return LastCheckpoint()


class TrainMixin:
    """:meth:`train` of :class:`~scgears.model.GEARS`."""

    def train(
        self,
        max_epochs: int = 20,
        *,
        lr: float = 1e-3,
        weight_decay: float = 5e-4,
        batch_size: int = 512,
        cells_per_condition: int = 32,
        min_steps_per_epoch: int = 1,
        lr_step_size: int = 1,
        lr_gamma: float = 0.9,
        keep: Literal["last", "best"] = "last",
        statistics: bool | Literal["auto"] = "auto",
        seed: int = 0,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        verbose: bool = False,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        plan_kwargs: dict | None = None,
        **trainer_kwargs,
    ):
        """Train on the split's ``train`` conditions, validating on ``val`` after every epoch.

        **Two data paths.** With the squared error (``gamma=0``, the scgears default) and the
        Gaussian likelihood of the uncertainty head, the loss summed over a condition's cells is,
        up to a constant, the loss of its mean (and per-gene variance):
        :meth:`~scgears.model.GEARSModule.statistics_loss`. Training then reads no cell: it
        runs on per-condition statistics computed in one chunked pass when the model was
        created, and costs conditions x genes x hidden per step, whatever the number of cells
        (``statistics="auto"`` picks it whenever it is exact, see
        :attr:`~scgears.model.GEARSModule.statistics_exact`). Each perturbed condition's target is
        then its mean minus the training control mean: the expectation of GEARS' random pairing
        with control cells. The paper's autofocus loss (``gamma > 0``, ``variant="paper"``) and
        the ``"tanh"`` direction term depend on each cell's error: they train on cells, each
        paired with a random training control cell (``statistics=False`` forces this path).

        **Epochs.** With statistics an epoch visits every training condition once, in batches of
        ``batch_size // cells_per_condition`` conditions; with cells it visits every training
        cell once, in chunks of ``cells_per_condition`` cells of a condition. By default that
        one visit is the epoch: the model starts from the measured single effects (the additive
        prior) and learns a correction; on 20 splits of the Norman subset, 20 such epochs beat the
        former 50 steps per epoch in 3 of 4 subgroups (2% behind in the fourth) at 1/20 of the
        time (docs/model.md, "One visit per epoch"). ``min_steps_per_epoch`` repeats the visit until
        the epoch has that many optimiser steps.

        **Which weights are kept.** After every epoch the validation ``mse_de`` is logged in
        ``model.history``; :class:`~scgears.model.KeepEpoch` keeps the last epoch's weights, or
        the best epoch's with ``keep="best"`` (GEARS' selection), and restores the best epoch with
        a warning when training diverged (a non-finite loss, or a last validation error above
        twice the no-change prediction's). Adam with weight decay, gradient values clipped at 1,
        learning rate times ``lr_gamma`` every ``lr_step_size`` epochs.

        **Reproducibility.** Batches, control pairing and dropout follow ``seed``; on CPU two
        trainings of models created from the same torch seed (``torch.manual_seed`` or
        ``scvi.settings.seed`` before ``GEARS(adata)``) on the same machine and thread count give
        bit-identical weights. On GPU, scatter-add kernels are not deterministic: expect
        differences at the rounding level unless ``deterministic=True`` is passed (slower).

        Parameters
        ----------
        max_epochs
            Epochs (at least 1).
        lr, weight_decay
            Adam's learning rate and weight decay (GEARS: 1e-3, 5e-4).
        batch_size
            Cells per step with cells; ``batch_size // cells_per_condition`` conditions per step
            either way.
        cells_per_condition
            Cells of one condition per step (cell-level path).
        min_steps_per_epoch
            Fewest optimiser steps per epoch (1: one visit of the training data).
        lr_step_size, lr_gamma
            Step decay of the learning rate: times ``lr_gamma`` every ``lr_step_size`` epochs.
            GEARS halves it every epoch, which stops learning after a few epochs; scgears
            decays it by 0.9 per epoch (20 epochs end at 12% of ``lr``).
        keep
            ``"last"`` or ``"best"``. ``"last"`` is the default because a validation set of a
            few conditions (3-4 on the Norman benchmark) ranks epochs by noise; choose ``"best"``
            when the validation set has dozens of conditions.
        statistics
            ``"auto"`` (sufficient statistics when exact), ``True`` (an error when not exact) or
            ``False`` (cells).
        seed
            Seed of batches, control pairing and dropout.
        checkpoint_dir
            Folder for Lightning checkpoints: ``last.ckpt`` is written after every epoch.
        resume
            Continue from ``checkpoint_dir/last.ckpt`` (same model, data and arguments): the run
            ends as an uninterrupted one of ``max_epochs`` epochs would.
        verbose
            Let Lightning print its informational lines (devices, model summary).
        accelerator, devices
            Lightning's accelerator and devices (``"cpu"``, ``"gpu"``, ...). Pass ``strategy=``
            (e.g. ``"ddp"``) for several devices: each process takes its share of the batches
            of conditions.
        plan_kwargs
            Other arguments of :class:`~scgears.model.GEARSTrainingPlan`.
        **trainer_kwargs
            Arguments of :class:`scvi.train.Trainer` / Lightning's ``Trainer``.

        Examples
        --------
        >>> model.train(max_epochs=20)  # doctest: +SKIP
        >>> model.history["validation_mse_de"]  # doctest: +SKIP
        """
        _check_positive_int("max_epochs", max_epochs)
        _check_positive_int("cells_per_condition", cells_per_condition)
        _check_positive_int("min_steps_per_epoch", min_steps_per_epoch)
        _check_positive_int("batch_size", batch_size, 2 * cells_per_condition)
        if statistics not in ("auto", True, False):
            raise ValueError(f"statistics must be 'auto', True or False, got {statistics!r}.")
        exact = self.module.statistics_exact
        if statistics is True and not exact:
            raise ValueError(
                "The sufficient-statistics path is exact only for the squared error (gamma=0) and "
                "no 'tanh' direction term; this model has gamma="
                f"{self.module.gamma}, direction_loss={self.module.direction_loss!r}. Use "
                "statistics='auto' or False."
            )
        use_statistics = exact if statistics == "auto" else bool(statistics)
        callback = KeepEpoch(keep)
        ckpt_path = None
        if resume and checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir= (where the checkpoints are).")
        if checkpoint_dir is not None:
            checkpoint_dir = Path(checkpoint_dir)
            if resume:
                ckpt_path = checkpoint_dir / "last.ckpt"
                if not ckpt_path.is_file():
                    raise FileNotFoundError(
                        f"No checkpoint to resume from: {ckpt_path} does not exist. Train with "
                        "checkpoint_dir= first, or pass resume=False."
                    )
            trainer_kwargs.setdefault("callbacks", [])
            trainer_kwargs["callbacks"] = [
                *trainer_kwargs["callbacks"],
                _last_checkpoint(checkpoint_dir),
            ]
        data = self._training_data()
        plan = {
            "lr": lr,
            "weight_decay": weight_decay,
            "lr_step_size": lr_step_size,
            "lr_gamma": lr_gamma,
            "seed": seed,
            **(plan_kwargs or {}),
        }
        trainer_kwargs["callbacks"] = [callback, *trainer_kwargs.get("callbacks", [])]
        trainer_kwargs.setdefault("gradient_clip_val", 1.0)
        trainer_kwargs.setdefault("gradient_clip_algorithm", "value")
        trainer_kwargs.setdefault("check_val_every_n_epoch", 1)
        trainer_kwargs.setdefault("use_distributed_sampler", False)
        if ckpt_path is not None:
            trainer_kwargs["ckpt_path"] = str(ckpt_path)
        # dropout masks and anything else random in training follow `seed`, without touching the
        # caller's global random state
        with torch.random.fork_rng(), quiet_lightning(verbose), training_threads():
            torch.manual_seed(seed)
            result = super().train(
                max_epochs=max_epochs,
                accelerator=accelerator,
                devices=devices,
                batch_size=batch_size,
                datasplitter_kwargs={
                    "training_data": data,
                    "cells_per_condition": cells_per_condition,
                    "min_steps_per_epoch": min_steps_per_epoch,
                    "statistics": use_statistics,
                    "seed": seed,
                },
                plan_kwargs=plan,
                **trainer_kwargs,
            )
        self.kept_epoch_ = callback
        return result

    def _training_data(self) -> TrainingData:
        """Gather what the loaders need; all checks run here, before any training."""
        adata = self.adata
        if adata is None:
            raise ValueError(
                "This model has no AnnData to train on: load it with GEARS.load(path, adata=...)."
            )
        args = self.adata_manager.registry["setup_args"]
        current = self._fingerprint(adata)
        changed = [k for k, v in self.graphs.fingerprint.items() if current.get(k) != v]
        if changed:
            raise ValueError(
                "The AnnData changed since this model was created: "
                + "; ".join(FINGERPRINT_FIX[k] for k in changed)
                + ". The model's control mean, mean effect and graphs were computed on the old "
                "data, so training now would mix the two (and may train on test cells). Create "
                "the model again: model = sg.model.GEARS(adata)."
            )
        if self._statistics is None:
            self._statistics = SplitStatistics.from_anndata(
                adata,
                condition_key=args["condition_key"],
                split_key=args["split_key"],
                layer=args["layer"],
            )
        statistics = self._statistics
        used = [
            c
            for c, n in zip(
                statistics.conditions,
                statistics.n_cells("train") + statistics.n_cells("val"),
                strict=True,
            )
            if n > 0 and c != CONTROL
        ]
        unknown = self.graphs.unknown(used)
        if unknown:
            raise ValueError(
                f"Training conditions perturb genes outside the model's perturbation graph: "
                f"{unknown[:10]}. Rebuild the graph with sg.pp.perturbation_graph(adata) and "
                "create the model again."
            )
        return TrainingData.from_anndata(
            adata,
            statistics,
            de_key=args["de_key"],
            layer=args["layer"],
            encode=lambda labels: self.graphs.encode(labels, strict=False),
        )

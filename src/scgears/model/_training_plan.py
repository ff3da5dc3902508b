"""GEARS' training schedule as an scvi-tools training plan."""

from __future__ import annotations

import logging
from typing import Literal

import torch
from scvi.train import TrainingPlan

logger = logging.getLogger(__name__)


def condition_mse_de(batch: dict[str, torch.Tensor], delta: torch.Tensor) -> torch.Tensor:
    """Per-condition MSE over its top DE genes between mean prediction and mean measured cells.

    The prediction of a cell is its paired control plus ``delta``, so the mean prediction of a
    condition is the mean of its paired controls plus ``delta`` (GEARS' ``compute_metrics``).
    Returns a (conditions,) tensor, NaN for conditions without DE genes.
    """
    index = batch["condition_index"]
    n_conditions = delta.shape[0]
    counts = torch.bincount(index, minlength=n_conditions).to(delta.dtype).clamp(min=1)
    truth = torch.zeros_like(delta).index_add_(0, index, batch["x"]) / counts[:, None]
    control = torch.zeros_like(delta).index_add_(0, index, batch["x_control"]) / counts[:, None]
    prediction = control + delta
    de = batch["de_index"]
    valid = de >= 0
    squared = (prediction - truth).gather(1, de.clamp(min=0)).pow(2) * valid
    n_de = valid.sum(1)
    mse = squared.sum(1) / n_de.clamp(min=1)
    return torch.where(n_de > 0, mse, torch.full_like(mse, float("nan")))


class GEARSTrainingPlan(TrainingPlan):
    """Adam with weight decay, step learning-rate decay and validation every epoch.

    After every validation epoch the mean ``mse_de`` over the validation conditions is logged as
    ``validation_mse_de``, and the best epoch's weights are kept in memory. With ``keep="best"``
    they are restored when training ends, as GEARS selects its model; with ``keep="last"`` (the
    default) the last epoch's weights are kept, because a validation set of a few conditions
    ranks epochs by noise (see :meth:`~scgears.model.GEARS.train`). Gradient clipping is set on
    the trainer by :meth:`~scgears.model.GEARS.train`.

    Parameters
    ----------
    module
        A :class:`~scgears.model.GEARSModule`.
    lr
        Learning rate (GEARS: 1e-3).
    weight_decay
        Adam's weight decay (GEARS: 5e-4).
    lr_step_size
        Epochs between learning-rate decays.
    lr_gamma
        Factor of each decay (GEARS: 0.5, which stops learning after a few epochs; scgears
        makes at least ``min_steps_per_epoch`` steps per epoch and decays by 0.9).
    ema_decay
        If set, an exponential moving average of the weights (and batch-norm statistics) is
        updated after every optimiser step with this decay; validation scores the averaged
        weights and ``keep`` chooses among them. ``None`` (default) scores the raw weights, as
        GEARS does. In our Norman benchmark runs the average did not improve the test error
        (it delays learning: the average of a fluctuating network starts near the mean-effect
        baseline), so it is off by default.
    keep
        Which weights the model keeps when training ends: ``"last"``, those of the last epoch
        (their moving average when ``ema_decay`` is set), or ``"best"``, those of the epoch with
        the lowest ``validation_mse_de`` (GEARS' selection). Validation runs and is logged every
        epoch either way, and ``best_epoch`` is recorded.
    """

    def __init__(
        self,
        module,
        *,
        lr: float = 1e-3,
        weight_decay: float = 5e-4,
        lr_step_size: int = 1,
        lr_gamma: float = 0.9,
        ema_decay: float | None = None,
        keep: Literal["last", "best"] = "last",
        **kwargs,
    ):
        super().__init__(
            module, lr=lr, weight_decay=weight_decay, eps=1e-8, optimizer="Adam", **kwargs
        )
        self.lr_step_size = lr_step_size
        self.lr_gamma = lr_gamma
        self.best_mse_de = float("inf")
        self.best_epoch: int | None = None
        self._best_state: dict[str, torch.Tensor] | None = None
        self._val_sum = torch.zeros(())
        self._val_count = torch.zeros(())
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) or None, got {ema_decay}.")
        if keep not in ("last", "best"):
            raise ValueError(f"keep must be 'last' or 'best', got {keep!r}.")
        self.keep = keep
        self.ema_decay = ema_decay
        self._ema_state: dict[str, torch.Tensor] | None = None
        self._raw_state: dict[str, torch.Tensor] | None = None

    def _log_extra(self, loss_output, mode: str, batch_size: int) -> None:
        for name, value in loss_output.extra_metrics.items():
            self.log(
                f"{name}_{mode}",
                value.detach(),
                on_step=False,
                on_epoch=True,
                batch_size=batch_size,
                sync_dist=self.use_sync_dist,
            )

    def training_step(self, batch, batch_idx):
        _, _, loss_output = self.forward(batch, loss_kwargs=self.loss_kwargs)
        n_cells = batch["x"].shape[0]
        self.log(
            "train_loss",
            loss_output.loss.detach(),
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=n_cells,
            sync_dist=self.use_sync_dist,
        )
        self._log_extra(loss_output, "train", n_cells)
        return loss_output.loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.ema_decay is None:
            return
        with torch.no_grad():
            state = self.module.state_dict()
            if self._ema_state is None:
                self._ema_state = {k: v.detach().clone() for k, v in state.items()}
                return
            for key, value in state.items():
                average = self._ema_state[key]
                if average.is_floating_point():
                    average.lerp_(value.detach(), 1.0 - self.ema_decay)
                else:  # counters such as batch norm's num_batches_tracked
                    average.copy_(value)

    def _swap_in_average(self) -> None:
        """Score the averaged weights; the raw ones are put back after validation."""
        if self._ema_state is not None and self._raw_state is None:
            self._raw_state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
            self.module.load_state_dict(self._ema_state)

    def _swap_out_average(self) -> None:
        if self._raw_state is not None:
            self.module.load_state_dict(self._raw_state)
            self._raw_state = None

    def _update_center(self) -> None:
        """Recompute the residual model's centre for the current weights (no-op otherwise)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        data = getattr(datamodule, "data", None)
        if data is not None and getattr(self.module, "residual", False):
            self.module.update_center(torch.from_numpy(data.perturbed_nodes("train")))

    def on_validation_epoch_start(self) -> None:
        if not self.trainer.sanity_checking:
            self._swap_in_average()
        self._update_center()
        self._val_sum = torch.zeros((), device=self.device)
        self._val_count = torch.zeros((), device=self.device)

    def validation_step(self, batch, batch_idx):
        inference_outputs, _, loss_output = self.forward(batch, loss_kwargs=self.loss_kwargs)
        n_cells = batch["x"].shape[0]
        self.log(
            "validation_loss",
            loss_output.loss.detach(),
            on_step=False,
            on_epoch=True,
            batch_size=n_cells,
            sync_dist=self.use_sync_dist,
        )
        self._log_extra(loss_output, "validation", n_cells)
        mse = condition_mse_de(batch, inference_outputs["delta"])
        finite = torch.isfinite(mse)
        self._val_sum = self._val_sum + mse[finite].sum()
        self._val_count = self._val_count + finite.sum()

    def on_validation_epoch_end(self) -> None:
        total = self.trainer.strategy.reduce(self._val_sum, reduce_op="sum")
        count = self.trainer.strategy.reduce(self._val_count, reduce_op="sum")
        if count > 0:
            mse_de = (total / count).detach()
            self.log("validation_mse_de", mse_de, prog_bar=True)
            if not self.trainer.sanity_checking and float(mse_de) < self.best_mse_de:
                self.best_mse_de = float(mse_de)
                self.best_epoch = int(self.current_epoch)
                self._best_state = {
                    k: v.detach().clone() for k, v in self.module.state_dict().items()
                }
        self._swap_out_average()

    def on_train_end(self) -> None:
        if self.keep == "last" or self._best_state is None:
            if self._ema_state is not None:
                self.module.load_state_dict(self._ema_state)
            self._update_center()
            if self.best_epoch is not None:
                logger.info(
                    "Kept the last epoch's weights (best validation mse_de %.4g at epoch %d; "
                    "keep='best' restores that epoch).",
                    self.best_mse_de,
                    self.best_epoch + 1,
                )
        else:
            # the best state holds the centre computed for its weights
            self.module.load_state_dict(self._best_state)
            logger.info(
                "Restored the weights of epoch %d (best validation mse_de %.4g).",
                self.best_epoch + 1,
                self.best_mse_de,
            )

    def configure_optimizers(self):
        params = [p for p in self.module.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=self.lr_step_size, gamma=self.lr_gamma
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

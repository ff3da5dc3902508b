"""GEARS' training schedule as an scvi-tools training plan."""

from __future__ import annotations

import logging

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
    """Adam with weight decay, step learning-rate decay and best-validation-``mse_de`` weights.

    After every validation epoch the mean ``mse_de`` over the validation conditions is logged as
    ``validation_mse_de``; the weights of the best epoch are kept in memory and restored when
    training ends, as GEARS selects its model. Gradient clipping is set on the trainer by
    :meth:`~scgears.model.GEARS.train`.

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
        Factor of each decay (GEARS halves the rate every epoch).
    """

    def __init__(
        self,
        module,
        *,
        lr: float = 1e-3,
        weight_decay: float = 5e-4,
        lr_step_size: int = 1,
        lr_gamma: float = 0.9,
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

    def _update_center(self) -> None:
        """Recompute the residual model's centre for the current weights (no-op otherwise)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        data = getattr(datamodule, "data", None)
        if data is not None and getattr(self.module, "residual", False):
            self.module.update_center(torch.from_numpy(data.perturbed_nodes("train")))

    def on_validation_epoch_start(self) -> None:
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
        if count <= 0:
            return
        mse_de = (total / count).detach()
        self.log("validation_mse_de", mse_de, prog_bar=True)
        if self.trainer.sanity_checking:
            return
        if float(mse_de) < self.best_mse_de:
            self.best_mse_de = float(mse_de)
            self.best_epoch = int(self.current_epoch)
            self._best_state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def on_train_end(self) -> None:
        if self._best_state is None:
            self._update_center()
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

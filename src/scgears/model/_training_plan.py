"""GEARS' training schedule as an scvi-tools training plan."""

from __future__ import annotations

import logging

import numpy as np
import torch
from scvi.train import TrainingPlan

logger = logging.getLogger(__name__)


#: Condition x gene rows of one forward pass outside training (the decoder's activations are
#: rows x 2 hidden floats): ~80,000 rows, 16 conditions at 5,000 genes, run ~25% faster than
#: hundreds of conditions at once and keep memory flat at any number of conditions.
ROWS_PER_PASS = 80_000


def conditions_per_pass(n_genes: int) -> int:
    """Conditions per forward pass outside training for ``n_genes`` genes (at least 1)."""
    return max(1, ROWS_PER_PASS // max(1, n_genes))


def condition_targets(batch: dict[str, torch.Tensor], n_conditions: int) -> torch.Tensor:
    """Per-condition measured change the mean prediction must match: (conditions, genes).

    Statistics batches carry it (``target``); for cells, the mean prediction of a condition is the
    mean of its paired controls plus ``delta`` (GEARS' ``compute_metrics``), so the target is the
    mean of its cells minus the mean of their paired controls.
    """
    if "target" in batch:
        return batch["target"]
    index = batch["condition_index"]
    x = batch["x"]
    counts = torch.bincount(index, minlength=n_conditions).to(x.dtype).clamp(min=1)
    difference = batch["x"] - batch["x_control"]
    return (
        torch.zeros((n_conditions, x.shape[1]), dtype=x.dtype, device=x.device).index_add_(
            0, index, difference
        )
        / counts[:, None]
    )


def condition_mse_de(batch: dict[str, torch.Tensor], delta: torch.Tensor) -> torch.Tensor:
    """Per-condition MSE over its top DE genes between mean prediction and mean measured cells.

    Returns a (conditions,) tensor, NaN for conditions without DE genes. ``delta = 0`` gives the
    no-change (control) baseline.
    """
    target = condition_targets(batch, delta.shape[0])
    de = batch["de_index"]
    valid = de >= 0
    squared = (delta - target).gather(1, de.clamp(min=0)).pow(2) * valid
    n_de = valid.sum(1)
    mse = squared.sum(1) / n_de.clamp(min=1)
    return torch.where(n_de > 0, mse, torch.full_like(mse, float("nan")))


class GEARSTrainingPlan(TrainingPlan):
    """Adam with weight decay, step learning-rate decay and validation every epoch.

    After every validation epoch the mean ``mse_de`` over the validation conditions is logged as
    ``validation_mse_de``, beside ``validation_mse_de_control``, the same metric for the
    no-change prediction (the baseline divergence is judged against). Which epoch's weights the
    model keeps is the job of :class:`~scgears.model.KeepEpoch`, a Lightning callback that
    :meth:`~scgears.model.GEARS.train` adds. Gradient clipping is set on the trainer by
    :meth:`~scgears.model.GEARS.train`. Batches are either cells or per-condition statistics;
    the module's loss takes both, and the two steps below share one body.

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
        decays by 0.9, so 20 epochs end at 12% of ``lr``).
    seed
        Seeds torch's generator (dropout) before every step from ``(seed, epoch, step)``, so
        that a run resumed from a checkpoint continues exactly as an uninterrupted one.
    """

    def __init__(
        self,
        module,
        *,
        lr: float = 1e-3,
        weight_decay: float = 5e-4,
        lr_step_size: int = 1,
        lr_gamma: float = 0.9,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(
            module, lr=lr, weight_decay=weight_decay, eps=1e-8, optimizer="Adam", **kwargs
        )
        self.lr_step_size = lr_step_size
        self.lr_gamma = lr_gamma
        self.seed = seed
        self._val_sums = torch.zeros(3)

    def _step(self, batch, mode: str):
        """One body for training and validation: forward, loss, logging."""
        inference_outputs, _, loss_output = self.forward(batch, loss_kwargs=self.loss_kwargs)
        n_cells = int(loss_output.n_obs_minibatch)
        self.log(
            f"{'train' if mode == 'train' else 'validation'}_loss",
            loss_output.loss.detach(),
            on_step=False,
            on_epoch=True,
            prog_bar=mode == "train",
            batch_size=n_cells,
            sync_dist=self.use_sync_dist,
        )
        for name, value in loss_output.extra_metrics.items():
            self.log(
                f"{name}_{mode}",
                value.detach(),
                on_step=False,
                on_epoch=True,
                batch_size=n_cells,
                sync_dist=self.use_sync_dist,
            )
        return inference_outputs, loss_output

    def training_step(self, batch, batch_idx):
        _, loss_output = self._step(batch, "train")
        return loss_output.loss

    def validation_step(self, batch, batch_idx):
        inference_outputs, _ = self._step(batch, "validation")
        delta = inference_outputs["delta"].detach()
        mse = condition_mse_de(batch, delta)
        control = condition_mse_de(batch, torch.zeros_like(delta))
        finite = torch.isfinite(mse) & torch.isfinite(control)
        sums = torch.stack([mse[finite].sum(), control[finite].sum(), finite.sum().to(mse.dtype)])
        self._val_sums = self._val_sums.to(sums.device) + sums

    def _update_center(self) -> None:
        """Recompute the residual model's centre for the current weights (no-op otherwise)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        data = getattr(datamodule, "data", None)
        if data is not None and getattr(self.module, "residual", False):
            self.module.update_center(
                torch.from_numpy(data.perturbed_nodes("train")),
                batch_size=conditions_per_pass(self.module.n_genes),
            )

    def on_train_batch_start(self, batch, batch_idx) -> None:
        # dropout of each step follows (seed, epoch, step): a resumed run draws the same masks
        key = [self.seed, int(self.current_epoch), int(batch_idx)]
        torch.manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))

    def on_train_epoch_start(self) -> None:
        epoch = int(self.current_epoch)
        datamodule = getattr(self.trainer, "datamodule", None)
        if hasattr(datamodule, "set_epoch"):
            # the batch plan follows the epoch number, so a resumed run continues the same plan
            datamodule.set_epoch(epoch)

    def on_validation_epoch_start(self) -> None:
        self._update_center()
        self._val_sums = torch.zeros(3, device=self.device)

    def on_validation_epoch_end(self) -> None:
        sums = self.trainer.strategy.reduce(self._val_sums, reduce_op="sum")
        if sums[2] > 0:
            self.log("validation_mse_de", (sums[0] / sums[2]).detach(), prog_bar=True)
            self.log("validation_mse_de_control", (sums[1] / sums[2]).detach())

    def on_train_end(self) -> None:
        self._update_center()

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

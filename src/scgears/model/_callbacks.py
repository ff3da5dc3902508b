"""Which epoch's weights a training keeps, and what happens when a training diverges."""

from __future__ import annotations

import logging
import math
import warnings
from typing import Literal

import torch
from lightning.pytorch.callbacks import Callback

logger = logging.getLogger(__name__)


class KeepEpoch(Callback):
    """Keep the last or the best epoch's weights, and never return a diverged model silently.

    After every validation the weights of the epoch with the lowest ``validation_mse_de`` are
    copied (in memory). When training ends the model holds:

    * with ``keep="best"``, the best epoch's weights (GEARS' model selection);
    * with ``keep="last"``, the last epoch's weights, unless training diverged.

    Training diverged when a training loss is not finite (training then stops at once) or when the
    last epoch's ``validation_mse_de`` is not finite or above ``divergence_factor`` times that of
    the no-change prediction (``validation_mse_de_control``) while an earlier epoch did better. The
    best epoch's weights are then restored and a :class:`RuntimeWarning` says so; ``diverged``
    records the reason. :meth:`~scgears.model.GEARS.train` adds one and keeps it as
    ``model.kept_epoch_``.

    Parameters
    ----------
    keep
        ``"last"`` or ``"best"``.
    divergence_factor
        How many times the no-change baseline's validation error counts as divergence.

    Examples
    --------
    >>> model.train(max_epochs=20, keep="best")  # doctest: +SKIP
    >>> model.kept_epoch_.best_epoch  # doctest: +SKIP
    """

    def __init__(self, keep: Literal["last", "best"] = "last", divergence_factor: float = 2.0):
        if keep not in ("last", "best"):
            raise ValueError(f"keep must be 'last' or 'best', got {keep!r}.")
        self.keep = keep
        self.divergence_factor = divergence_factor
        self.best_epoch: int | None = None
        self.best_mse_de = math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.last_mse_de = math.nan
        self.last_control = math.nan
        self.diverged: str | None = None

    def state_dict(self) -> dict:
        """Saved in Lightning checkpoints, so that a resumed run keeps the same best epoch."""
        return {
            "best_epoch": -1 if self.best_epoch is None else self.best_epoch,
            "best_mse_de": self.best_mse_de,
            "best_state": self.best_state or {},
        }

    def load_state_dict(self, state_dict: dict) -> None:
        best = int(state_dict.get("best_epoch", -1))
        self.best_epoch = None if best < 0 else best
        self.best_mse_de = float(state_dict.get("best_mse_de", math.inf))
        self.best_state = dict(state_dict.get("best_state", {})) or None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss).all():
            self.diverged = f"non-finite training loss in epoch {trainer.current_epoch + 1}"
            trainer.should_stop = True

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        if "validation_mse_de" not in metrics:
            return
        self.last_mse_de = float(metrics["validation_mse_de"])
        self.last_control = float(metrics.get("validation_mse_de_control", math.nan))
        if math.isfinite(self.last_mse_de) and self.last_mse_de < self.best_mse_de:
            self.best_mse_de = self.last_mse_de
            self.best_epoch = int(trainer.current_epoch)
            self.best_state = {
                k: v.detach().clone() for k, v in pl_module.module.state_dict().items()
            }

    def _validation_diverged(self) -> str | None:
        if not math.isfinite(self.last_mse_de):
            return "non-finite validation mse_de in the last epoch"
        limit = self.divergence_factor * self.last_control
        if (
            math.isfinite(limit)
            and self.last_mse_de > limit
            and self.best_mse_de < self.last_mse_de
        ):
            return (
                f"the last epoch's validation mse_de ({self.last_mse_de:.4g}) is more than "
                f"{self.divergence_factor:g}x the no-change prediction's ({self.last_control:.4g})"
            )
        return None

    def on_train_end(self, trainer, pl_module) -> None:
        if self.diverged is None:
            self.diverged = self._validation_diverged()
        if self.best_state is None:
            if self.diverged:
                warnings.warn(
                    f"GEARS training diverged ({self.diverged}) before any finite validation: the "
                    "model is not usable. Lower lr, check X for NaN/inf, or normalise the data.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return
        if self.diverged or self.keep == "best":
            pl_module.module.load_state_dict(self.best_state)
            message = f"epoch {self.best_epoch + 1} (best validation mse_de {self.best_mse_de:.4g})"
            if self.diverged:
                warnings.warn(
                    f"GEARS training diverged ({self.diverged}); the weights of {message} were "
                    "restored. Consider a lower lr.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            else:
                logger.info("Restored the weights of %s.", message)
        else:
            logger.info(
                "Kept the last epoch's weights (best validation mse_de %.4g at epoch %d; "
                "keep='best' restores that epoch).",
                self.best_mse_de,
                self.best_epoch + 1,
            )

"""Per-condition metrics of one method: GEARS' own and Systema's change from the training mean."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: GEARS' metric columns of :func:`~scgears.tl.evaluate`, in order.
GEARS_METRICS = (
    "mse",
    "pearson",
    "mse_de",
    "pearson_de",
    "pearson_delta",
    "pearson_delta_de",
    "frac_opposite_direction_top20_non_dropout",
)
#: Metrics a prediction of the average perturbation cannot win.
DISCRIMINATING_METRICS = (
    "pds",
    "pearson_delta_pert",
    "pearson_delta_pert_de",
    "centroid_accuracy",
)
#: Every metric column of :func:`~scgears.tl.evaluate`, in order.
METRICS = (*GEARS_METRICS, *DISCRIMINATING_METRICS)

#: Profiles are stored as float32: a change below this fraction of the expression scale is
#: rounding, not signal, and a change vector made only of it is constant.
_RELATIVE_TOLERANCE = 1e-6


def pearson(x: np.ndarray, y: np.ndarray, atol: float = 0.0) -> float:
    """Pearson correlation of two vectors.

    NaN when either holds a non-finite value (a broken prediction stays visible); 0 when either is
    constant (all values within ``atol`` of its mean), where the correlation is undefined, as
    GEARS sets it.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return np.nan
    xc = x - x.mean()
    yc = y - y.mean()
    if len(x) == 0 or np.abs(xc).max() <= atol or np.abs(yc).max() <= atol:
        return 0.0
    denominator = np.sqrt(np.dot(xc, xc) * np.dot(yc, yc))
    if not denominator > 0:
        return 0.0
    return float(np.dot(xc, yc) / denominator)


def condition_metrics(
    pred: np.ndarray,
    truth: np.ndarray,
    control: np.ndarray,
    train_mean: np.ndarray,
    de_genes: list[np.ndarray],
    non_dropout_genes: list[np.ndarray],
) -> pd.DataFrame:
    """GEARS' metrics and ``pearson_delta_pert(_de)``, one row per condition (rows of ``pred``).

    ``control`` is the control mean and ``train_mean`` the mean of the training perturbations'
    profiles, over the same genes as the columns of ``pred`` and ``truth``.
    """
    rows = []
    for p, y, de, nd in zip(pred, truth, de_genes, non_dropout_genes, strict=True):
        # a delta is the difference of two float32-rounded profiles: tolerate their rounding
        scale = np.nanmax(np.abs(np.concatenate([p, control, train_mean]))) if len(p) else 0.0
        atol = _RELATIVE_TOLERANCE * max(1.0, float(scale) if np.isfinite(scale) else 1.0)
        dp, dy = p - control, y - control
        dp_pert, dy_pert = p - train_mean, y - train_mean
        opposite = np.abs(np.sign(dp[nd]) - np.sign(dy[nd])) == 2
        rows.append(
            {
                "mse": float(np.mean((p - y) ** 2)),
                "pearson": pearson(p, y),
                "mse_de": float(np.mean((p[de] - y[de]) ** 2)) if len(de) else np.nan,
                "pearson_de": pearson(p[de], y[de]) if len(de) else np.nan,
                "pearson_delta": pearson(dp, dy, atol),
                "pearson_delta_de": pearson(dp[de], dy[de], atol) if len(de) else np.nan,
                "frac_opposite_direction_top20_non_dropout": (
                    float(opposite.mean()) if len(nd) else np.nan
                ),
                "pearson_delta_pert": pearson(dp_pert, dy_pert, atol),
                "pearson_delta_pert_de": (
                    pearson(dp_pert[de], dy_pert[de], atol) if len(de) else np.nan
                ),
            }
        )
    columns = [*GEARS_METRICS, "pearson_delta_pert", "pearson_delta_pert_de"]
    return pd.DataFrame(rows, columns=columns)

"""Evaluation of predicted profiles against measured cells (metrics, discrimination, the table)."""

from ._metrics import DISCRIMINATING_METRICS, GEARS_METRICS, METRICS, pearson
from ._table import SUBGROUP_ORDER, evaluate, summarize

__all__ = [
    "DISCRIMINATING_METRICS",
    "GEARS_METRICS",
    "METRICS",
    "SUBGROUP_ORDER",
    "evaluate",
    "pearson",
    "summarize",
]

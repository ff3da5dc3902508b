"""Tools: evaluation, baselines and genetic interactions of measured and predicted profiles."""

from ._baselines import baseline
from ._combinations import predict_combinations
from ._evaluate import evaluate, summarize
from ._gi import GI_THRESHOLDS, genetic_interactions
from ._measured import measured_profiles
from ._precision import gi_precision
from ._recommend import recommend

__all__ = [
    "GI_THRESHOLDS",
    "baseline",
    "evaluate",
    "genetic_interactions",
    "gi_precision",
    "measured_profiles",
    "predict_combinations",
    "recommend",
    "summarize",
]

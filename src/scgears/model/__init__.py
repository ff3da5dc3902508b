"""Models: GEARS in scvi-tools form (imports torch, scvi-tools and Lightning)."""

from ._callbacks import KeepEpoch
from ._ensemble import GEARSEnsemble
from ._gears import GEARS
from ._graphs import ModelGraphs
from ._module import PAPER_SETTINGS, GEARSModule
from ._training_plan import GEARSTrainingPlan

__all__ = [
    "GEARS",
    "PAPER_SETTINGS",
    "GEARSEnsemble",
    "GEARSModule",
    "GEARSTrainingPlan",
    "KeepEpoch",
    "ModelGraphs",
]

"""Models: GEARS in scvi-tools form (imports torch, scvi-tools and Lightning)."""

from ._ensemble import GEARSEnsemble
from ._gears import GEARS
from ._module import GEARSModule
from ._training_plan import GEARSTrainingPlan

__all__ = ["GEARS", "GEARSEnsemble", "GEARSModule", "GEARSTrainingPlan"]

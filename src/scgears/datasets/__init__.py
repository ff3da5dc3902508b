"""Datasets: a simulated screen with known ground truth, and loaders of published screens.

Every dataset is register-ready with one call:
``sg.pp.register_perturbations(adata, "perturbation_name", control="control")``.
"""

from ._loaders import (
    DatasetUnavailableError,
    adamson2016,
    norman2019,
    replogle2022_k562_essential,
)
from ._simulate import simulate_screen

__all__ = [
    "DatasetUnavailableError",
    "adamson2016",
    "norman2019",
    "replogle2022_k562_essential",
    "simulate_screen",
]

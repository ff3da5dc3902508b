"""Plotting, scanpy style: each function takes ``ax``, ``show`` and ``save``, and returns its axes.

``show=None`` shows the figure when the function made it and nothing is saved; the axes are
returned whenever the figure is not shown. matplotlib is imported on the first plot only.
"""

from ._gi_map import gi_map
from ._metrics import metrics
from ._perturbation import perturbation
from ._recommend import recommend
from ._uncertainty import uncertainty

__all__ = ["gi_map", "metrics", "perturbation", "recommend", "uncertainty"]

"""scgears: GEARS perturbation-response prediction for the scverse.

``import scgears as sg`` stays light: ``sg.pp``, ``sg.tl``, ``sg.pl`` and ``sg.datasets`` import
without torch; ``sg.model`` (torch, scvi-tools, Lightning) is imported on first use.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

from ._threads import set_wait_policy

set_wait_policy()  # before anything loads torch: its idle threads sleep (see scgears._threads)

from . import datasets, pl, pp, tl  # noqa: E402

try:
    __version__ = version("scgears")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["datasets", "model", "pl", "pp", "tl"]


def __getattr__(name: str):
    if name == "model":
        module = importlib.import_module(".model", __name__)
        globals()["model"] = module
        return module
    raise AttributeError(f"module 'scgears' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), "model"])

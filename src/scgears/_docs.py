"""Parameter descriptions shared by many docstrings, written once (scanpy's ``_doc_params``).

A docstring names a fragment as ``{doc_show_save}`` on a line of its own, indented like the other
parameters; :func:`doc_params` fills it in, indenting every line of the fragment to match.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

#: The fragments, keyed by the name used in docstrings (``{doc_<name>}``).
FRAGMENTS: dict[str, str] = {
    "condition_key": """\
condition_key
    Column of ``obs`` written by :func:`~scgears.pp.register_perturbations`.""",
    "split_key": """\
split_key
    Column of ``obs`` written by :func:`~scgears.pp.split_perturbations`.""",
    "layer": """\
layer
    Layer of ``adata`` to read instead of ``X``; it must hold log-normalised expression.""",
    "copy": """\
copy
    Return a copy instead of writing in place.""",
    "show_save": """\
show
    Show the figure. ``None`` (default) shows it when this function made the figure
    (``ax=None``) and ``save`` is not given; otherwise it is left open for the caller.
save
    File path to save the figure to (format from the suffix), with ``bbox_inches="tight"``.
    scanpy is retiring its own ``save=`` in favour of saving the returned figure; here a
    path is all it takes, and ``ax.figure.savefig(...)`` on the returned axes works too.""",
}

_PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)\{doc_(?P<name>\w+)\}[ \t]*$", re.M)


def doc_params(function: F) -> F:
    """Fill the ``{doc_<name>}`` lines of ``function``'s docstring with :data:`FRAGMENTS`."""
    doc = function.__doc__
    if not doc:
        return function

    def fill(match: re.Match) -> str:
        name = match["name"]
        if name not in FRAGMENTS:
            raise KeyError(f"Unknown docstring fragment {{doc_{name}}} in {function.__qualname__}.")
        indent = match["indent"]
        return "\n".join(indent + line if line else line for line in FRAGMENTS[name].splitlines())

    function.__doc__ = _PLACEHOLDER.sub(fill, doc)
    return function

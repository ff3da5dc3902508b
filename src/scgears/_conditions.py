"""Canonical conditions: a condition is a set of genes, written as sorted names joined by ``+``.

Every scgears function speaks this one language; :func:`scgears.pp.register_perturbations`
translates what users have (pertpy, GEARS, guide lists) into it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._constants import CONTROL, SEPARATOR


def condition_label(genes: Iterable[str]) -> str:
    """Return the canonical label of a set of perturbed genes (``"ctrl"`` for the empty set).

    Examples
    --------
    >>> condition_label(["CNN1", "CBL"])
    'CBL+CNN1'
    >>> condition_label([])
    'ctrl'
    """
    unique = sorted({g for g in genes if g != CONTROL})
    return SEPARATOR.join(unique) if unique else CONTROL


def condition_genes(label: str) -> tuple[str, ...]:
    """Return the genes of a canonical condition label (empty for ``"ctrl"``).

    Examples
    --------
    >>> condition_genes("CBL+CNN1")
    ('CBL', 'CNN1')
    >>> condition_genes("ctrl")
    ()
    """
    if label == CONTROL:
        return ()
    return tuple(g for g in label.split(SEPARATOR) if g and g != CONTROL)


def as_condition(perturbation: str | Sequence[str]) -> str:
    """Turn a label (``"A+B"``, ``"A+ctrl"``) or a list of genes into a canonical condition label.

    Examples
    --------
    >>> as_condition("CNN1+CBL")
    'CBL+CNN1'
    >>> as_condition(["KLF1"])
    'KLF1'
    >>> as_condition("KLF1+ctrl")
    'KLF1'

    Genes that are not names are refused (``TypeError``), e.g. ``as_condition([1, 2])``.
    """
    if isinstance(perturbation, str):
        return condition_label(perturbation.split(SEPARATOR))
    try:
        genes = list(perturbation)
    except TypeError:
        raise TypeError(
            f"A perturbation is a label such as 'CBL+CNN1' or a list of gene names such as "
            f"['CBL', 'CNN1']; got {perturbation!r} ({type(perturbation).__name__})."
        ) from None
    bad = [g for g in genes if not isinstance(g, str)]
    if bad:
        raise TypeError(
            f"Genes must be gene names (str); got {bad[0]!r} ({type(bad[0]).__name__}) in "
            f"{perturbation!r}. Pass gene symbols such as ['CBL', 'CNN1'] (for positions in "
            "var_names: `list(adata.var_names[positions])`)."
        )
    return condition_label(genes)


def n_genes(label: str) -> int:
    """Number of perturbed genes in a canonical condition label (0 for the control)."""
    return len(condition_genes(label))

"""Checks and error-message helpers shared by pp, model, tl and pl."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from anndata import AnnData

from ._constants import DE_KEY

#: What ``rank_perturbation_genes`` writes that the other functions read.
DE_LISTS = ("top_genes", "top_non_dropout_genes")


def preview(values: Iterable, limit: int = 10) -> str:
    """Show at most ``limit`` values of a list in an error message."""
    values = list(values)
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return f"{values[:limit]}{more}"


def get_de(adata: AnnData, de_key: str = DE_KEY, keys: Iterable[str] = DE_LISTS) -> Mapping:
    """Return ``adata.uns[de_key]``; the error says to run ``rank_perturbation_genes``."""
    if de_key not in adata.uns:
        raise KeyError(
            f"uns[{de_key!r}] not found: rank the DE genes first with "
            "`sg.pp.rank_perturbation_genes(adata)`"
            + (" (or pass de_key= naming where it wrote)." if de_key != DE_KEY else ".")
        )
    de = adata.uns[de_key]
    for key in keys:
        if key not in de:
            raise KeyError(
                f"uns[{de_key!r}] has no {key!r}: rerun `sg.pp.rank_perturbation_genes(adata)`."
            )
    return de

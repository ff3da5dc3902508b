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


def check_unique_var_names(adata: AnnData, name: str = "adata") -> None:
    """Raise when ``var_names`` repeat: every gene-indexed lookup would be ambiguous.

    Call it before any work, so a duplicated gene fails early with the fix, not deep inside pandas.
    """
    var_names = adata.var_names
    if var_names.is_unique:
        return
    repeated = var_names[var_names.duplicated()].unique()
    raise ValueError(
        f"{name}.var_names has {len(repeated)} duplicated gene names ({preview(list(repeated))}): "
        f"make them unique first with `{name}.var_names_make_unique()`, or drop the duplicates."
    )

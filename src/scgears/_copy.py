"""The ``copy=`` argument of functions that write into an AnnData."""

from __future__ import annotations

from anndata import AnnData


def check_copy(adata: AnnData, copy: bool, function: str) -> None:
    """Refuse ``copy=True`` on a backed AnnData before any work is done.

    ``AnnData.copy()`` of a backed object needs a file name, so the copy would otherwise fail
    only after the (possibly long) computation.
    """
    if copy and isinstance(adata, AnnData) and adata.isbacked:
        raise ValueError(
            f"{function}(copy=True) cannot copy an AnnData opened with backed=... (copying it "
            "needs a new file). Call it with copy=False: the results go into obs/uns/varp, which "
            "stay in memory, and X is not touched; or load the data with adata.to_memory() first."
        )

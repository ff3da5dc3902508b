"""Axes, show and save handling shared by the plotting functions (scanpy's conventions).

matplotlib is imported inside the functions, never at module level, so ``import scgears`` stays
fast and works without a display.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .._checks import get_de, preview

logger = logging.getLogger(__name__)


def new_axes(ax, figsize: tuple[float, float]):
    """Return ``(figure, axes)``: the given axes and their figure, or a new ``figsize`` figure."""
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def check_save(save) -> Path | None:
    """Validate ``save`` before any drawing, so a bad value fails fast."""
    if save is None or save is False:
        return None
    if isinstance(save, bool) or not isinstance(save, str | os.PathLike):
        raise TypeError(
            f"save must be a file path such as 'gi_map.png', got {save!r}. "
            "scgears does not use scanpy's figdir: pass the full path."
        )
    return Path(save)


def finish(fig, axes, *, created: bool, show: bool | None, save):
    """Save and/or show the figure; return ``axes`` unless the figure was shown.

    ``created`` says whether the plotting function made the figure itself (``ax=None``), which is
    when ``show=None`` shows it, as scanpy does.
    """
    import matplotlib.pyplot as plt

    path = check_save(save)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, bbox_inches="tight")
        logger.info("saved figure to %s", path)
    if show is None:
        show = created and path is None
    if show:
        plt.show()
        return None
    return axes


def check_profiles(profiles, name: str):
    """Raise unless ``profiles`` is a profile AnnData (one row per condition with a delta layer)."""
    from anndata import AnnData

    if not isinstance(profiles, AnnData) or "delta" not in profiles.layers:
        raise TypeError(
            f"{name} must be a profile AnnData (one row per condition, layers['delta']), e.g. "
            f"from model.predict(...) or sg.tl.baseline(...); got {type(profiles).__name__}"
            + (" without layers['delta']." if isinstance(profiles, AnnData) else ".")
        )
    return profiles


def profile_row(profiles, label: str, name: str) -> int:
    """Row of ``label`` in a profile AnnData; the error lists the conditions it holds."""
    if label not in profiles.obs_names:
        raise KeyError(
            f"Condition {label!r} is not in {name} (it holds {preview(profiles.obs_names)}). "
            f"Predict it first, e.g. model.predict([{list(label.split('+'))!r}]), or build the "
            "baseline for it."
        )
    return int(profiles.obs_names.get_loc(label))


def gene_columns(profiles, genes, name: str):
    """Column of each gene in a profile AnnData; the error names the missing genes."""
    import numpy as np

    index = profiles.var_names
    missing = [g for g in genes if g not in index]
    if missing:
        raise KeyError(
            f"Genes {preview(missing)} are not in {name}.var_names: the prediction and the data "
            "must share their genes."
        )
    return np.asarray(index.get_indexer(list(genes)), dtype=np.int64)


def de_genes(adata, label: str, *, de_key: str, kind: str, n_genes: int):
    """The first ``n_genes`` DE genes of a condition from ``uns[de_key][kind]``."""
    import numpy as np

    table = get_de(adata, de_key, keys=(kind,))[kind]
    if label not in table:
        raise KeyError(
            f"Condition {label!r} has no DE genes in adata.uns[{de_key!r}][{kind!r}]: rerun "
            "`sg.pp.rank_perturbation_genes(adata)` after registering it."
        )
    return [str(g) for g in np.asarray(table[label])[:n_genes]]

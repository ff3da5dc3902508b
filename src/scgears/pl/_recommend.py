"""The recommended batch of experiments on the model's perturbation embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .._conditions import condition_genes
from .._constants import CONTROL
from .._docs import doc_params
from ._utils import check_save, finish, new_axes


@doc_params
def recommend(
    model,
    table: pd.DataFrame | None = None,
    *,
    key: str = "scgears_recommend",
    n_labels: int = 10,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
):
    """Show a recommended batch among the measured conditions, on the perturbation embedding.

    Every measured condition (grey) and every recommended one (coloured by pick order, the first
    ``n_labels`` labelled) is placed by the first two principal components of the model's
    perturbation embedding, a condition being the sum of its genes' embeddings as in the model.
    Recommendations far from the grey cloud explore; those inside it refine.

    Parameters
    ----------
    model
        The trained model (or ensemble) the recommendation came from.
    table
        The table of :func:`~scgears.tl.recommend`; default ``model.adata.uns[key]``.
    key
        Where :func:`~scgears.tl.recommend` wrote the table.
    n_labels
        How many of the first picks to label.
    ax
        Axes to draw on; by default a new figure is made.
    {doc_show_save}

    Returns
    -------
    The axes, unless the figure was shown.

    Examples
    --------
    >>> sg.tl.recommend(model, budget=10)  # doctest: +SKIP
    >>> sg.pl.recommend(model)  # doctest: +SKIP
    """
    check_save(save)
    if table is None:
        if key not in model.adata.uns:
            raise KeyError(
                f"model.adata.uns[{key!r}] not found: run sg.tl.recommend(model, ...) first, or "
                "pass its table."
            )
        table = model.adata.uns[key]
    if len(table) == 0:
        raise ValueError("The recommendation table is empty: nothing to show.")
    # an ensemble is drawn in its first member's embedding (members' embeddings are not aligned)
    reference = model.models[0] if getattr(model, "models", None) else model
    embedding = reference.get_perturbation_embedding()
    values = embedding.to_numpy(dtype=np.float64)
    row = {g: i for i, g in enumerate(embedding.index.astype(str))}
    args = reference.adata_manager.registry["setup_args"]
    measured = [
        c
        for c in pd.unique(reference.adata.obs[args["condition_key"]].astype(str))
        if c != CONTROL and all(g in row for g in condition_genes(c))
    ]
    picked = [str(c) for c in table.index]

    def place(labels):
        out = np.zeros((len(labels), values.shape[1]))
        for i, label in enumerate(labels):
            out[i] = sum(values[row[g]] for g in condition_genes(label) if g in row)
        return out

    both = np.vstack([place(measured), place(picked)])
    centred = both - both.mean(0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ components[:2].T
    fig, ax_ = new_axes(ax, (5.5, 4.5))
    created = ax is None
    n_measured = len(measured)
    ax_.scatter(*xy[:n_measured].T, s=12, c="0.75", label="measured", zorder=1)
    order = np.arange(len(picked))
    points = ax_.scatter(
        *xy[n_measured:].T, s=40, c=order, cmap="viridis_r", edgecolors="k", zorder=2
    )
    for i in range(min(n_labels, len(picked))):
        ax_.annotate(
            picked[i], xy[n_measured + i], fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    fig.colorbar(points, ax=ax_, label="pick order (0 = first)")
    ax_.set_xlabel("perturbation embedding PC1")
    ax_.set_ylabel("perturbation embedding PC2")
    ax_.set_title(f"{len(picked)} recommended conditions")
    ax_.legend(loc="best", fontsize=8)
    return finish(fig, ax_, created=created, show=show, save=save)

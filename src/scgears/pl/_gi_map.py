"""The pairwise genetic-interaction map: a gene x gene heatmap of subtypes (or of magnitude)."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from .._checks import preview
from .._conditions import as_condition, condition_genes
from .._docs import doc_params
from .._gi_rules import SUBTYPE_RULES, SUBTYPES
from ._utils import check_save, finish, new_axes

logger = logging.getLogger(__name__)

#: In the magnitude map, subtypes drawn as markers inside the cells (synergy and suppression are
#: the colour itself).
#: Fills are yellow, white and black so that each stands out on both red and blue cells; ``scale``
#: evens out the apparent size of the shapes and ``dx`` keeps several markers of a cell apart.
MARKED_SUBTYPES = {
    "neomorphism": {"marker": "*", "color": "#ffd92f", "dx": -0.3, "scale": 1.6},
    "redundancy": {"marker": "o", "color": "white", "dx": 0.0, "scale": 1.0},
    "epistasis": {"marker": "^", "color": "black", "dx": 0.3, "scale": 1.0},
}

#: Colour of cells without a value: the diagonal and pairs absent from the table.
NO_DATA_COLOR = "0.72"


@doc_params
def gi_map(
    gi: pd.DataFrame,
    *,
    genes: Sequence[str] | None = None,
    order: Literal["cluster", "alphabetical"] | None = "cluster",
    color: Literal["auto", "subtype", "mag"] = "auto",
    vmax: float | None = None,
    cmap: str = "RdBu_r",
    marker_size: float | None = None,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
):
    """Draw the genetic-interaction map of a gene panel (GEARS' Fig. 4).

    With ``color="subtype"`` (the default for tables of :func:`~scgears.tl.genetic_interactions`,
    which have a ``subtype`` column), each cell of the symmetric gene x gene map is coloured by
    the pair's one calibrated subtype, its opacity by the call's ``confidence`` (the share of
    bootstrap replicates giving the same call; fully opaque, and said so in the legend, when the
    confidence is NaN because the pairs had no noise model). The legend lists all six subtypes.
    The title says whether the pairs are measured or predicted (from the table's ``source``).

    With ``color="mag"`` (the default for tables without ``subtype``), each cell is the pair's
    interaction magnitude ``mag`` on a diverging scale centred at 1, the additive expectation:
    red above 1 (synergy), blue below 1 (suppression); the scale spans the largest distance from
    1 in the data unless ``vmax`` is given, so no value saturates. Pairs flagged by the paper's
    thresholds as neomorphic (yellow star), redundant (white circle) or epistatic (black
    triangle) get a marker in both of their cells. Either way, pairs absent from ``gi`` and the
    diagonal are grey.

    Parameters
    ----------
    gi
        Table indexed by pair label (``"A+B"``) with a ``mag`` column, as returned by
        :func:`~scgears.tl.genetic_interactions`: ``subtype`` and ``confidence`` for the subtype
        map; for the markers of the magnitude map the boolean columns ``paper_neomorphism``,
        ``paper_redundancy`` and ``paper_epistasis`` (or the same without ``paper_``; those
        present are drawn). Rows that are not pairs of two genes are ignored.
    genes
        Genes to show (default: every gene of a pair in ``gi``).
    order
        Row and column order: ``"cluster"`` (default) orders genes by average-linkage hierarchical
        clustering of their magnitude profiles (missing pairs count as additive, 1), so genes that
        interact alike sit together; ``"alphabetical"`` sorts them; ``None`` keeps the order of
        ``genes`` (or of first appearance in ``gi``).
    color
        ``"subtype"``, ``"mag"``, or ``"auto"``: ``"subtype"`` when ``gi`` has that column.
    vmax
        Largest distance from 1 on the colour scale (default: the largest in the data), so the
        scale runs from ``1 - vmax`` to ``1 + vmax``.
    cmap
        Diverging colour map; its upper half colours synergy.
    marker_size
        Area of the subtype markers in points² (default: scaled to the cell size).
    ax
        Axes to draw on; by default a new square figure is made.
    {doc_show_save}

    Returns
    -------
    The :class:`~matplotlib.axes.Axes` of the heatmap, or ``None`` when the figure was shown.

    Examples
    --------
    >>> import pandas as pd
    >>> import scgears as sg
    >>> gi = pd.DataFrame(
    ...     {"mag": [1.3, 0.7, 1.0], "neomorphism": [False, True, False]},
    ...     index=["A+B", "A+C", "B+C"],
    ... )
    >>> ax = sg.pl.gi_map(gi, show=False)
    """
    check_save(save)
    if order not in ("cluster", "alphabetical", None):
        raise ValueError(f"order must be 'cluster', 'alphabetical' or None, got {order!r}.")
    if color not in ("auto", "subtype", "mag"):
        raise ValueError(f"color must be 'auto', 'subtype' or 'mag', got {color!r}.")
    if color == "subtype" and "subtype" not in gi.columns:
        raise KeyError(
            "color='subtype' needs the 'subtype' column of sg.tl.genetic_interactions; "
            "use color='mag' for tables without it."
        )
    by_subtype = color == "subtype" or (color == "auto" and "subtype" in gi.columns)
    pairs = _pairs(gi)
    panel = _panel_genes(pairs, genes)
    value = "scale" if by_subtype and "scale" in pairs.columns else "mag"
    magnitude = _magnitude_matrix(pairs, panel, value)
    panel, magnitude, _ = _reorder(panel, magnitude, order)

    created = ax is None
    side = min(max(4.0, 0.28 * len(panel) + 2.5), 30.0)
    fig, ax = new_axes(ax, figsize=(side + 1.2, side))
    if by_subtype:
        _draw_subtypes(ax, pairs, panel)
    else:
        _draw_heatmap(ax, fig, magnitude, panel, vmax=vmax, cmap=cmap)
        _draw_markers(ax, pairs, panel, marker_size=marker_size)
    title = _title(pairs)
    if title:
        # above the legend, which sits right above the map
        ax.set_title(title, pad=6 if by_subtype else 22, fontsize="medium")
    return finish(fig, ax, created=created, show=show, save=save)


def _pairs(gi: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``gi`` that are gene pairs, with their two genes in ``gene_a`` / ``gene_b``."""
    if not isinstance(gi, pd.DataFrame) or "mag" not in gi.columns:
        raise KeyError(
            "gi must be the DataFrame of sg.tl.genetic_interactions(...) with a 'mag' column, got "
            + (f"columns {list(gi.columns)}." if isinstance(gi, pd.DataFrame) else f"{type(gi)}.")
        )
    genes = [condition_genes(as_condition(str(label))) for label in gi.index]
    is_pair = np.array([len(g) == 2 for g in genes], dtype=bool)
    if not is_pair.any():
        raise ValueError(
            f"gi has no gene pairs in its index (it holds {preview(gi.index)}): the GI map needs "
            "rows labelled 'A+B'."
        )
    if not is_pair.all():
        logger.info("gi_map ignores %d rows that are not gene pairs", int((~is_pair).sum()))
    pairs = gi.loc[is_pair].copy()
    pairs["gene_a"] = [g[0] for g, keep in zip(genes, is_pair, strict=True) if keep]
    pairs["gene_b"] = [g[1] for g, keep in zip(genes, is_pair, strict=True) if keep]
    duplicated = pairs.duplicated(["gene_a", "gene_b"])
    if duplicated.any():
        raise ValueError(
            f"gi has several rows for the pairs {preview(pairs.index[duplicated])}: keep one row "
            "per pair (e.g. the prediction or the measurement, not both)."
        )
    return pairs


def _panel_genes(pairs: pd.DataFrame, genes: Sequence[str] | None) -> list[str]:
    """Genes of the map: ``genes`` as given, or every gene of a pair in first-appearance order."""
    available = list(dict.fromkeys([*pairs["gene_a"], *pairs["gene_b"]]))
    if genes is None:
        return available
    genes = [str(g) for g in ([genes] if isinstance(genes, str) else genes)]
    missing = [g for g in genes if g not in set(available)]
    if missing:
        raise KeyError(
            f"Genes {preview(missing)} are in no pair of gi (its genes: {preview(available)})."
        )
    if len(set(genes)) < 2:
        raise ValueError(f"genes must hold at least two distinct genes, got {genes!r}.")
    return list(dict.fromkeys(genes))


def _magnitude_matrix(pairs: pd.DataFrame, panel: list[str], value: str = "mag") -> np.ndarray:
    """Symmetric gene x gene matrix of ``value``; NaN for the diagonal and missing pairs."""
    where = {g: i for i, g in enumerate(panel)}
    matrix = np.full((len(panel), len(panel)), np.nan)
    for a, b, mag in zip(pairs["gene_a"], pairs["gene_b"], pairs[value], strict=True):
        if a in where and b in where:
            matrix[where[a], where[b]] = matrix[where[b], where[a]] = float(mag)
    return matrix


def _reorder(panel: list[str], matrix: np.ndarray, order):
    """Apply the requested gene order to the panel and both axes of the matrix."""
    if order == "alphabetical":
        index = np.argsort(panel, kind="stable")
    elif order == "cluster" and len(panel) > 2:
        from scipy.cluster.hierarchy import leaves_list, linkage

        filled = np.where(np.isnan(matrix), 1.0, matrix)  # missing pairs and self: additive
        index = leaves_list(linkage(filled, method="average", metric="euclidean"))
    else:
        index = np.arange(len(panel))
    return [panel[i] for i in index], matrix[np.ix_(index, index)], index


def _draw_heatmap(ax, fig, matrix: np.ndarray, panel: list[str], *, vmax, cmap: str) -> None:
    """Heatmap centred at 1, gene names on both axes and a labelled colour bar."""
    import matplotlib as mpl
    from matplotlib.colors import TwoSlopeNorm

    spread = np.nanmax(np.abs(matrix - 1.0)) if np.isfinite(matrix).any() else 0.5
    spread = float(vmax) if vmax is not None else max(float(spread), 1e-3)
    colormap = mpl.colormaps[cmap].with_extremes(bad=NO_DATA_COLOR)
    # magnitudes are never negative: below 1 the scale stops at 0, keeping 1 at the centre colour
    norm = TwoSlopeNorm(vcenter=1.0, vmin=max(1.0 - spread, 0.0), vmax=1.0 + spread)
    image = ax.imshow(
        np.ma.masked_invalid(matrix),
        cmap=colormap,
        norm=norm,
        interpolation="nearest",
        aspect="equal",
    )
    _grid_axes(ax, panel)
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, shrink=0.8)
    colorbar.set_label("magnitude (> 1 synergy, < 1 suppression)")


def _draw_markers(ax, pairs: pd.DataFrame, panel: list[str], *, marker_size) -> None:
    """One marker per flagged subtype in both cells of each pair, and a legend."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    where = {g: i for i, g in enumerate(panel)}
    inside = pairs["gene_a"].isin(where) & pairs["gene_b"].isin(where)
    if marker_size is None:
        # about a quarter of a cell wide, whatever the figure and panel size, at most 10 points
        marker_size = min(max(0.26 * _cell_points(ax, len(panel)), 2.0), 10.0) ** 2
    handles = [Patch(facecolor=NO_DATA_COLOR, label="no data")]
    for subtype, style in MARKED_SUBTYPES.items():
        column = f"paper_{subtype}" if f"paper_{subtype}" in pairs.columns else subtype
        if column not in pairs.columns:
            continue
        flagged = pairs[inside & pairs[column].eq(True)]
        rows = np.array([where[a] for a in flagged["gene_a"]], dtype=float)
        cols = np.array([where[b] for b in flagged["gene_b"]], dtype=float)
        # both triangles, so the map stays symmetric
        x = np.concatenate([cols, rows]) + style["dx"]
        y = np.concatenate([rows, cols])
        ax.scatter(
            x,
            y,
            s=marker_size * style["scale"],
            marker=style["marker"],
            c=style["color"],
            edgecolors="black",
            linewidths=0.5,
            zorder=3,
            label=subtype,
        )
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker=style["marker"],
                markerfacecolor=style["color"],
                markeredgecolor="black",
                markeredgewidth=0.5,
                markersize=7 * style["scale"] ** 0.5,
                label=subtype,
            )
        )
    # above the map: below it the rotated gene names would collide with the legend
    ax.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncol=len(handles),
        frameon=False,
        fontsize="small",
    )


def _cell_points(ax, n: int) -> float:
    """Width of one heatmap cell in points (before the colour bar and aspect adjustments)."""
    box = ax.get_window_extent()
    return min(box.width, box.height) * 72.0 / ax.figure.dpi / max(n, 1)


def _title(pairs: pd.DataFrame) -> str:
    """Whether the map shows measured or predicted pairs, from the table's ``source`` column."""
    if "source" not in pairs.columns:
        return ""
    sources = sorted({str(s) for s in pairs["source"].dropna()})
    if sources == ["measured"]:
        return "Measured pairs"
    if "measured" in sources:
        return f"Measured and predicted pairs ({', '.join(s for s in sources if s != 'measured')})"
    return f"Predicted pairs ({', '.join(sources)})" if sources else ""


def _draw_subtypes(ax, pairs: pd.DataFrame, panel: list[str]) -> None:
    """Cells coloured by subtype, opacity = confidence; a legend of all six subtypes."""
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Patch

    where = {g: i for i, g in enumerate(panel)}
    n = len(panel)
    image = np.tile(np.array(to_rgba(NO_DATA_COLOR)), (n, n, 1))
    has_confidence = "confidence" in pairs.columns and pairs["confidence"].notna().any()
    white = np.ones(4)
    for a, b, subtype, conf in zip(
        pairs["gene_a"],
        pairs["gene_b"],
        pairs["subtype"],
        pairs["confidence"] if "confidence" in pairs.columns else [np.nan] * len(pairs),
        strict=True,
    ):
        if a not in where or b not in where or pd.isna(subtype):
            continue
        colour = np.array(to_rgba(SUBTYPE_RULES[str(subtype)].color))
        opacity = 1.0 if not np.isfinite(conf) else 0.15 + 0.85 * float(conf)
        blended = opacity * colour + (1.0 - opacity) * white
        blended[3] = 1.0
        image[where[a], where[b]] = image[where[b], where[a]] = blended
    ax.imshow(image, interpolation="nearest", aspect="equal")
    _grid_axes(ax, panel)
    handles = [Patch(facecolor=SUBTYPE_RULES[s].color, edgecolor="0.6", label=s) for s in SUBTYPES]
    handles.append(Patch(facecolor=NO_DATA_COLOR, label="no data"))
    note = (
        "faded = lower confidence (share of bootstrap replicates with the same call)"
        if has_confidence
        else "confidence not available: no noise model for these pairs"
    )
    # right of the map (there is no colour bar): clear of the title and the gene names
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        frameon=False,
        fontsize="small",
        title="subtype\n" + textwrap.fill(note, 28),
        title_fontsize="x-small",
        alignment="left",
    )


def _grid_axes(ax, panel: list[str]) -> None:
    """Gene names on both axes (sized to the cells) and a thin white grid between cells."""
    n = len(panel)
    ax.set_xticks(np.arange(n))
    ax.set_yticks(np.arange(n))
    fontsize = max(3.0, min(10.0, 0.6 * _cell_points(ax, n)))
    ax.set_xticklabels(panel, rotation=90, fontsize=fontsize)
    ax.set_yticklabels(panel, fontsize=fontsize)
    ax.tick_params(length=0)
    ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)

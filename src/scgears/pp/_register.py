"""Translate the perturbation labels users already have into scgears' canonical conditions."""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .._checks import preview
from .._conditions import condition_label
from .._constants import CONDITION_KEY, CONTROL
from .._copy import check_copy

logger = logging.getLogger(__name__)

#: Delimiters recognised between gene names of a multi-gene label, in the order they are tried.
DELIMITERS = ("+", "_", "|", ",")

#: Tokens that mean "no gene" inside a GEARS-style label such as ``"KLF1+ctrl"``.
_FILLER_TOKENS = frozenset({CONTROL, ""})

#: A cell is assigned a guide when it has at least this many UMIs of it (MuData input).
DEFAULT_GUIDE_THRESHOLD = 5


def register_perturbations(
    adata,
    perturbation_key: str,
    *,
    control: str = "control",
    delimiter: str | None = None,
    key_added: str = CONDITION_KEY,
    copy: bool = False,
    rna_modality: str = "rna",
    guide_threshold: float = DEFAULT_GUIDE_THRESHOLD,
    guide_target_key: str = "target_gene",
) -> AnnData | None:
    """Write the canonical perturbation condition of every cell.

    A condition is the set of genes perturbed in a cell. Its canonical label joins the sorted gene
    names with ``+`` (``"CBL+CNN1"``); the control condition is ``"ctrl"``. Every other scgears
    function reads this label. Accepted inputs:

    * pertpy / scPerturb labels: ``"control"``, ``"CBL"``, ``"CBL+CNN1"``;
    * GEARS labels: ``"ctrl"``, ``"CBL+ctrl"``, ``"ctrl+CBL"``, ``"CBL+CNN1"``;
    * other delimiters ``_``, ``|`` and ``,`` (guide lists such as ``"CBL,CNN1"``), detected when
      exactly one of them occurs in the labels, otherwise pass ``delimiter=``;
    * any number of genes per cell;
    * a :class:`~mudata.MuData` whose modality ``perturbation_key`` holds guide UMI counts
      (cells x guides). A cell is assigned every guide with at least ``guide_threshold`` UMIs; the
      guide's gene is read from ``var[guide_target_key]`` of that modality (or from the guide name
      before its first ``_`` or ``-`` when that column is absent); guides targeting ``control`` mark
      control cells. Cells with no guide at the threshold get no condition (missing value), are
      counted in the log and are ignored by scgears. The result is written to both
      ``mdata.obs`` and ``mdata[rna_modality].obs``.

    The expression matrix is never read or changed. All checks run before anything is written.

    Parameters
    ----------
    adata
        Annotated data (cells x genes), or a MuData with a guide-count modality.
    perturbation_key
        Column of ``adata.obs`` with the perturbation labels, or, for a MuData, the name of the
        guide-count modality.
    control
        The label of control cells in ``obs[perturbation_key]`` (pertpy: ``"control"``, GEARS:
        ``"ctrl"``; ``""`` when control cells have empty guide lists), or the target name of
        control guides for a MuData (e.g. ``"non-targeting"``).
    delimiter
        Separator between gene names of a multi-gene label. ``None`` detects it.
    key_added
        Column of ``obs`` to write the categorical canonical condition to.
    copy
        Return a modified copy instead of writing in place.
    rna_modality
        MuData only: the modality holding gene expression.
    guide_threshold
        MuData only: minimal UMI count for a guide to be assigned to a cell.
    guide_target_key
        MuData only: column of the guide modality's ``var`` with each guide's target gene.

    Returns
    -------
    ``None``, or a copy of ``adata`` with ``obs[key_added]`` when ``copy=True``.

    Examples
    --------
    >>> import scgears as sg
    >>> adata = sg.datasets.simulate_screen(n_genes=200, n_cells_per_condition=20, seed=0)
    >>> adata.obs["perturbation"] = adata.obs["perturbation_name"].astype(str).str.replace(
    ...     "+", "_"
    ... )
    >>> sg.pp.register_perturbations(adata, "perturbation", control="control")
    >>> adata.obs["scgears_condition"].cat.categories[:3].tolist()  # doctest: +SKIP
    ['ctrl', ...]
    """
    check_copy(adata, copy, "register_perturbations")
    if _is_mudata(adata):
        return _register_from_guides(
            adata,
            perturbation_key,
            control=control,
            key_added=key_added,
            copy=copy,
            rna_modality=rna_modality,
            guide_threshold=guide_threshold,
            guide_target_key=guide_target_key,
        )
    if not isinstance(adata, AnnData):
        raise TypeError(
            f"register_perturbations expects an AnnData or a MuData, got {type(adata).__name__}."
        )
    if perturbation_key not in adata.obs.columns:
        raise KeyError(
            f"Column {perturbation_key!r} not found in adata.obs. Available columns: "
            f"{preview(adata.obs.columns)}. Pass the column holding the perturbation labels as "
            "`perturbation_key` (pertpy data: 'perturbation_name'; scPerturb: 'perturbation')."
        )
    labels = adata.obs[perturbation_key]
    conditions = parse_labels(labels, control=control, delimiter=delimiter, source=perturbation_key)
    if copy:
        adata = adata.copy()
    adata.obs[key_added] = conditions
    _log_summary(conditions, key_added)
    return adata if copy else None


def parse_labels(
    labels: pd.Series,
    *,
    control: str = "control",
    delimiter: str | None = None,
    source: str = "labels",
) -> pd.Categorical:
    """Parse raw perturbation labels into a categorical of canonical conditions.

    See :func:`register_perturbations` for the accepted formats. Raises a :class:`ValueError` that
    names the problem (missing control label, no control cells, empty labels, ambiguous delimiter).
    """
    labels = pd.Series(labels)
    missing = labels.isna().to_numpy()
    if missing.any():
        example = np.flatnonzero(missing)[:3].tolist()
        raise ValueError(
            f"{int(missing.sum())} cells have a missing (NaN) label in {source!r} (e.g. rows "
            f"{example}). Label them (for instance as {control!r} if they are controls) or drop "
            f"them with `adata = adata[adata.obs[{source!r}].notna()].copy()` before registering."
        )
    raw = labels.astype(str)
    unique = pd.Index(raw.unique())
    stripped = unique.str.strip()
    if control != "" and (stripped == "").any():
        n_empty = int((raw.str.strip() == "").sum())
        raise ValueError(
            f"{n_empty} cells have an empty label in {source!r}. If they are control cells "
            "(pertpy's 'guide_ids' leaves controls empty), pass control=''; otherwise drop them."
        )
    if control not in set(unique):
        counts = raw.value_counts()
        top = ", ".join(f"{k!r} ({v} cells)" for k, v in counts.head(8).items())
        hint = ""
        for candidate in ("ctrl", "control", "non-targeting", "NT", "Control", "CTRL", ""):
            if candidate != control and candidate in set(unique):
                hint = f" Did you mean control={candidate!r}?"
                break
        raise ValueError(
            f"Control label {control!r} not found in {source!r}. The most frequent labels are: "
            f"{top}.{hint} Pass the label of your control cells as `control=`."
        )

    non_control = [u for u in unique if u != control]
    sep = _detect_delimiter(non_control, control=control, delimiter=delimiter, source=source)
    mapping: dict[str, str] = {control: CONTROL}
    for label in non_control:
        tokens = _split(label, sep)
        genes = [t for t in tokens if t not in _FILLER_TOKENS and t != control]
        mapping[label] = condition_label(genes)
    canonical = raw.map(mapping)
    categories = sorted(set(mapping.values()), key=lambda c: (c != CONTROL, c))
    return pd.Categorical(canonical.to_numpy(), categories=categories)


def _split(label: str, sep: str | None) -> list[str]:
    if sep is None:
        return [label.strip()]
    return [t.strip() for t in label.split(sep)]


def _detect_delimiter(
    labels: list[str], *, control: str, delimiter: str | None, source: str
) -> str | None:
    if delimiter is not None:
        return delimiter
    present = [d for d in DELIMITERS if any(d in label for label in labels)]
    if len(present) <= 1:
        return present[0] if present else None
    examples = {d: next(label for label in labels if d in label) for d in present}
    shown = ", ".join(f"{d!r} (e.g. {examples[d]!r})" for d in present)
    raise ValueError(
        f"Labels in {source!r} contain several possible gene delimiters: {shown}. Pass the one "
        f"that separates genes as `delimiter=` (for example delimiter={present[0]!r})."
    )


def _log_summary(conditions: pd.Categorical, key_added: str) -> None:
    cats = pd.Series(conditions).dropna()
    n_genes = cats.map(lambda c: 0 if c == CONTROL else c.count("+") + 1)
    per_size = n_genes.groupby(n_genes, observed=True).size()
    logger.info(
        "Registered %d conditions in obs[%r]: %s cells of control, %s.",
        len(np.unique(cats)),
        key_added,
        int((cats == CONTROL).sum()),
        ", ".join(f"{int(v)} cells with {k} gene(s)" for k, v in per_size.items() if k > 0),
    )


# --------------------------------------------------------------------------------------------------
# MuData with a guide-count modality


def _is_mudata(obj) -> bool:
    try:
        from mudata import MuData
    except ImportError:  # pragma: no cover - mudata is a dependency
        return False
    return isinstance(obj, MuData)


def _guide_targets(guides: AnnData, guide_target_key: str) -> np.ndarray:
    if guide_target_key in guides.var.columns:
        return guides.var[guide_target_key].astype(str).to_numpy()
    logger.info(
        "Guide modality has no var[%r]; reading each guide's target from its name before the first "
        "'_' or '-'.",
        guide_target_key,
    )
    return np.array([re.split(r"[_-]", str(name), maxsplit=1)[0] for name in guides.var_names])


def _register_from_guides(
    mdata,
    guide_modality: str,
    *,
    control: str,
    key_added: str,
    copy: bool,
    rna_modality: str,
    guide_threshold: float,
    guide_target_key: str,
):
    if guide_modality not in mdata.mod:
        raise KeyError(
            f"Modality {guide_modality!r} not found in the MuData (modalities: "
            f"{list(mdata.mod)}). Pass the guide-count modality as `perturbation_key`."
        )
    if rna_modality not in mdata.mod:
        raise KeyError(
            f"Modality {rna_modality!r} not found in the MuData (modalities: {list(mdata.mod)}). "
            "Pass the expression modality as `rna_modality`."
        )
    guides = mdata.mod[guide_modality]
    targets = _guide_targets(guides, guide_target_key)
    if control not in set(targets):
        counts = pd.Series(targets).value_counts().head(8)
        raise ValueError(
            f"No guide targets {control!r} in the {guide_modality!r} modality (target genes with "
            f"most guides: {', '.join(map(str, counts.index))}). Pass the target name of your "
            "non-targeting guides as `control=`."
        )
    counts = guides.X
    assigned = (
        (counts >= guide_threshold)
        if sp.issparse(counts)
        else np.asarray(counts >= guide_threshold)
    )
    assigned = sp.csr_matrix(assigned)
    labels = np.empty(guides.n_obs, dtype=object)
    for i in range(guides.n_obs):
        cols = assigned.indices[assigned.indptr[i] : assigned.indptr[i + 1]]
        if len(cols) == 0:
            labels[i] = np.nan
            continue
        genes = {targets[c] for c in cols} - {control}
        labels[i] = condition_label(genes)
    n_unassigned = int(pd.isna(labels).sum())
    if n_unassigned:
        logger.warning(
            "%d of %d cells have no guide with >= %s UMIs; they get no condition and are ignored.",
            n_unassigned,
            guides.n_obs,
            guide_threshold,
        )
    per_cell = pd.Series(labels, index=guides.obs_names)
    if not (per_cell == CONTROL).any():
        raise ValueError(
            f"No cell carries a {control!r} guide at >= {guide_threshold} UMIs, so there are no "
            "control cells. Lower `guide_threshold` or check `control=`."
        )
    present = sorted(set(per_cell.dropna()), key=lambda c: (c != CONTROL, c))
    if copy:
        mdata = mdata.copy()
    for target in (mdata, mdata.mod[rna_modality]):
        values = per_cell.reindex(target.obs_names).to_numpy()
        target.obs[key_added] = pd.Categorical(values, categories=present)
    _log_summary(pd.Categorical(per_cell.to_numpy(), categories=present), key_added)
    return mdata if copy else None

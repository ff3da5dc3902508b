"""Translate the perturbation labels users already have into scgears' canonical conditions."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

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
    control: str | Sequence[str] = "control",
    delimiter: str | None = None,
    drop_tokens: str | Sequence[str] | None = None,
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
    * guide-level labels such as Norman et al.'s ``guide_identity``
      (``"KLF1_NegCtrl0__KLF1_NegCtrl0"``, ``"CBL_CNN1__CBL_CNN1"``, controls
      ``"NegCtrl0_NegCtrl0__NegCtrl0_NegCtrl0"`` with ``NegCtrl0`` to ``NegCtrl10``) in one call:
      ``register_perturbations(adata, "guide_identity", control="NegCtrl*")``. A label made of two
      identical halves joined by a doubled delimiter counts once, tokens matching ``control`` are
      control guides (a label of control guides only is a control cell), and ``drop_tokens``
      removes other tokens that are not genes (e.g. plasmid names, ``drop_tokens="pDS*"``);
    * a :class:`~mudata.MuData` whose modality ``perturbation_key`` holds guide UMI counts
      (cells x guides). A cell is assigned every guide with at least ``guide_threshold`` UMIs; the
      guide's gene is read from ``var[guide_target_key]`` of that modality (or from the guide name
      before its first ``_`` or ``-`` when that column is absent); guides targeting ``control`` mark
      control cells. Cells with no guide at the threshold get no condition (missing value), are
      counted in the log and are ignored by scgears. The result is written to both
      ``mdata.obs`` and ``mdata[rna_modality].obs``.

    The expression matrix is never read or changed. All checks run before anything is written.
    Errors name the problem and its fix: no cells, numeric labels, missing or empty labels, no
    control cell, an ambiguous delimiter, and cells labelled ``"ctrl"`` (scgears' reserved control
    label) when ``control`` is another label. Warnings report labels that name a gene twice
    (``"A+A"`` counts as ``"A"``) and tokens that are neither genes of the shipped GO table (with
    aliases) nor of ``var_names`` (often guide names, which ``delimiter=``, ``control=`` or
    ``drop_tokens=`` fix).

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
        control guides for a MuData (e.g. ``"non-targeting"``). A list names several, and glob
        patterns (``"NegCtrl*"``) match control guide tokens inside labels; a label matching a
        pattern as a whole is a control unless one of its tokens is a known gene.
    delimiter
        Separator between gene names of a multi-gene label. ``None`` detects it.
    drop_tokens
        Tokens of the labels that are not genes and are dropped (a name, a glob pattern or a
        list), e.g. ``"pDS*"`` for plasmid suffixes such as ``"KLF1_pDS255"``. A label left with
        no gene raises an error (mark it as control with ``control=`` instead).
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

    Norman et al.'s guide identities, controls ``NegCtrl0`` to ``NegCtrl10``:

    >>> adata.obs["guide_identity"] = [  # doctest: +SKIP
    ...     "NegCtrl3_NegCtrl0__NegCtrl3_NegCtrl0", "KLF1_NegCtrl0__KLF1_NegCtrl0",
    ...     "CBL_CNN1__CBL_CNN1", ...]
    >>> sg.pp.register_perturbations(adata, "guide_identity", control="NegCtrl*")  # doctest: +SKIP
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
    if adata.n_obs == 0:
        raise ValueError(
            "register_perturbations got an AnnData with no cells (0 cells x "
            f"{adata.n_vars} genes). Check the subsetting that produced it and pass the screen's "
            "cells."
        )
    labels = adata.obs[perturbation_key]
    conditions = parse_labels(
        labels,
        control=control,
        delimiter=delimiter,
        drop_tokens=drop_tokens,
        source=perturbation_key,
        var_names=adata.var_names,
    )
    if copy:
        adata = adata.copy()
    adata.obs[key_added] = conditions
    _log_summary(conditions, key_added)
    return adata if copy else None


def parse_labels(
    labels: pd.Series,
    *,
    control: str | Sequence[str] = "control",
    delimiter: str | None = None,
    drop_tokens: str | Sequence[str] | None = None,
    source: str = "labels",
    var_names: Iterable[str] = (),
) -> pd.Categorical:
    """Parse raw perturbation labels into a categorical of canonical conditions.

    See :func:`register_perturbations` for the accepted formats. Raises a :class:`ValueError` that
    names the problem (missing control label, no control cells, empty labels, ambiguous delimiter,
    the reserved label ``"ctrl"``) and warns about repeated genes and tokens that are not genes.
    """
    labels = pd.Series(labels)
    if len(labels) == 0:
        raise ValueError(
            f"{source!r} has no cells (0 labels): pass the AnnData of the screen, not an empty "
            "subset."
        )
    if _is_numeric(labels):
        raise TypeError(
            f"{source!r} holds numbers ({labels.dtype}), not perturbation labels: scgears reads "
            "gene names from them. Map the codes to gene symbols first, e.g. "
            f"`adata.obs[{source!r}] = adata.obs[{source!r}].map({{0: 'control', 1: 'KLF1'}})`."
        )
    controls = _Controls(control)
    drop = _Controls(drop_tokens, what="drop_tokens") if drop_tokens is not None else None
    missing = labels.isna().to_numpy()
    if missing.any():
        example = np.flatnonzero(missing)[:3].tolist()
        raise ValueError(
            f"{int(missing.sum())} cells have a missing (NaN) label in {source!r} (e.g. rows "
            f"{example}). Label them (for instance as {controls.first!r} if they are controls) or "
            f"drop them with `adata = adata[adata.obs[{source!r}].notna()].copy()` before "
            "registering."
        )
    raw = labels.astype(str)
    unique = pd.Index(raw.unique())
    stripped = unique.str.strip()
    if "" not in controls.exact and (stripped == "").any():
        n_empty = int((raw.str.strip() == "").sum())
        raise ValueError(
            f"{n_empty} cells have an empty label in {source!r}. If they are control cells "
            "(pertpy's 'guide_ids' leaves controls empty), pass control=''; otherwise drop them."
        )
    if not any(controls.may_mark(label) for label in unique):
        _raise_control_not_found(raw, unique, controls, source)
    if CONTROL in set(unique) and not controls.label(CONTROL):
        n_reserved = int((raw == CONTROL).sum())
        raise ValueError(
            f"{n_reserved} cells are labelled {CONTROL!r} in {source!r}, but control="
            f"{control!r}: {CONTROL!r} is reserved for scgears' control condition and would be "
            f"merged into it silently. If they are control cells, pass "
            f"control={[*controls.values, CONTROL]!r}; otherwise rename them, e.g. "
            f"`adata.obs[{source!r}] = adata.obs[{source!r}].replace({CONTROL!r}, 'other')`."
        )

    # patterns are matched against whole labels only after parsing (see below)
    candidates = [u for u in unique if u not in controls.exact]
    sep = _detect_delimiter(candidates, control=control, delimiter=delimiter, source=source)
    mapping: dict[str, str] = {u: CONTROL for u in unique if u in controls.exact}
    genes_of: dict[str, list[str]] = {}
    dropped: dict[str, set[str]] = {}
    for label in candidates:
        genes, removed, has_control = _genes_of_label(label, sep, controls, drop)
        for token in removed:
            dropped.setdefault(token, set()).add(label)
        if not genes and removed and not has_control:
            raise ValueError(
                f"Label {label!r} in {source!r} has no gene left once drop_tokens removed "
                f"{removed}. If its cells are controls, add the label (or a pattern) to "
                "control=; otherwise drop those cells or narrow drop_tokens."
            )
        genes_of[label] = genes
    known = None
    if controls.patterns:
        # a label matching a control pattern as a whole is a control unless it names a gene
        # (e.g. "NegCtrl*" must not swallow "NegCtrl0_KLF1")
        known = _known_genes(var_names)
        for label, genes in list(genes_of.items()):
            if controls.matches(label) and not any(g in known for g in genes):
                mapping[label] = CONTROL
                del genes_of[label]
    for label, genes in genes_of.items():
        mapping[label] = condition_label(genes)
    if not any(v == CONTROL for v in mapping.values()):
        _raise_control_not_found(raw, unique, controls, source)

    counts = raw.value_counts()
    _report_tokens(genes_of, dropped, counts, sep, source, known or _known_genes(var_names))
    canonical = raw.map(mapping)
    categories = sorted(set(mapping.values()), key=lambda c: (c != CONTROL, c))
    return pd.Categorical(canonical.to_numpy(), categories=categories)


def _genes_of_label(label: str, sep: str | None, controls, drop):
    """The gene tokens of a label, the tokens ``drop`` removed, and whether it has a control."""
    genes, removed, has_control = [], [], False
    for token in _split(_one_half(label, sep), sep):
        if token in _FILLER_TOKENS:
            continue
        if controls.label(token):
            has_control = True
        elif drop is not None and drop.label(token):
            removed.append(token)
        else:
            genes.append(token)
    return genes, removed, has_control


class _Controls:
    """Control labels (or ``drop_tokens``): exact strings and glob patterns such as ``NegCtrl*``."""

    def __init__(self, values, what: str = "control"):
        values = [values] if isinstance(values, str) else values
        try:
            values = list(values)
        except TypeError:
            values = [values]
        if not values or not all(isinstance(v, str) for v in values):
            raise TypeError(
                f"{what} must be a label, a glob pattern such as 'NegCtrl*', or a list of them; "
                f"got {values!r}."
            )
        self.values = values
        self.exact = {v for v in values if not _is_pattern(v)}
        self.patterns = [v for v in values if _is_pattern(v)]
        self.first = values[0]

    def matches(self, text: str) -> bool:
        """``text`` matches one of the glob patterns."""
        return any(fnmatchcase(text, p) for p in self.patterns)

    def label(self, text: str) -> bool:
        """``text`` is one of the exact labels or matches a pattern."""
        return text in self.exact or self.matches(text)

    def may_mark(self, label: str) -> bool:
        """``label`` is, or contains, a control label (a cheap test before parsing)."""
        return self.label(label) or any(fnmatchcase(label, f"*{p}*") for p in self.patterns)


def _is_pattern(text: str) -> bool:
    return any(c in text for c in "*?[")


def _is_numeric(labels: pd.Series) -> bool:
    dtype = labels.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    return pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def _raise_control_not_found(raw: pd.Series, unique: pd.Index, controls, source: str):
    counts = raw.value_counts()
    top = ", ".join(f"{k!r} ({v} cells)" for k, v in counts.head(8).items())
    hint = ""
    for candidate in ("ctrl", "control", "non-targeting", "NT", "Control", "CTRL", ""):
        if candidate not in controls.values and candidate in set(unique):
            hint = f" Did you mean control={candidate!r}?"
            break
    shown = repr(controls.values[0]) if len(controls.values) == 1 else repr(controls.values)
    raise ValueError(
        f"Control label {shown} not found in {source!r}. The most frequent labels are: "
        f"{top}.{hint} Pass the label of your control cells as `control=` (a list, or a glob "
        "pattern such as 'NegCtrl*' for several control guides)."
    )


def _one_half(label: str, sep: str | None) -> str:
    """``"A_B__A_B"`` -> ``"A_B"``: guide identities that repeat the pair (Norman et al. 2019)."""
    if sep is None or sep * 2 not in label:
        return label
    left, _, right = label.partition(sep * 2)
    return left if left == right else label


def _known_genes(var_names: Iterable[str]) -> frozenset[str]:
    """Names scgears knows as genes: the shipped GO table, its aliases and the measured genes."""
    from .._resources import gene_aliases, go_annotations

    return frozenset(go_annotations()) | frozenset(gene_aliases()) | frozenset(map(str, var_names))


def _report_tokens(genes_of, dropped, counts, sep, source, known) -> None:
    """Warn about repeated genes and tokens that are not genes; log the dropped tokens."""
    repeated = [label for label, genes in genes_of.items() if len(set(genes)) < len(genes)]
    if repeated:
        n_cells = int(sum(counts[label] for label in repeated))
        shown = ", ".join(
            f"{label!r} -> {condition_label(genes_of[label])!r}" for label in repeated[:5]
        )
        warnings.warn(
            f"{len(repeated)} labels in {source!r} ({n_cells} cells) name a gene more than once: "
            f"{shown}{' ...' if len(repeated) > 5 else ''}. A condition is a set of genes, so "
            "each gene counts once. If the labels are guide names of one gene, this is expected; "
            "otherwise check them.",
            UserWarning,
            stacklevel=4,
        )
    if dropped:
        logger.info(
            "Dropped tokens matching drop_tokens (not genes) from %d labels: %s.",
            len(set().union(*dropped.values())),
            preview(sorted(dropped)),
        )
    unknown: dict[str, list[str]] = {}
    for label, genes in genes_of.items():
        for g in dict.fromkeys(genes):
            if g not in known:
                unknown.setdefault(g, []).append(label)
    if not unknown:
        return
    order = sorted(unknown, key=lambda t: -sum(counts[label] for label in unknown[t]))
    shown = ", ".join(
        f"{t!r} (in {unknown[t][0]!r}, {sum(counts[label] for label in unknown[t])} cells)"
        for t in order[:5]
    )
    split = f"split at {sep!r}" if sep is not None else "whole labels"
    n_genes = len({g for genes in genes_of.values() for g in genes})
    warnings.warn(
        f"{len(unknown)} of {n_genes} perturbed gene names in {source!r} ({split}) are neither "
        f"genes of the shipped GO table (or their aliases) nor of adata.var_names: {shown}"
        f"{' ...' if len(order) > 5 else ''}. They are kept as genes of their conditions. If they "
        "are not genes (guide or plasmid names such as 'KLF1_pDS255', control guides such as "
        "'NegCtrl0'), drop them with drop_tokens= or mark control guides with control= (lists and "
        "glob patterns such as 'pDS*' or 'NegCtrl*' work), pass the delimiter that separates genes "
        "with delimiter=, or clean the labels first. Names of other species than human are only "
        "known when measured.",
        UserWarning,
        stacklevel=4,
    )


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
    controls = _Controls(control)
    is_control = np.array([controls.label(t) for t in targets], dtype=bool)
    if not is_control.any():
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
        genes = {targets[c] for c in cols if not is_control[c]}
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

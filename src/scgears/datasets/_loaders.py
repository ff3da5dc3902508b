"""Loaders of published Perturb-seq screens: downloaded once, verified by hash, register-ready.

The files are scPerturb's harmonised AnnData files (Peidli et al., Nature Methods 2024; Zenodo
record 10044268, CC BY 4.0), pinned by the md5 checksums Zenodo publishes for them. Each loader
returns cells x genes with

* ``obs["perturbation_name"]`` in pertpy's convention (``"control"``, ``"KLF1"``, ``"CBL+CNN1"``;
  the genes of a combination sorted), so that every loader and
  :func:`~scgears.datasets.simulate_screen` are registered by the same call,
  ``sg.pp.register_perturbations(adata, "perturbation_name", control="control")``;
* ``obs["perturbation_type"]`` (``"CRISPRa"`` or ``"CRISPRi"``);
* ``layers["counts"]`` with the raw counts and ``X`` = log1p of ``normalize_total`` (median target
  sum), as GEARS expects;
* by default the ``n_top_genes`` highly variable genes plus every perturbed gene that was measured
  (GEARS' preprocessing of Norman: 5,000 genes plus the perturbed ones).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .._conditions import condition_label
from .._constants import CONTROL_LABEL

logger = logging.getLogger(__name__)

#: Environment variable that overrides the default cache folder of the loaders.
DATA_DIR_ENV = "SCGEARS_DATA_DIR"
#: Column every loader writes, and the label of control cells in it (pertpy's convention).
PERTURBATION_KEY = "perturbation_name"
_ZENODO = "https://zenodo.org/records/10044268/files/{}?download=1"
#: Values read at a time from a file (dense files too), and cells used to rank variable genes.
_READ_VALUES = 50_000_000
_HVG_CELLS = 20_000


class DatasetUnavailableError(OSError):
    """A dataset could not be downloaded or verified; the message says where to put it by hand."""


@dataclass(frozen=True)
class RemoteFile:
    """A pinned file: where to get it, what it must hash to, how big it is."""

    filename: str
    urls: tuple[str, ...]
    known_hash: str
    size: int
    perturbation_type: str
    reference: str


#: The files behind each loader. md5 checksums and sizes as published by Zenodo for scPerturb's
#: record 10044268 (unchanged in its later version 13350497). The Adamson file is also mirrored,
#: byte for byte, by pertpy's example data.
REGISTRY: dict[str, RemoteFile] = {
    "norman2019": RemoteFile(
        filename="NormanWeissman2019_filtered.h5ad",
        urls=(_ZENODO.format("NormanWeissman2019_filtered.h5ad"),),
        known_hash="md5:c870e6967d91c017d9da827bab183cd6",
        size=698_680_199,
        perturbation_type="CRISPRa",
        reference="Norman et al., Science 365:786-793 (2019)",
    ),
    "adamson2016": RemoteFile(
        filename="AdamsonWeissman2016_GSM2406681_10X010.h5ad",
        urls=(
            _ZENODO.format("AdamsonWeissman2016_GSM2406681_10X010.h5ad"),
            "https://exampledata.scverse.org/pertpy/adamson_2016_upr_perturb_seq.h5ad",
        ),
        known_hash="md5:2fa44ea61a8dd35742af618638ec65fc",
        size=471_286_951,
        perturbation_type="CRISPRi",
        reference="Adamson et al., Cell 167:1867-1882 (2016)",
    ),
    "replogle2022_k562_essential": RemoteFile(
        filename="ReplogleWeissman2022_K562_essential.h5ad",
        urls=(_ZENODO.format("ReplogleWeissman2022_K562_essential.h5ad"),),
        known_hash="md5:d8cba17576d1a8afc0f7d71b79cad0f7",
        size=1_546_729_675,
        perturbation_type="CRISPRi",
        reference="Replogle et al., Cell 185:2559-2575 (2022)",
    ),
}

#: Adamson's guide identities end in the guide's plasmid (``"SPI1_pDS255"``); these targets are
#: its non-targeting controls, and ``"*"`` marks cells with an ambiguous guide.
_PLASMID_SUFFIX = re.compile(r"_p[A-Za-z]+\d+(?:-\d+)?$")
_ADAMSON_CONTROLS = frozenset({"62(mod)", "63(mod)", "Gal4-4(mod)", "3x_neg_ctrl"})
_UNASSIGNED = frozenset({"", "*", "nan", "None"})
#: Control labels of scPerturb files (they differ between datasets).
_CONTROL_LABELS = frozenset({"control", "non-targeting", "ctrl", "NT", "non_targeting"})


def norman2019(*, n_top_genes: int | None = 5000, data_dir: str | os.PathLike | None = None):
    """Norman et al. (2019): CRISPRa in K562 cells, 105 genes alone and 131 pairs, GI screen.

    scPerturb's ``NormanWeissman2019_filtered.h5ad`` (111,445 cells, 699 MB download), the GEARS
    paper's combinatorial benchmark. See the module documentation for the returned layout.

    Parameters
    ----------
    n_top_genes
        Keep this many highly variable genes (scanpy's ``seurat`` flavour on the log-normalised
        data) plus every perturbed gene that was measured; ``None`` keeps every gene.
    data_dir
        Folder of the cached download; default ``$SCGEARS_DATA_DIR``, else pooch's user cache
        (``~/.cache/scgears`` on Linux).

    Returns
    -------
    Cells x genes, register-ready: ``obs["perturbation_name"]`` with ``"control"`` cells.

    Raises
    ------
    DatasetUnavailableError
        When the file cannot be downloaded (offline, proxy) or does not match its checksum; the
        message names the URL and the path where a copy downloaded by hand is picked up.

    Examples
    --------
    >>> import scgears as sg
    >>> adata = sg.datasets.norman2019()  # doctest: +SKIP
    >>> sg.pp.register_perturbations(adata, "perturbation_name")  # doctest: +SKIP
    """
    return _load("norman2019", n_top_genes=n_top_genes, data_dir=data_dir)


def adamson2016(*, n_top_genes: int | None = 5000, data_dir: str | os.PathLike | None = None):
    """Adamson et al. (2016): CRISPRi UPR Perturb-seq in K562 cells, 82 genes alone.

    scPerturb's ``AdamsonWeissman2016_GSM2406681_10X010.h5ad`` (65,337 cells, 471 MB download;
    pertpy's ``adamson_2016_upr_perturb_seq`` is the same file), the source of GEARS' ``adamson``
    data. Guide identities are reduced to their target gene (the plasmid suffix, ``"_pDS255"``, is
    dropped); the non-targeting guides ``62(mod)``, ``63(mod)``, ``Gal4-4(mod)`` and
    ``3x_neg_ctrl`` become ``"control"``; cells without an unambiguous guide (``"*"`` or missing)
    are left out. The raw guide identity is kept in ``obs["guide_identity"]``.

    Parameters
    ----------
    n_top_genes
        Keep this many highly variable genes plus every perturbed gene that was measured;
        ``None`` keeps every gene.
    data_dir
        Folder of the cached download; default ``$SCGEARS_DATA_DIR``, else pooch's user cache.

    Returns
    -------
    Cells x genes, register-ready: ``obs["perturbation_name"]`` with ``"control"`` cells.

    Raises
    ------
    DatasetUnavailableError
        When the file cannot be downloaded or verified (the message says where to put it).

    Examples
    --------
    >>> import scgears as sg
    >>> adata = sg.datasets.adamson2016()  # doctest: +SKIP
    >>> sg.pp.register_perturbations(adata, "perturbation_name")  # doctest: +SKIP
    """
    return _load("adamson2016", n_top_genes=n_top_genes, data_dir=data_dir)


def replogle2022_k562_essential(
    *, n_top_genes: int | None = 5000, data_dir: str | os.PathLike | None = None
):
    """Replogle et al. (2022): CRISPRi of ~2,000 essential genes in K562 cells, one at a time.

    scPerturb's ``ReplogleWeissman2022_K562_essential.h5ad`` (310,385 cells, 1.5 GB download);
    reading it needs about 10 GB of memory. Non-targeting cells become ``"control"``.

    Parameters
    ----------
    n_top_genes
        Keep this many highly variable genes plus every perturbed gene that was measured;
        ``None`` keeps every gene.
    data_dir
        Folder of the cached download; default ``$SCGEARS_DATA_DIR``, else pooch's user cache.

    Returns
    -------
    Cells x genes, register-ready: ``obs["perturbation_name"]`` with ``"control"`` cells.

    Raises
    ------
    DatasetUnavailableError
        When the file cannot be downloaded or verified (the message says where to put it).

    Examples
    --------
    >>> import scgears as sg
    >>> adata = sg.datasets.replogle2022_k562_essential()  # doctest: +SKIP
    >>> sg.pp.register_perturbations(adata, "perturbation_name")  # doctest: +SKIP
    """
    return _load("replogle2022_k562_essential", n_top_genes=n_top_genes, data_dir=data_dir)


# --------------------------------------------------------------------------------------------------
# Download and cache


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``path``, else ``$SCGEARS_DATA_DIR``, else pooch's user cache."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("scgears"))


def fetch(name: str, path: str | os.PathLike | None = None) -> Path:
    """Path of the verified local copy of dataset ``name``, downloading it when needed.

    A file already at the expected path is used without any network access when its checksum
    matches. Otherwise each URL of the registry is tried in turn.
    """
    if name not in REGISTRY:
        raise KeyError(f"Unknown dataset {name!r}; known: {sorted(REGISTRY)}.")
    import pooch

    remote = REGISTRY[name]
    folder = data_dir(path)
    target = folder / remote.filename
    if not target.is_file():
        _check_writable(folder, from_env=path is None and bool(os.environ.get(DATA_DIR_ENV)))
    failures = []
    for url in remote.urls:
        try:
            downloader = pooch.HTTPDownloader(progressbar=_progressbar(), timeout=60)
            local = pooch.retrieve(
                url,
                known_hash=remote.known_hash,
                fname=remote.filename,
                path=folder,
                downloader=downloader,
            )
            return Path(local)
        except (OSError, ValueError) as error:  # network, disk, checksum: the same advice
            failures.append(f"  {url}\n    -> {type(error).__name__}: {error}")
    raise DatasetUnavailableError(_unavailable_message(remote, target, failures))


def _check_writable(folder: Path, *, from_env: bool) -> None:
    """Refuse a cache folder the download cannot be written to, before any download."""
    origin = f"${DATA_DIR_ENV}" if from_env else "data_dir="
    fix = f"Set {origin} to a folder you can write to" + (
        f" (or unset ${DATA_DIR_ENV} for the default cache)." if from_env else "."
    )
    above = next((p for p in [folder, *folder.absolute().parents] if p.exists()), None)
    if above is not None and not above.is_dir():
        raise DatasetUnavailableError(
            f"The data folder {str(folder)!r} ({origin}) cannot be used: {str(above)!r} is a "
            f"file, not a folder. {fix}"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetUnavailableError(
            f"The data folder {str(folder)!r} ({origin}) cannot be created "
            f"({error.strerror or error}). {fix}"
        ) from error
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DatasetUnavailableError(
            f"The data folder {str(folder)!r} ({origin}) is not writable, so the download cannot "
            f"be saved there. {fix}"
        )


def _progressbar() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return False
    return True


def _unavailable_message(remote: RemoteFile, target: Path, failures: list[str]) -> str:
    present = ""
    if target.exists():
        present = (
            f"\nA file is already at {target} ({target.stat().st_size:,} bytes) but its checksum "
            f"is not {remote.known_hash}: it is incomplete or a different file. Replace it.\n"
        )
    return (
        f"Could not download {remote.filename} ({remote.size / 1e6:,.0f} MB, {remote.reference})."
        f"\nTried:\n"
        + "\n".join(failures)
        + "\n"
        + present
        + f"\nWithout network access, download it elsewhere from\n  {remote.urls[0]}\n"
        f"and copy it to\n  {target}\n"
        f"(checksum {remote.known_hash}); the loader then uses that file. Pass `data_dir=` or set "
        f"${DATA_DIR_ENV} to use another folder."
    )


# --------------------------------------------------------------------------------------------------
# From scPerturb's layout to a register-ready AnnData


def _load(name: str, *, n_top_genes: int | None, data_dir) -> AnnData:
    if n_top_genes is not None and (
        not isinstance(n_top_genes, int | np.integer) or n_top_genes < 1
    ):
        raise ValueError(f"n_top_genes must be a positive integer or None, got {n_top_genes!r}.")
    path = fetch(name, data_dir)
    logger.info("Reading %s", path)
    return prepare_screen(
        _read_sparse(path),
        name=name,
        perturbation_type=REGISTRY[name].perturbation_type,
        n_top_genes=n_top_genes,
    )


def _read_sparse(path: Path) -> AnnData:
    """Read an h5ad with ``X`` (and a ``counts`` layer) as CSR float32, in blocks of cells.

    Some scPerturb files store ``X`` dense; reading them block by block never holds the dense
    matrix in memory.
    """
    import anndata

    backed = anndata.read_h5ad(path, backed="r")
    try:
        rows = max(1, _READ_VALUES // max(1, backed.n_vars))

        def as_csr(matrix) -> sp.csr_matrix:
            blocks = [
                sp.csr_matrix(matrix[start : start + rows], dtype=np.float32)
                for start in range(0, backed.n_obs, rows)
            ]
            return sp.vstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]

        layers = {"counts": as_csr(backed.layers["counts"])} if "counts" in backed.layers else {}
        return AnnData(
            X=as_csr(backed.X),
            obs=backed.obs.copy(),
            var=backed.var.copy(),
            layers=layers,
        )
    finally:
        backed.file.close()


def prepare_screen(
    adata: AnnData, *, name: str, perturbation_type: str, n_top_genes: int | None
) -> AnnData:
    """Labels, counts and log-normalised ``X``, and the gene selection, of a scPerturb screen.

    ``adata`` (with CSR data) is consumed: the result reuses its arrays.
    """
    if "perturbation" not in adata.obs.columns:
        raise KeyError(
            f"{name}: expected scPerturb's obs['perturbation'] column; found "
            f"{list(adata.obs.columns)[:12]}. Is this the right file?"
        )
    raw = adata.obs["perturbation"]
    labels = _adamson_labels(raw) if name == "adamson2016" else _scperturb_labels(raw)
    keep = labels.notna().to_numpy()
    if not (labels[keep] == CONTROL_LABEL).any():
        raise ValueError(
            f"{name}: no control cells recognised in obs['perturbation'] (labels such as "
            f"{list(pd.unique(raw.astype(str)))[:8]})."
        )
    if not keep.all():
        logger.info("%s: leaving out %d cells without an unambiguous guide.", name, (~keep).sum())
        adata = adata[keep].copy()
    labels = labels[keep].to_numpy()
    if name == "adamson2016":
        adata.obs["guide_identity"] = raw[keep].astype(str).to_numpy()
    adata.obs[PERTURBATION_KEY] = pd.Categorical(
        labels, categories=[CONTROL_LABEL, *sorted(set(labels) - {CONTROL_LABEL})]
    )
    adata.obs["perturbation_type"] = pd.Categorical(
        np.full(adata.n_obs, perturbation_type), categories=[perturbation_type]
    )
    adata.var_names_make_unique()

    counts = adata.layers.get("counts", adata.X)
    if "counts" not in adata.layers and not _looks_like_counts(counts):
        logger.info("%s: X holds no integer counts and there is no counts layer; X is kept.", name)
        genes = _select_genes(adata, adata.X, n_top_genes) if n_top_genes else None
        return adata if genes is None else adata[:, genes].copy()
    counts = sp.csr_matrix(counts, dtype=np.float32)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    if np.any(totals == 0):
        raise ValueError(f"{name}: {int((totals == 0).sum())} cells have no counts; damaged file?")
    target_sum = float(np.median(totals))  # over all genes, before any gene is dropped
    if n_top_genes is not None and n_top_genes < adata.n_vars:
        genes = _select_genes(adata, counts, n_top_genes, totals=totals, target_sum=target_sum)
        counts = counts[:, genes]
        adata = AnnData(obs=adata.obs, var=adata.var.iloc[genes].copy())
    else:
        adata = AnnData(obs=adata.obs, var=adata.var)
    adata.layers["counts"] = counts
    adata.X = log_normalise(counts, totals, target_sum)
    adata.uns["log1p"] = {"base": None}
    logger.info(
        "%s: %d cells x %d genes, %d conditions. Register with "
        "sg.pp.register_perturbations(adata, %r, control=%r).",
        name,
        adata.n_obs,
        adata.n_vars,
        adata.obs[PERTURBATION_KEY].nunique(),
        PERTURBATION_KEY,
        CONTROL_LABEL,
    )
    return adata


def log_normalise(counts: sp.csr_matrix, totals: np.ndarray, target_sum: float) -> sp.csr_matrix:
    """``log1p`` of counts scaled to ``target_sum`` per cell (scanpy's normalize_total + log1p)."""
    x = counts.copy()
    x.data *= np.repeat((target_sum / totals).astype(np.float32), np.diff(x.indptr))
    np.log1p(x.data, out=x.data)
    return x


def _scperturb_labels(raw: pd.Series) -> pd.Series:
    """Map scPerturb labels (``"control"``, ``"KLF1"``, ``"CBL_CNN1"``) to pertpy's."""
    values = raw.astype(str)
    mapping = {}
    for label in pd.unique(values):
        if label in _CONTROL_LABELS:
            mapping[label] = CONTROL_LABEL
        elif label.strip() in _UNASSIGNED:
            mapping[label] = None
        else:
            mapping[label] = condition_label(t for t in re.split(r"[_+]", label) if t)
    out = values.map(mapping)
    out[raw.isna().to_numpy()] = None
    return out


def _adamson_labels(raw: pd.Series) -> pd.Series:
    """Adamson guide identities (``"SPI1_pDS255"``, ``"63(mod)_pBA580"``) -> target genes."""
    values = raw.astype(str)
    mapping = {}
    for label in pd.unique(values):
        target = _PLASMID_SUFFIX.sub("", label.strip())
        if label.strip() in _UNASSIGNED:
            mapping[label] = None
        elif target in _ADAMSON_CONTROLS or label in _CONTROL_LABELS:
            mapping[label] = CONTROL_LABEL
        else:
            mapping[label] = condition_label(t for t in target.split("_") if t)
    out = values.map(mapping)
    out[raw.isna().to_numpy()] = None
    return out


def _looks_like_counts(matrix) -> bool:
    values = matrix.data if sp.issparse(matrix) else np.asarray(matrix).ravel()
    sample = np.asarray(values[:1_000_000])
    return bool(sample.size) and bool(np.all(sample >= 0)) and bool(np.all(np.mod(sample, 1) == 0))


def _select_genes(adata, matrix, n_top_genes, *, totals=None, target_sum=None) -> np.ndarray:
    """Positions of the ``n_top_genes`` most variable genes and of every measured perturbed gene.

    Variability is scanpy's ``seurat`` flavour on log-normalised data, estimated on at most
    ``_HVG_CELLS`` cells drawn at random (seed 0) so that the full log-normalised matrix of every
    gene is never built.
    """
    import scanpy as sc

    rng = np.random.default_rng(0)
    n_cells = matrix.shape[0]
    rows = np.sort(rng.choice(n_cells, size=min(n_cells, _HVG_CELLS), replace=False))
    sample = sp.csr_matrix(matrix[rows], dtype=np.float32)
    if totals is not None:
        sample = log_normalise(sample, totals[rows], target_sum)
    view = AnnData(X=sample, var=pd.DataFrame(index=adata.var_names))
    view.uns["log1p"] = {"base": None}
    hvg = sc.pp.highly_variable_genes(view, n_top_genes=n_top_genes, inplace=False)
    keep = np.asarray(hvg["highly_variable"], dtype=bool)
    perturbed = {
        gene
        for label in adata.obs[PERTURBATION_KEY].cat.categories
        if label != CONTROL_LABEL
        for gene in label.split("+")
    }
    keep |= np.asarray(adata.var_names.isin(sorted(perturbed)))
    return np.flatnonzero(keep)

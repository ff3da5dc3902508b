"""Saving and loading a GEARS model as data: JSON, an ``.npz`` of plain arrays, a tensor file.

A model folder is something people download and share, so loading it must never run code. It
holds ``model.json`` (format, settings, registered keys, training history), ``graphs.npz`` (graphs
and vocabularies as numeric and unicode arrays, read with ``allow_pickle=False``) and
``model.pt`` (a dict of tensors, read with ``torch.load(weights_only=True)``). Anything else is
refused with an error; scvi-tools' own format, which unpickles, is never read.
"""

from __future__ import annotations

import json
import logging
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from ._graphs import ModelGraphs

logger = logging.getLogger(__name__)

FORMAT = "scgears.GEARS"
FORMAT_VERSION = 1
FILES = ("model.json", "graphs.npz", "model.pt")


def _plain(value, name: str):
    """JSON-able copy of an init argument, or an error naming it."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v, name) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, name) for k, v in value.items()}
    raise TypeError(
        f"GEARS argument {name}={value!r} cannot be saved as plain data; pass a str, number, "
        "bool or list of those."
    )


def _history(history) -> dict:
    out = {}
    for key, frame in (history or {}).items():
        values = np.asarray(frame.to_numpy(dtype=float)).ravel()
        out[key] = [None if not np.isfinite(v) else float(v) for v in values]
    return out


class ModelIOMixin:
    """:meth:`save` and :meth:`load` of :class:`~scgears.model.GEARS`."""

    def save(self, dir_path: str | Path, *, overwrite: bool = False, **kwargs) -> None:
        """Save the model to a folder of plain data (no pickles).

        Parameters
        ----------
        dir_path
            Folder to create.
        overwrite
            Replace the model files of an existing folder.

        Examples
        --------
        >>> model.save("gears_model")  # doctest: +SKIP
        >>> model = sg.model.GEARS.load("gears_model", adata=adata)  # doctest: +SKIP
        """
        # scvi-tools' checkpoint callback passes these two; a GEARS folder holds the model only
        kwargs.pop("prefix", None)
        if kwargs.pop("save_anndata", False):
            raise TypeError(
                "GEARS.save does not save the AnnData (save_anndata=True): a GEARS folder holds "
                "the model only; save the AnnData with adata.write_h5ad."
            )
        if kwargs:
            raise TypeError(
                f"GEARS.save got unexpected arguments {sorted(kwargs)}: a GEARS folder holds the "
                "model only (save the AnnData with adata.write_h5ad)."
            )
        path = Path(dir_path)
        if path.exists() and not path.is_dir():
            raise FileExistsError(f"{path} exists and is a file; choose a folder path.")
        if path.is_dir() and any(path.iterdir()) and not overwrite:
            raise FileExistsError(
                f"{path} already exists and is not empty; pass overwrite=True to replace the "
                "model saved there, or choose another folder."
            )
        init = self.init_params_
        arguments = {
            **{k: v for k, v in init["non_kwargs"].items() if k not in ("adata", "registry")},
            **init["kwargs"].get("module_kwargs", {}),
        }
        setup = self.adata_manager.registry["setup_args"] if self.adata_manager else {}
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "arguments": {k: _plain(v, k) for k, v in arguments.items()},
            "setup_args": {k: _plain(v, k) for k, v in setup.items() if k != "kwargs"},
            "is_trained": bool(self.is_trained_),
            "history": _history(self.history_),
        }
        state = {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}
        text = json.dumps(meta, indent=1)  # fails before anything is written
        path.mkdir(parents=True, exist_ok=True)
        (path / "model.json").write_text(text)
        np.savez(path / "graphs.npz", **self.graphs.to_arrays())
        torch.save(state, path / "model.pt")

    @classmethod
    def load(cls, dir_path: str | Path, adata: AnnData | None = None, *, device: str = "cpu"):
        """Load a model saved by :meth:`save`; never unpickles (a model folder is data).

        ``adata`` must have the model's genes, in the same order, and the conditions registered
        by :func:`~scgears.pp.register_perturbations`; graphs, vocabularies and training means
        come from the folder, not from ``adata``. On any error nothing is written to ``adata``.

        Parameters
        ----------
        dir_path
            Folder written by :meth:`save`.
        adata
            AnnData to predict (and evaluate) on.
        device
            Torch device of the loaded weights.

        Examples
        --------
        >>> model = sg.model.GEARS.load("gears_model", adata=adata)  # doctest: +SKIP
        """
        path = Path(dir_path)
        meta, graphs, state = _read_folder(path)
        if adata is None:
            raise ValueError(
                "GEARS.load needs adata=: an AnnData with the model's genes and registered "
                "perturbations (sg.pp.register_perturbations)."
            )
        genes = np.asarray(adata.var_names).astype(str)
        if not np.array_equal(genes, graphs.genes):
            same_set = len(genes) == len(graphs.genes) and set(genes) == set(graphs.genes)
            raise ValueError(
                f"The AnnData's genes differ from the model's ({len(graphs.genes):,} genes saved, "
                f"{len(genes):,} in adata)"
                + (
                    ": same genes, another order. Reorder with adata = adata[:, model_genes]"
                    if same_set
                    else ". Subset the AnnData to the model's genes (graphs.npz 'genes')"
                )
                + " before loading."
            )
        obs_before, uns_before = set(adata.obs.columns), set(adata.uns)
        try:
            cls.setup_anndata(adata, _loading=True, **meta["setup_args"])
            model = cls(adata, graphs=graphs, **meta["arguments"])
            model.module.load_state_dict(state)
        except Exception:
            # a failed load writes nothing: remove what registration added
            for column in set(adata.obs.columns) - obs_before:
                del adata.obs[column]
            for key in set(adata.uns) - uns_before:
                del adata.uns[key]
            raise
        model.module.to(device)
        model.is_trained_ = bool(meta.get("is_trained", True))
        history = meta.get("history") or {}
        model.history_ = {
            k: pd.DataFrame({k: [np.nan if v is None else v for v in values]})
            for k, values in history.items()
        } or None
        return model


def _read_folder(path: Path) -> tuple[dict, ModelGraphs, dict[str, torch.Tensor]]:
    """The three files of a model folder, read without unpickling; clear errors otherwise."""
    if not path.exists():
        raise FileNotFoundError(f"No GEARS model at {path}: the folder does not exist.")
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is a file; GEARS.load takes the folder model.save wrote.")
    present = {p.name for p in path.iterdir()}
    if not present:
        raise FileNotFoundError(f"No GEARS model at {path}: the folder is empty.")
    missing = [name for name in FILES if name not in present]
    if missing:
        hint = (
            " It looks like scvi-tools' pickled format, which scgears does not load because "
            "unpickling a downloaded file can run arbitrary code: re-save the model with the "
            "scgears version that wrote it (model.save)."
            if "model.pt" in present and "model.json" in missing
            else ""
        )
        raise FileNotFoundError(
            f"{path} is not a GEARS model folder: missing {', '.join(missing)}.{hint}"
        )
    try:
        meta = json.loads((path / "model.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path / 'model.json'} is not valid JSON ({error}).") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path / 'model.json'} does not describe a {FORMAT} model.")
    if meta.get("version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path} was saved by a newer scgears (format {meta['version']}); upgrade scgears."
        )
    try:
        with np.load(path / "graphs.npz", allow_pickle=False) as arrays:
            graphs = ModelGraphs.from_arrays({k: arrays[k] for k in arrays.files})
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{path / 'graphs.npz'} is corrupt or holds objects that would need unpickling "
            f"({error}); it must be the file model.save wrote."
        ) from error
    try:
        state = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        raise ValueError(
            f"{path / 'model.pt'} is corrupt or is not a plain file of tensors, and scgears does "
            "not unpickle anything else (a model folder is data, not code; loading a pickle can "
            f"run arbitrary code). Underlying error: {str(error).splitlines()[0][:200]}"
        ) from error
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ValueError(f"{path / 'model.pt'} must hold a dict of tensors (model.save's output).")
    return meta, graphs, state

"""Run the reference GEARS (cell-gears 0.1.2) on an scgears AnnData, for side-by-side benchmarks.

The reference lives in its own virtual environment (``benchmarks/reference/setup_env.sh``); this
module, used from scgears' environment, converts the data to the reference's format, runs
``benchmarks/reference/run_reference.py`` with the reference's python in a subprocess, and parses
what it wrote. The reference's code is never imported here.

Example (from the ``benchmarks`` folder, after ``bash reference/setup_env.sh``)::

    import scgears as sg
    from _reference import reference_predict, reference_throughput

    sg.pp.register_perturbations(adata, "condition")
    sg.pp.split_perturbations(adata, kind="simulation", seed=1)
    stats = reference_throughput(adata, steps=10)             # dict: cells_per_s, peak RSS, ...
    pred = reference_predict(adata, epochs=2)                 # profile AnnData of the test set

The python of the reference environment is ``$SCGEARS_REFERENCE_PYTHON`` (default
``/work/refenv/bin/python``).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import resource
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from scgears._conditions import condition_genes
from scgears._constants import CONDITION_KEY, CONTROL, SPLIT_KEY, SPLIT_SETS
from scgears._matrix import expression_matrix, read_rows
from scgears._profiles import PROFILE_KEY, make_profiles

logger = logging.getLogger(__name__)

PYTHON_ENV_VAR = "SCGEARS_REFERENCE_PYTHON"
DEFAULT_PYTHON = "/work/refenv/bin/python"
RUNNER = Path(__file__).resolve().parent / "reference" / "run_reference.py"
SETUP_SCRIPT = Path(__file__).resolve().parent / "reference" / "setup_env.sh"
SOURCE = "reference GEARS"

#: The reference parses at most two genes per condition.
MAX_GENES = 2


class ReferenceUnavailableError(RuntimeError):
    """The reference environment is missing or broken."""


def reference_python() -> Path:
    """Path of the reference environment's python; a clear error when it is not installed."""
    python = Path(os.environ.get(PYTHON_ENV_VAR, DEFAULT_PYTHON))
    if not python.exists():
        raise ReferenceUnavailableError(
            f"The reference GEARS environment was not found ({python} does not exist). Create it "
            f"with `bash {SETUP_SCRIPT} [ENV_DIR]` and, for a non-default ENV_DIR, set "
            f"{PYTHON_ENV_VAR}=ENV_DIR/bin/python."
        )
    return python


def gears_condition(label: str) -> str:
    """Canonical scgears label -> the reference's condition string (``A`` -> ``A+ctrl``).

    Examples
    --------
    >>> gears_condition("KLF1"), gears_condition("CBL+CNN1"), gears_condition("ctrl")
    ('KLF1+ctrl', 'CBL+CNN1', 'ctrl')
    """
    genes = condition_genes(label)
    if len(genes) > MAX_GENES:
        raise ValueError(f"The reference GEARS handles at most 2 genes per condition: {label!r}.")
    if not genes:
        return CONTROL
    return f"{genes[0]}+ctrl" if len(genes) == 1 else "+".join(genes)


def split_conditions(adata: AnnData, split_key: str = SPLIT_KEY) -> dict[str, list[str]]:
    """The canonical conditions of each split set, from ``uns[split_key]`` (or ``obs``)."""
    info = adata.uns.get(split_key)
    if isinstance(info, Mapping) and "conditions" in info:
        return {name: [str(c) for c in info["conditions"][name]] for name in SPLIT_SETS}
    if split_key in adata.obs.columns and CONDITION_KEY in adata.obs.columns:
        frame = adata.obs[[CONDITION_KEY, split_key]].dropna().astype(str).drop_duplicates()
        return {
            name: sorted(frame.loc[frame[split_key] == name, CONDITION_KEY]) for name in SPLIT_SETS
        }
    raise KeyError(
        f"No split found in uns[{split_key!r}] or obs[{split_key!r}]: run "
        "`sg.pp.split_perturbations(adata, ...)` first."
    )


def to_gears_format(
    adata: AnnData,
    *,
    condition_key: str = CONDITION_KEY,
    split_key: str = SPLIT_KEY,
    layer: str | None = None,
    cell_type: str = "cell",
) -> tuple[AnnData, dict[str, list[str]], list[str]]:
    """Convert an scgears AnnData to the reference's format; ``adata`` itself is not modified.

    Returns the GEARS-format AnnData (float32 CSR ``X``, ``obs["condition"]``,
    ``obs["cell_type"]``, ``var["gene_name"]`` = var names), the split as GEARS condition strings,
    and the canonical conditions left out because the reference cannot parse them (> 2 genes).
    Cells without a condition are left out too.
    """
    if condition_key not in adata.obs.columns:
        raise KeyError(
            f"obs[{condition_key!r}] not found: run `sg.pp.register_perturbations(adata, ...)`."
        )
    split = split_conditions(adata, split_key)
    labels = adata.obs[condition_key].astype(object).to_numpy()
    known = pd.notna(labels)
    too_many = sorted({c for c in labels[known] if len(condition_genes(str(c))) > MAX_GENES})
    keep = known & ~np.isin(labels, too_many)
    if too_many:
        logger.warning(
            "The reference GEARS cannot take conditions of more than 2 genes; leaving out %d: %s",
            len(too_many),
            ", ".join(too_many[:10]),
        )
    rows = np.flatnonzero(keep)
    matrix = read_rows(expression_matrix(adata, layer), rows, dense=False)
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    conditions = [gears_condition(str(c)) for c in labels[rows]]
    if CONTROL not in conditions:
        raise ValueError(f"No control ({CONTROL!r}) cells in obs[{condition_key!r}].")
    obs = pd.DataFrame(
        {"condition": conditions, "cell_type": cell_type},
        index=pd.Index(adata.obs_names[rows].astype(str)),
    )
    var_names = pd.Index(adata.var_names.astype(str))
    var = pd.DataFrame({"gene_name": var_names.to_numpy()}, index=var_names)
    gears_adata = AnnData(X=matrix, obs=obs, var=var)
    gears_split = {
        name: [gears_condition(c) for c in values if c not in too_many]
        for name, values in split.items()
    }
    return gears_adata, gears_split, too_many


def write_inputs(
    adata: AnnData, workdir: Path, **convert_kwargs
) -> tuple[Path, Path, dict[str, object]]:
    """Write the GEARS-format h5ad and split pickle into ``workdir``; returns their paths + info."""
    workdir.mkdir(parents=True, exist_ok=True)
    gears_adata, gears_split, too_many = to_gears_format(adata, **convert_kwargs)
    h5ad = workdir / "reference_input.h5ad"
    split = workdir / "reference_split.pkl"
    gears_adata.write_h5ad(h5ad)
    with open(split, "wb") as handle:
        pickle.dump(gears_split, handle)
    return h5ad, split, {"more_than_two_genes": too_many, "n_cells": gears_adata.n_obs}


def run_reference(
    adata: AnnData,
    *,
    mode: str,
    workdir: str | Path | None = None,
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 1e-3,
    hidden_size: int = 64,
    seed: int = 1,
    device: str = "cpu",
    steps: int = 20,
    warmup: int = 2,
    prediction: str = "evaluate",
    threads: int | None = None,
    go_cache: str | Path | None = None,
    timeout: float | None = None,
    condition_key: str = CONDITION_KEY,
    split_key: str = SPLIT_KEY,
    layer: str | None = None,
    reuse: bool = False,
) -> dict:
    """Convert ``adata``, run ``run_reference.py`` in the reference environment, return its JSON.

    ``workdir`` keeps inputs, logs (``reference.log``) and outputs; a temporary folder is used (and
    removed) when it is None, in which case ``mode="train"`` results are loaded before removal
    (key ``"prediction_arrays"``). ``go_cache`` is where the GO files are built once and reused
    (default ``~/.cache/scgears_reference/go``). With ``reuse``, a ``mode="train"`` run already
    in ``workdir`` with the same split, epochs, seed, batch size, learning rate and hidden size is
    read instead of trained again (the reference's training is deterministic for these).
    """
    if mode not in ("throughput", "train"):
        raise ValueError(f"mode must be 'throughput' or 'train', got {mode!r}.")
    python = reference_python()
    go_cache = Path(go_cache or Path.home() / ".cache" / "scgears_reference" / "go")
    with tempfile.TemporaryDirectory(prefix="scgears_reference_") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        wanted = {"epochs": epochs, "seed": seed, "batch_size": batch_size, "lr": lr,
                  "hidden_size": hidden_size}  # fmt: skip
        if reuse and mode == "train" and workdir is not None:
            previous = _previous_run(adata, work, wanted, condition_key, split_key, layer)
            if previous is not None:
                return previous
        h5ad, split, info = write_inputs(
            adata, work, condition_key=condition_key, split_key=split_key, layer=layer
        )
        command = [
            str(python), str(RUNNER), "--h5ad", str(h5ad), "--split", str(split),
            "--workdir", str(work), "--mode", mode, "--epochs", str(epochs),
            "--batch-size", str(batch_size), "--lr", str(lr), "--hidden-size", str(hidden_size),
            "--seed", str(seed), "--device", device, "--steps", str(steps),
            "--warmup", str(warmup), "--prediction", prediction, "--go-cache", str(go_cache),
        ]  # fmt: skip
        if threads:
            command += ["--threads", str(threads)]
        logger.info("Running the reference GEARS: %s", " ".join(command))
        start = time.perf_counter()
        with open(work / "reference.log", "w") as log:
            completed = subprocess.run(
                command, stdout=subprocess.DEVNULL, stderr=log, timeout=timeout, check=False
            )
        wall = time.perf_counter() - start
        if completed.returncode != 0:
            tail = (work / "reference.log").read_text()[-3000:]
            raise RuntimeError(
                f"The reference GEARS failed (exit {completed.returncode}); end of its log:\n{tail}"
            )
        result = json.loads((work / "result.json").read_text())
        result["conversion"] = info
        result["subprocess"] = {
            "wall_s": round(wall, 2),
            "children_peak_rss_mb": round(
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
            ),
        }
        if mode == "train":
            with np.load(work / "prediction.npz") as arrays:
                result["prediction_arrays"] = {key: arrays[key] for key in arrays.files}
    return result


def _previous_run(adata, work: Path, wanted: dict, condition_key, split_key, layer) -> dict | None:
    """The result of an earlier ``train`` run in ``work`` with the same inputs, or None."""
    files = [work / name for name in ("result.json", "prediction.npz", "reference_split.pkl")]
    if not all(f.exists() for f in files):
        return None
    result = json.loads(files[0].read_text())
    params = result.get("params", {})
    if result.get("mode") != "train" or any(params.get(k) != v for k, v in wanted.items()):
        return None
    _, split, _ = to_gears_format(
        adata, condition_key=condition_key, split_key=split_key, layer=layer
    )
    with open(files[2], "rb") as handle:
        if pickle.load(handle) != split:
            return None
    logger.info("Reusing the reference run in %s.", work)
    with np.load(files[1]) as arrays:
        result["prediction_arrays"] = {key: arrays[key] for key in arrays.files}
    return result


def reference_throughput(adata: AnnData, **kwargs) -> dict:
    """Training throughput of the reference on ``adata``'s split (see :func:`run_reference`).

    Returns the runner's JSON: ``throughput`` (cells_per_s, seconds_per_step, ...), ``timings``
    (data processing apart), ``peak_rss_mb`` and ``data`` (what the reference kept).
    """
    return run_reference(adata, mode="throughput", **kwargs)


def control_mean(
    adata: AnnData, *, condition_key: str = CONDITION_KEY, layer: str | None = None
) -> np.ndarray:
    """Mean expression of the control cells (float64, var order)."""
    rows = np.flatnonzero(adata.obs[condition_key].astype(object).to_numpy() == CONTROL)
    if rows.size == 0:
        raise ValueError(f"No control ({CONTROL!r}) cells in obs[{condition_key!r}].")
    block = read_rows(expression_matrix(adata, layer), rows, dense=False)
    return np.asarray(block.mean(axis=0), dtype=np.float64).ravel()


def reference_predict(
    adata: AnnData,
    *,
    epochs: int = 20,
    missing: str = "drop",
    condition_key: str = CONDITION_KEY,
    layer: str | None = None,
    **kwargs,
) -> AnnData:
    """Train the reference on ``adata``'s split and predict every test condition, as profiles.

    Test conditions the reference cannot predict (a gene outside its GO graph, or more than two
    genes) are listed in ``uns["scgears_profile"]["not_predicted"]``. With ``missing="drop"``
    they have no row; with ``missing="control"`` they get the control mean (a no-change
    prediction) and ``obs["reference_predicted"] == False``. ``uns["scgears_profile"]`` also holds
    the runner's ``timings``, ``data`` report and ``peak_rss_mb``.
    """
    if missing not in ("drop", "control"):
        raise ValueError(f"missing must be 'drop' or 'control', got {missing!r}.")
    result = run_reference(adata, mode="train", epochs=epochs, condition_key=condition_key,
                           layer=layer, **kwargs)  # fmt: skip
    arrays = result.pop("prediction_arrays")
    if list(arrays["var_names"]) != list(adata.var_names.astype(str)):
        raise RuntimeError("The reference returned genes in another order than adata.var_names.")
    ctrl = control_mean(adata, condition_key=condition_key, layer=layer)
    conditions = [str(c) for c in arrays["conditions"]]
    mean = np.asarray(arrays["mean"], dtype=np.float32)
    test = split_conditions(adata, kwargs.get("split_key", SPLIT_KEY))["test"]
    not_predicted = sorted(set(test) - set(conditions))
    if not_predicted:
        logger.warning(
            "The reference GEARS did not predict %d test conditions (gene outside its GO graph "
            "or more than 2 genes): %s",
            len(not_predicted),
            ", ".join(not_predicted[:10]),
        )
    predicted = [True] * len(conditions)
    if missing == "control" and not_predicted:
        conditions += not_predicted
        mean = np.vstack([mean, np.tile(ctrl.astype(np.float32), (len(not_predicted), 1))])
        predicted += [False] * len(not_predicted)
    profiles = make_profiles(
        conditions,
        adata.var_names,
        mean,
        ctrl,
        source=SOURCE,
        obs=pd.DataFrame({"reference_predicted": predicted}),
    )
    profiles.uns[PROFILE_KEY].update(
        not_predicted=not_predicted,
        method=result["prediction"]["method"],
        timings=result["timings"],
        data=result["data"],
        peak_rss_mb=result["peak_rss_mb"],
    )
    return profiles

"""Run the reference GEARS (cell-gears 0.1.2) on a GEARS-format h5ad and a fixed split.

Run it with the reference environment's python (see ``setup_env.sh``), never with scgears'::

    /work/refenv/bin/python benchmarks/reference/run_reference.py \\
        --h5ad cells.h5ad --split split.pkl --workdir /tmp/ref --mode throughput

Inputs: an h5ad already in GEARS' format (``obs["condition"]`` with ``ctrl`` / ``A+ctrl`` /
``A+B``, ``obs["cell_type"]``, ``var["gene_name"]``, sparse log-normalised ``X``) and a pickle
``{"train": [...], "val": [...], "test": [...]}`` of GEARS condition strings, which is passed to
the reference's own ``custom`` split. ``benchmarks/_reference.py`` writes both from an scgears
AnnData.

Modes:

``throughput``
    Data processing (``PertData.new_data_process`` + ``load``), the custom split, the dataloaders
    and the model, then ``--steps`` timed training steps after ``--warmup`` untimed ones, at
    ``--batch-size``. Writes ``result.json`` with cells/s, seconds/step, the data-processing time
    and peak RSS.
``train``
    ``GEARS.train(epochs=...)`` with the reference's own best-validation selection, then the mean
    predicted expression of every test condition (``--prediction``, see ``predict_test``). Writes
    ``prediction.npz`` (canonical scgears labels, predicted means in the h5ad's var order) and
    ``result.json`` with the timings.

Offline operation: the three GO files the reference would download from Dataverse are written
into the data folder beforehand from a gene -> GO table (``write_go_files``), so ``PertData`` never
touches the network. Workaround: ``GEARS.__init__`` indexes the sparse ``X`` with a pandas boolean
Series, which fails with pandas 2 + scipy >= 1.15 (``'Series' object has no attribute
'nonzero'``); ``X`` is wrapped in a csr subclass that turns such indexers into numpy arrays (values
unchanged).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import pickle
import platform
import random
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

DEFAULT_GO_TABLE = "/work/shared/data/go/human_gene2go_orgHsEgDb_3.16.tsv.gz"
GO_FILES = ("gene2go_all.pkl", "essential_all_data_pert_genes.pkl", "go_essential_all")
DATASET_NAME = "scgears_reference"


# --------------------------------------------------------------------------------------------
# GO files for offline PertData
# --------------------------------------------------------------------------------------------


def _table_stamp(go_table: Path, k: int, threshold: float) -> dict:
    stat = go_table.stat()
    return {
        "table": str(go_table.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "k": k,
        "threshold": threshold,
    }


def jaccard_top_edges(
    membership: sp.csr_matrix, genes: np.ndarray, k: int, threshold: float, chunk: int = 1024
) -> pd.DataFrame:
    """Edges ``source -> target`` with Jaccard(GO sets) > ``threshold``, top ``k + 1`` per target.

    ``membership`` is genes x terms (binary). Intersections come from sparse products over blocks
    of target genes, so no gene pair is visited in Python. Ties are broken by source name, which
    is the gene order (``genes`` is sorted). The self edge (Jaccard 1) is among the ``k + 1``,
    as in the reference's ``nlargest(k + 1)`` per target.
    """
    sizes = np.asarray(membership.sum(axis=1)).ravel().astype(np.float64)
    by_term = membership.T.tocsr()
    sources, targets, weights = [], [], []
    for start in range(0, membership.shape[0], chunk):
        block = (membership[start : start + chunk] @ by_term).tocoo()
        rows = block.row.astype(np.int64) + start
        cols = block.col.astype(np.int64)
        shared = block.data.astype(np.float64)
        score = shared / (sizes[rows] + sizes[cols] - shared)
        keep = score > threshold
        rows, cols, score = rows[keep], cols[keep], score[keep]
        order = np.lexsort((cols, -score, rows))
        rows, cols, score = rows[order], cols[order], score[order]
        first = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
        rank = np.arange(rows.size) - np.repeat(first, np.diff(np.r_[first, rows.size]))
        top = rank < k + 1
        sources.append(cols[top])
        targets.append(rows[top])
        weights.append(score[top])
    return pd.DataFrame(
        {
            "source": genes[np.concatenate(sources)],
            "target": genes[np.concatenate(targets)],
            "importance": np.concatenate(weights),
        }
    )


def write_go_files(go_table: Path, go_dir: Path, k: int = 20, threshold: float = 0.1) -> dict:
    """Write the reference's three GO inputs into ``go_dir`` (skipped when already up to date).

    * ``gene2go_all.pkl``: dict gene symbol -> set of GO ids (all categories, all evidence codes);
    * ``essential_all_data_pert_genes.pkl``: list of every annotated symbol (the perturbation
      graph's gene universe);
    * ``go_essential_all/go_essential_all.csv``: ``source,target,importance`` edges, Jaccard >
      ``threshold``, the top ``k + 1`` per target.
    """
    go_dir.mkdir(parents=True, exist_ok=True)
    stamp_path = go_dir / "go_build.json"
    stamp = _table_stamp(go_table, k, threshold)
    if stamp_path.exists() and all((go_dir / name).exists() for name in GO_FILES):
        old = json.loads(stamp_path.read_text())
        if {key: old.get(key) for key in stamp} == stamp:
            return old
    start = time.perf_counter()
    with gzip.open(go_table, "rt") as handle:
        table = pd.read_csv(handle, sep="\t", usecols=["symbol", "go_id"], dtype=str)
    table = table.dropna().drop_duplicates()
    genes, gene_idx = np.unique(table["symbol"].to_numpy(), return_inverse=True)
    terms, term_idx = np.unique(table["go_id"].to_numpy(), return_inverse=True)
    membership = sp.csr_matrix(
        (np.ones(gene_idx.size, dtype=np.float32), (gene_idx, term_idx)),
        shape=(genes.size, terms.size),
    )
    gene2go = {gene: set(group) for gene, group in table.groupby("symbol", sort=True)["go_id"]}
    edges = jaccard_top_edges(membership, genes, k, threshold)
    with open(go_dir / "gene2go_all.pkl", "wb") as handle:
        pickle.dump(gene2go, handle)
    with open(go_dir / "essential_all_data_pert_genes.pkl", "wb") as handle:
        pickle.dump(list(genes), handle)
    (go_dir / "go_essential_all").mkdir(exist_ok=True)
    edges.to_csv(go_dir / "go_essential_all" / "go_essential_all.csv", index=False)
    stamp.update(
        n_genes=int(genes.size),
        n_terms=int(terms.size),
        n_edges=len(edges),
        build_s=round(time.perf_counter() - start, 2),
    )
    stamp_path.write_text(json.dumps(stamp, indent=1))
    return stamp


def link_go_files(go_dir: Path, data_dir: Path) -> None:
    """Make the GO files visible in the reference's data folder (symlinks, copies as fallback)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in GO_FILES:
        target = data_dir / name
        if target.exists() or target.is_symlink():
            continue
        try:
            target.symlink_to((go_dir / name).resolve())
        except OSError:
            copy = shutil.copytree if (go_dir / name).is_dir() else shutil.copy2
            copy(go_dir / name, target)


# --------------------------------------------------------------------------------------------
# Helpers around the reference
# --------------------------------------------------------------------------------------------


class PandasSafeCSR(sp.csr_matrix):
    """csr matrix accepting pandas boolean indexers (the reference's ``GEARS.__init__`` uses one).

    scipy >= 1.15 calls ``.nonzero()`` on a boolean index, which a pandas 2 Series lacks; the
    indexer is converted to a numpy array, so the selected values are exactly the same.
    """

    def __getitem__(self, key):
        return super().__getitem__(_as_numpy_index(key))


def _as_numpy_index(key):
    if isinstance(key, tuple):
        return tuple(_as_numpy_index(part) for part in key)
    if isinstance(key, pd.Series | pd.Index):
        return key.to_numpy()
    return key


def canonical_label(gears_condition: str) -> str:
    """GEARS condition string -> scgears canonical label (genes sorted, joined by ``+``)."""
    genes = sorted({g for g in gears_condition.split("+") if g and g != "ctrl"})
    return "+".join(genes) if genes else "ctrl"


def peak_rss_mb() -> dict:
    """Peak resident memory of this process and of its waited-for children, in MiB (Linux)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self": round(own, 1), "children": round(children, 1)}


def _vm_hwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark so later readings cover only what follows (Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def set_seeds(seed: int) -> None:
    """Seed python, numpy (the reference's control pairing and splits) and torch."""
    import torch

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the reference draws from numpy's global RNG
    torch.manual_seed(seed)


def _load_split(path: Path) -> dict[str, list[str]]:
    with open(path, "rb") as handle:
        split = pickle.load(handle)
    missing = [key for key in ("train", "val", "test") if key not in split]
    if missing:
        raise ValueError(f"Split pickle {path} lacks the keys {missing}; it needs train/val/test.")
    return {key: [str(c) for c in split[key]] for key in ("train", "val", "test")}


def _check_input(adata) -> None:
    for column in ("condition", "cell_type"):
        if column not in adata.obs.columns:
            raise ValueError(f"obs[{column!r}] is missing: the h5ad must be in GEARS' format.")
    if "gene_name" not in adata.var.columns:
        raise ValueError("var['gene_name'] is missing: the h5ad must be in GEARS' format.")
    if not sp.issparse(adata.X):
        raise ValueError("X must be sparse: the reference calls .toarray() on it.")
    if "ctrl" not in set(adata.obs["condition"].astype(str)):
        raise ValueError("obs['condition'] has no 'ctrl' cells.")


def prepare_pert_data(args, timings: dict):
    """Process the data the reference's way and apply the custom split; returns (pert_data, report).

    ``new_data_process`` (DE genes, dropout genes, one PyG graph per cell with a random paired
    control) then ``load`` (which drops conditions whose genes are not in the GO graph), as in the
    reference's tutorial. Split conditions the reference dropped are removed from the split and
    reported, since the reference cannot train on or predict them.
    """
    import anndata as ad
    from gears import PertData

    data_dir = args.workdir / "gears_data"
    dataset_dir = data_dir / DATASET_NAME
    if dataset_dir.exists():
        # The reference caches the co-expression graph and cell graphs by name only: start clean.
        shutil.rmtree(dataset_dir)
    start = time.perf_counter()
    go_stamp = write_go_files(args.go_table, args.go_cache)
    link_go_files(args.go_cache, data_dir)
    timings["go_files_s"] = round(time.perf_counter() - start, 2)

    adata = ad.read_h5ad(args.h5ad)
    _check_input(adata)
    split = _load_split(args.split)

    start = time.perf_counter()
    pert_data = PertData(str(data_dir))
    pert_data.new_data_process(dataset_name=DATASET_NAME, adata=adata)
    timings["new_data_process_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    pert_data.load(data_path=str(dataset_dir))
    timings["load_s"] = round(time.perf_counter() - start, 2)

    kept = set(pert_data.adata.obs["condition"].astype(str))
    dropped = {key: [c for c in values if c not in kept] for key, values in split.items()}
    split = {key: [c for c in values if c in kept] for key, values in split.items()}
    for key in ("train", "val"):
        if not split[key]:
            raise ValueError(f"No {key} condition left after the reference's GO filter: {dropped}.")
    if "ctrl" not in split["train"]:
        raise ValueError("'ctrl' must be in the train split (the reference's co-expression graph).")
    split_path = args.workdir / "split_used.pkl"
    with open(split_path, "wb") as handle:
        pickle.dump(split, handle)
    start = time.perf_counter()
    pert_data.prepare_split(split="custom", seed=args.seed, split_dict_path=str(split_path))
    pert_data.get_dataloader(batch_size=args.batch_size, test_batch_size=args.test_batch_size)
    timings["split_and_loaders_s"] = round(time.perf_counter() - start, 2)

    # Workaround (values unchanged): see PandasSafeCSR. load() leaves a view; materialise it first.
    pert_data.adata = pert_data.adata.copy()
    pert_data.adata.X = PandasSafeCSR(pert_data.adata.X)

    report = {
        "n_cells": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "n_cells_after_go_filter": int(pert_data.adata.n_obs),
        "n_perturbation_graph_genes": len(pert_data.pert_names),
        "not_in_go_graph": {key: sorted(values) for key, values in dropped.items() if values},
        "n_conditions": {key: len(values) for key, values in split.items()},
        "n_train_cells": len(pert_data.dataloader["train_loader"].dataset),
        "go_files": go_stamp,
    }
    return pert_data, report


def build_model(pert_data, args, timings: dict):
    from gears import GEARS

    start = time.perf_counter()
    gears = GEARS(pert_data, device=args.device)
    gears.model_initialize(hidden_size=args.hidden_size)
    timings["model_initialize_s"] = round(time.perf_counter() - start, 2)
    return gears


# --------------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------------


def _endless(loader):
    while True:
        yield from loader


def run_throughput(gears, args, result: dict) -> None:
    """Time training steps exactly as the reference's ``GEARS.train`` runs them (same loss/clip)."""
    import torch
    from gears.utils import loss_fct

    model = gears.model.to(args.device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    batches = _endless(gears.dataloader["train_loader"])

    def step() -> tuple[float, float]:
        start = time.perf_counter()
        batch = next(batches)
        batch.to(args.device)
        loaded = time.perf_counter()
        optimizer.zero_grad()
        pred = model(batch)
        loss = loss_fct(
            pred,
            batch.y,
            batch.pert,
            ctrl=gears.ctrl_expression,
            dict_filter=gears.dict_filter,
            direction_lambda=gears.config["direction_lambda"],
        )
        loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), clip_value=1.0)
        optimizer.step()
        return time.perf_counter() - start, loaded - start

    for _ in range(args.warmup):
        step()
    reset = _reset_peak_rss()
    times = [step() for _ in range(args.steps)]
    total = sum(t for t, _ in times)
    per_step = [t for t, _ in times]
    result["throughput"] = {
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "cells_per_s": round(args.batch_size * args.steps / total, 3),
        "seconds_per_step": round(total / args.steps, 4),
        "seconds_per_step_median": round(float(np.median(per_step)), 4),
        "seconds_per_step_min": round(float(np.min(per_step)), 4),
        "loader_seconds_per_step": round(sum(t for _, t in times) / args.steps, 4),
        "peak_rss_training_mb": _vm_hwm_mb() if reset else None,
    }


def predict_test(gears, args, test_conditions: list[str]) -> tuple[list[str], np.ndarray]:
    """Mean predicted expression of each test condition, rows in ``test_conditions`` order.

    ``evaluate`` (default): the reference's own ``gears.inference.evaluate`` with the best model on
    the test loader, i.e. one prediction per test cell from its paired random control cell,
    averaged per condition (what the reference's test metrics use). ``predict``: ``GEARS.predict``,
    300 random control cells per condition.
    """
    if args.prediction == "evaluate":
        from gears.inference import evaluate

        res = evaluate(gears.dataloader["test_loader"], gears.best_model, False, args.device)
        cats = np.asarray(res["pert_cat"]).astype(str)
        mean = np.stack([res["pred"][cats == c].mean(axis=0) for c in test_conditions])
    else:
        genes = [[g for g in c.split("+") if g != "ctrl"] for c in test_conditions]
        predicted = gears.predict(genes)
        mean = np.stack([predicted["_".join(g)] for g in genes])
    return [canonical_label(c) for c in test_conditions], mean.astype(np.float32)


def run_train(gears, args, result: dict, split_conditions: dict) -> None:
    start = time.perf_counter()
    gears.train(epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay)
    result["timings"]["train_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    test = [c for c in split_conditions["test"] if c != "ctrl"]
    labels, mean = predict_test(gears, args, test)
    result["timings"]["predict_s"] = round(time.perf_counter() - start, 2)
    not_predicted = result["data"]["not_in_go_graph"].get("test", [])
    out = args.workdir / "prediction.npz"
    np.savez_compressed(
        out,
        conditions=np.array(labels, dtype=str),
        gears_conditions=np.array(test, dtype=str),
        mean=mean,
        var_names=np.array(gears.gene_list, dtype=str),
        not_predicted=np.array([canonical_label(c) for c in not_predicted], dtype=str),
    )
    result["prediction"] = {
        "path": str(out),
        "method": args.prediction,
        "n_conditions": len(labels),
        "not_predicted": [canonical_label(c) for c in not_predicted],
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--h5ad", type=Path, required=True, help="cells in GEARS' format")
    parser.add_argument("--split", type=Path, required=True, help="pickle {train,val,test}")
    parser.add_argument("--workdir", type=Path, required=True, help="outputs and caches")
    parser.add_argument("--mode", choices=("throughput", "train"), default="throughput")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--test-batch-size", type=int, default=None, help="ignored by the ref.")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (throughput)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (throughput)")
    parser.add_argument("--prediction", choices=("evaluate", "predict"), default="evaluate")
    parser.add_argument("--go-table", type=Path, default=Path(DEFAULT_GO_TABLE))
    parser.add_argument(
        "--go-cache", type=Path, default=None, help="where the GO files are built (reused)"
    )
    args = parser.parse_args(argv)
    if args.go_cache is None:
        args.go_cache = args.workdir / "go_files"
    if not args.go_table.exists():
        parser.error(f"GO table {args.go_table} not found (pass --go-table).")
    return args


def _versions() -> dict:
    import importlib.metadata as md

    names = ("cell-gears", "torch", "torch-geometric", "numpy", "pandas", "scipy", "scanpy")
    return {name: md.version(name) for name in names}


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    import gears  # noqa: F401  (seeds torch with 0 at import: seed after it)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    set_seeds(args.seed)
    timings: dict = {}
    wall = time.perf_counter()
    pert_data, data_report = prepare_pert_data(args, timings)
    timings["data_processing_s"] = round(
        timings["new_data_process_s"] + timings["load_s"] + timings["split_and_loaders_s"], 2
    )
    peak_data = peak_rss_mb()
    model = build_model(pert_data, args, timings)
    result = {
        "mode": args.mode,
        "params": {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
        },
        "data": data_report,
        "timings": timings,
        "torch_threads": torch.get_num_threads(),
        "versions": _versions(),
        "host": {"python": platform.python_version(), "load_avg": os.getloadavg()},
    }
    split_conditions = pert_data.set2conditions
    if args.mode == "throughput":
        run_throughput(model, args, result)
    else:
        run_train(model, args, result, split_conditions)
    timings["total_s"] = round(time.perf_counter() - wall, 2)
    end = peak_rss_mb()
    result["peak_rss_mb"] = {
        # In throughput mode the kernel's peak mark is reset before the timed steps, so "end"
        # covers the training steps only; "overall" is the larger of the two readings.
        "after_data_processing": peak_data,
        "end": end,
        "overall": max(peak_data["self"], end["self"]),
    }
    result["host"]["load_avg_end"] = os.getloadavg()
    (args.workdir / "result.json").write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    # The reference prints progress to stdout: send it to stderr, keep stdout for the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        outcome = main()
    json.dump(outcome, sys.stdout, indent=1, default=str)
    sys.stdout.write("\n")

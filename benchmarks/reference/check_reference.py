"""Check that the reference GEARS runs side by side with scgears, and print what it measured.

Run with scgears' environment (the reference runs in its own one, see ``setup_env.sh``)::

    python benchmarks/reference/check_reference.py norman --epochs 2
    python benchmarks/reference/check_reference.py synthetic --steps 10

``norman``: the real Norman subset of ``shared/data`` (``dataset == "norman19"``), scgears'
``simulation`` split (seed 1), the reference trained for ``--epochs`` and its test predictions
returned as profiles. ``synthetic``: a sparse log-normalised screen (default 20,000 cells x 5,000
genes, 60 singles + 40 doubles, gene symbols drawn from the GO table) and the reference's training
throughput on it. Both print one JSON document.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _reference import reference_predict, reference_throughput

import scgears as sg

SHARED = Path(
    os.environ.get("SCGEARS_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)
NORMAN = SHARED / "perturbseq" / "perturbench_devel_norman19_mcfaline23.h5ad"
GO_TABLE = SHARED / "go" / "human_gene2go_orgHsEgDb_3.16.tsv.gz"


def synthetic_screen(
    n_cells: int = 20_000,
    n_genes: int = 5_000,
    n_singles: int = 60,
    n_doubles: int = 40,
    n_control: int = 2_000,
    seed: int = 0,
    go_table: Path = GO_TABLE,
) -> ad.AnnData:
    """A sparse log-normalised CRISPRa-like screen with GEARS-style conditions in ``obs``.

    Gene symbols are drawn from the GO table (so the reference keeps every condition); counts are
    gamma-Poisson (negative binomial, dispersion 2) around log-normal gene means; each perturbed
    gene raises itself (log-fold 2) and shifts 50 random genes; a double adds its singles' effects.
    Cells are depth-normalised to the median total and log1p-transformed (float32 CSR).
    """
    rng = np.random.default_rng(seed)
    with gzip.open(go_table, "rt") as handle:
        symbols = np.unique(pd.read_csv(handle, sep="\t", usecols=["symbol"])["symbol"].dropna())
    genes = rng.choice(symbols, n_genes, replace=False)
    perturbed = rng.choice(n_genes, n_singles, replace=False)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < n_doubles:
        a, b = sorted(rng.choice(perturbed, 2, replace=False))
        pairs.add((int(a), int(b)))
    effect = {}  # perturbed gene -> log-fold change of every gene
    for g in perturbed:
        effect[int(g)] = np.zeros(n_genes, dtype=np.float32)
        effect[int(g)][rng.choice(n_genes, 50, replace=False)] = rng.normal(0, 0.7, 50)
        effect[int(g)][g] = 2.0
    conditions = [((), "ctrl")] + [((int(g),), str(genes[g])) for g in perturbed]
    conditions += [((a, b), "+".join(sorted((genes[a], genes[b])))) for a, b in sorted(pairs)]
    per_condition = (n_cells - n_control) // (len(conditions) - 1)
    sizes = [n_control] + [per_condition] * (len(conditions) - 1)
    sizes[-1] += n_cells - sum(sizes)
    log_mean = rng.normal(-1.0, 1.5, n_genes).astype(np.float32)
    blocks, labels = [], []
    for (members, label), size in zip(conditions, sizes, strict=True):
        shift = sum(effect[g] for g in members) if members else 0.0
        depth = rng.lognormal(0.0, 0.3, (size, 1))
        rate = depth * np.exp(log_mean + shift)
        counts = rng.poisson(rng.gamma(2.0, rate / 2.0)).astype(np.float32)
        blocks.append(sp.csr_matrix(counts))
        labels += [label] * size
    counts = sp.vstack(blocks, format="csr")
    totals = np.asarray(counts.sum(axis=1)).ravel()
    scale = np.median(totals) / np.maximum(totals, 1)
    normalised = sp.diags(scale.astype(np.float32)) @ counts
    normalised.data = np.log1p(normalised.data)
    obs = pd.DataFrame({"condition": labels}, index=[f"cell{i}" for i in range(n_cells)])
    return ad.AnnData(
        X=normalised.astype(np.float32).tocsr(), obs=obs, var=pd.DataFrame(index=genes)
    )


def _load() -> dict:
    return {"uptime_load_avg": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}


def check_norman(args) -> dict:
    adata = ad.read_h5ad(NORMAN)
    adata = adata[adata.obs["dataset"] == "norman19"].copy()
    sg.pp.register_perturbations(adata, "condition")
    sg.pp.split_perturbations(adata, kind="simulation", seed=1, test_conditions=args.test)
    test = list(adata.uns["scgears_split"]["conditions"]["test"])
    load_before = _load()
    start = time.perf_counter()
    pred = reference_predict(
        adata, epochs=args.epochs, missing=args.missing, workdir=args.workdir,
        threads=args.threads, seed=args.seed, go_cache=args.go_cache,
    )  # fmt: skip
    info = pred.uns["scgears_profile"]
    return {
        "load_before": load_before,
        "load_after": _load(),
        "wall_s": round(time.perf_counter() - start, 1),
        "test_conditions": len(test),
        "prediction_shape": list(pred.shape),
        "all_finite": bool(np.isfinite(pred.X).all()),
        "rows_match_test": sorted(pred.obs_names) == sorted(test),
        "not_predicted": info["not_predicted"],
        "reference_predicted": pred.obs["reference_predicted"].value_counts().to_dict(),
        "method": info["method"],
        "timings": info["timings"],
        "dropped_by_reference": info["data"]["not_in_go_graph"],
        "peak_rss_mb": info["peak_rss_mb"],
        "mean_abs_delta": float(np.abs(pred.layers["delta"]).mean()),
    }


def check_synthetic(args) -> dict:
    start = time.perf_counter()
    adata = synthetic_screen(n_cells=args.cells, n_genes=args.genes, seed=args.seed)
    made = time.perf_counter() - start
    sg.pp.register_perturbations(adata, "condition", control="ctrl")
    sg.pp.split_perturbations(adata, kind="simulation", seed=1)
    load_before = _load()
    result = reference_throughput(
        adata, steps=args.steps, warmup=args.warmup, batch_size=args.batch_size,
        threads=args.threads, seed=args.seed, workdir=args.workdir, go_cache=args.go_cache,
    )  # fmt: skip
    return {
        "load_before": load_before,
        "load_after": _load(),
        "screen": {
            "shape": list(adata.shape),
            "conditions": int(adata.obs["scgears_condition"].nunique()),
            "density": round(adata.X.nnz / np.prod(adata.shape), 4),
            "make_s": round(made, 1),
        },
        "throughput": result["throughput"],
        "timings": result["timings"],
        "peak_rss_mb": result["peak_rss_mb"],
        "torch_threads": result["torch_threads"],
        "subprocess": result["subprocess"],
        "data": {k: v for k, v in result["data"].items() if k != "go_files"},
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("check", choices=("norman", "synthetic"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cells", type=int, default=20_000)
    parser.add_argument("--genes", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the reference")
    parser.add_argument("--missing", choices=("drop", "control"), default="control")
    parser.add_argument("--test", nargs="*", default=None, help="conditions forced into test")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--go-cache", type=Path, default=None)
    args = parser.parse_args(argv)
    outcome = check_norman(args) if args.check == "norman" else check_synthetic(args)
    print(json.dumps(outcome, indent=1, default=str))


if __name__ == "__main__":
    main()

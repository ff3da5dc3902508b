"""Time sg.pp.perturbation_graph on the GO graph over every human gene of the shipped table.

Usage: ``python benchmarks/bench_perturbation_graph.py [--repeat 1] [--n-genes N]``

Prints one row per run: genes, edges (self edges included), wall and CPU seconds (the CPU time
is the fairer number on a shared machine) and the process's peak RSS.
GEARS' reference ``make_GO`` computes the same Jaccard graph pair by pair with a 25-process pool.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import anndata as ad
import numpy as np
import pandas as pd

import scgears as sg
from scgears._resources import gene_aliases, go_annotations


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--n-genes", type=int, default=None, help="first N genes only")
    args = parser.parse_args()

    start = time.perf_counter()
    genes = sorted(go_annotations())
    gene_aliases()
    load_s = time.perf_counter() - start
    if args.n_genes is not None:
        genes = genes[: args.n_genes]
    # a one-cell screen: the node set comes from `genes=`, as when predicting any human gene
    adata = ad.AnnData(
        np.zeros((1, 1), dtype=np.float32),
        obs=pd.DataFrame({"scgears_condition": pd.Categorical(["ctrl"])}, index=["cell0"]),
        var=pd.DataFrame(index=[genes[0]]),
    )
    print(f"nproc={os.cpu_count()}  load average={os.getloadavg()[0]:.2f}")
    print(f"loading the shipped GO and alias tables: {load_s:.2f} s")
    print(f"peak RSS before building: {peak_rss_mb():.0f} MB")
    header = (
        f"{'genes':>7} {'edges':>9} {'isolated':>8} {'wall s':>7} {'CPU s':>6} {'peak RSS MB':>11}"
    )
    print(header)
    for _ in range(args.repeat):
        start, cpu_start = time.perf_counter(), time.process_time()
        sg.pp.perturbation_graph(adata, genes=genes)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        result = adata.uns["scgears_perturbation_graph"]
        print(
            f"{len(result['genes']):>7} {result['graph'].nnz:>9} {len(result['isolated']):>8} "
            f"{seconds:>7.1f} {cpu:>6.1f} {peak_rss_mb():>11.0f}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

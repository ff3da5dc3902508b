"""A genome-scale screen end to end on backed AnnData: every step streams, nothing loads ``X``.

Writes, in chunks of cells, a simulated screen of Replogle et al. 2022's shape scaled to a laptop
(default 1,000,000 cells x 8,000 genes, 10,000 single-gene conditions and 300 pairs, sparse) to an
``.h5ad`` on disk, never holding the whole matrix in memory, then runs the pipeline on
``backed="r"``: ``register_perturbations``, ``rank_perturbation_genes``, ``split_perturbations``,
``coexpression_graph``, ``perturbation_graph``, GEARS training, ``predict`` of 1,000 held-out
conditions and a GI map over 200 genes (19,900 pairs). Each step's time and the process's peak
resident memory after it are printed as a table.

The screen: genes are real symbols of the shipped GO table (so the GO graph connects the
perturbed genes), measured genes drawn among them and every perturbed gene that is measured knocked
down on target. A perturbation's effect is a sparse combination of a few GO-term programmes of its
gene (genes sharing terms share programmes), pairs are additive on the log scale with a small
interaction; counts are Poisson around a per-gene baseline with per-cell library size, then
log1p-normalised to 10,000 counts per cell.

``--cells`` sets the size; run with several sizes to check that training time per epoch does not
grow with the number of cells::

    python benchmarks/bench_genome_scale.py --cells 250000 500000 1000000 --out /tmp/genome_scale
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _setup import prepare_run


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--genes", type=int, default=8000)
    parser.add_argument("--singles", type=int, default=10_000)
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--control-fraction", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--predict", type=int, default=1000)
    parser.add_argument("--gi-genes", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("genome_scale"))
    return parser.parse_args(argv)


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux


# --------------------------------------------------------------------------------------------------
# the screen, written in chunks


def _design(args, n_cells: int, rng: np.random.Generator):
    from scgears._resources import go_annotations

    go = go_annotations()
    symbols = np.array(sorted(go))
    # perturbed genes: informative GO annotation; measured genes: the perturbed ones first
    n_terms = np.array([len(go[s]) for s in symbols])
    informative = symbols[(n_terms >= 3) & (n_terms <= 150)]
    perturbed = rng.choice(informative, size=args.singles, replace=False)
    measured_perturbed = perturbed[: args.genes // 2]
    others = np.setdiff1d(symbols, perturbed)
    genes = np.concatenate(
        [measured_perturbed, rng.choice(others, size=args.genes - len(measured_perturbed))]
    )
    genes = np.unique(genes)
    while len(genes) < args.genes:  # top up after de-duplication
        extra = rng.choice(others, size=args.genes - len(genes), replace=False)
        genes = np.unique(np.concatenate([genes, extra]))
    genes = genes[: args.genes]

    # programmes: GO terms used by >= 20 perturbed genes, each a sparse signed gene loading
    term_count: dict[str, int] = {}
    for gene in perturbed:
        for term in go[gene]:
            term_count[term] = term_count.get(term, 0) + 1
    terms = sorted(t for t, c in term_count.items() if c >= 20)
    term_index = {t: i for i, t in enumerate(terms)}
    loadings = np.zeros((len(terms), len(genes)), dtype=np.float32)
    for i in range(len(terms)):
        targets = rng.choice(len(genes), size=30, replace=False)
        loadings[i, targets] = rng.normal(0, 0.35, size=30)
    membership = np.zeros((len(perturbed), len(terms)), dtype=np.float32)
    for p, gene in enumerate(perturbed):
        own = [term_index[t] for t in go[gene] if t in term_index]
        if own:
            chosen = rng.choice(own, size=min(3, len(own)), replace=False)
            membership[p, chosen] = 1.0
    effects = membership @ loadings  # (singles, genes) log fold changes
    position = {g: i for i, g in enumerate(genes)}
    for p, gene in enumerate(perturbed):
        if gene in position:
            effects[p, position[gene]] -= 1.5  # CRISPRi on target
    pair_index = rng.choice(len(perturbed), size=(args.pairs, 2), replace=True)
    pair_index = pair_index[pair_index[:, 0] != pair_index[:, 1]]
    interaction = rng.normal(0, 0.15, size=(len(pair_index), len(genes))).astype(np.float32)
    interaction *= rng.random((len(pair_index), len(genes))) < 0.02

    labels = ["control", *perturbed]
    labels += ["+".join(sorted(perturbed[pair])) for pair in pair_index]
    n_control = int(args.control_fraction * n_cells)
    per_condition = (n_cells - n_control) // (len(labels) - 1)
    sizes = np.full(len(labels), per_condition)
    sizes[0] = n_cells - per_condition * (len(labels) - 1)
    baseline = rng.gamma(0.6, 1.0, size=len(genes)).astype(np.float32)
    baseline *= 2000.0 / baseline.sum()  # ~2,000 expected counts per cell at library size 1
    return {
        "genes": genes,
        "labels": labels,
        "sizes": sizes,
        "effects": effects,
        "pairs": pair_index,
        "interaction": interaction,
        "baseline": baseline,
    }


def _condition_effect(design, code: int) -> np.ndarray:
    n_singles = design["effects"].shape[0]
    if code == 0:
        return np.zeros(design["effects"].shape[1], dtype=np.float32)
    if code <= n_singles:
        return design["effects"][code - 1]
    pair = code - 1 - n_singles
    a, b = design["pairs"][pair]
    return design["effects"][a] + design["effects"][b] + design["interaction"][pair]


def write_screen(path: Path, n_cells: int, args) -> dict:
    """Write the screen to ``path`` chunk by chunk; return its design (labels and sizes)."""
    import h5py
    import scipy.sparse as sp
    from anndata.io import write_elem

    rng = np.random.default_rng(args.seed)
    design = _design(args, n_cells, rng)
    codes = np.repeat(np.arange(len(design["labels"])), design["sizes"])
    codes = codes[rng.permutation(len(codes))]  # cells of a condition are spread over the file
    n_genes = len(design["genes"])
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        group = f.create_group("X")
        group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0"})
        group.attrs["shape"] = (n_cells, n_genes)
        data = group.create_dataset("data", (0,), maxshape=(None,), dtype="f4", chunks=(1 << 20,))
        indices = group.create_dataset(
            "indices", (0,), maxshape=(None,), dtype="i4", chunks=(1 << 20,)
        )
        indptr = [np.zeros(1, dtype=np.int64)]
        total = 0
        for start in range(0, n_cells, args.chunk):
            block_codes = codes[start : start + args.chunk]
            unique, inverse = np.unique(block_codes, return_inverse=True)
            shift = np.stack([_condition_effect(design, int(c)) for c in unique])
            library = rng.lognormal(0.0, 0.3, size=len(block_codes)).astype(np.float32)
            mean = design["baseline"][None, :] * np.exp(shift[inverse]) * library[:, None]
            counts = rng.poisson(mean).astype(np.float32)
            sums = counts.sum(1, keepdims=True)
            block = sp.csr_matrix(np.log1p(counts * (1e4 / np.maximum(sums, 1))))
            n = block.nnz
            data.resize((total + n,))
            indices.resize((total + n,))
            data[total:] = block.data
            indices[total:] = block.indices
            indptr.append(block.indptr[1:] + total)
            total += n
        group.create_dataset("indptr", data=np.concatenate(indptr))
        obs = pd.DataFrame(
            {
                "perturbation": pd.Categorical.from_codes(codes, categories=design["labels"]),
            },
            index=pd.Index([f"cell{i:07d}" for i in range(n_cells)]),
        )
        write_elem(f, "obs", obs)
        write_elem(f, "var", pd.DataFrame(index=pd.Index(design["genes"])))
        for key in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
            write_elem(f, key, {})
        f.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
    return design


# --------------------------------------------------------------------------------------------------
# the pipeline on backed data


def run_pipeline(path: Path, args) -> pd.DataFrame:
    import anndata as ad

    import scgears as sg

    rows = []

    def step(name, function):
        t0 = time.perf_counter()
        result = function()
        rows.append(
            {"step": name, "seconds": time.perf_counter() - t0, "peak_rss_gb": _peak_rss_gb()}
        )
        print(pd.DataFrame(rows[-1:]).round(2).to_string(index=False, header=False), flush=True)
        return result

    adata = step("read backed", lambda: ad.read_h5ad(path, backed="r"))
    step(
        "register_perturbations",
        # some GO symbols contain "_" (GTF2H2C_2): name the delimiter
        lambda: sg.pp.register_perturbations(
            adata, "perturbation", control="control", delimiter="+"
        ),
    )
    step("rank_perturbation_genes", lambda: sg.pp.rank_perturbation_genes(adata))
    step("split_perturbations", lambda: sg.pp.split_perturbations(adata, kind="simulation"))
    step("coexpression_graph", lambda: sg.pp.coexpression_graph(adata))
    step("perturbation_graph", lambda: sg.pp.perturbation_graph(adata))
    sg.model.GEARS.setup_anndata(adata)
    model = step("GEARS init (statistics pass)", lambda: sg.model.GEARS(adata))
    epochs = []

    def train():
        t0 = time.perf_counter()
        model.train(max_epochs=args.epochs, enable_progress_bar=False)
        epochs.append((time.perf_counter() - t0) / args.epochs)

    step(f"train {args.epochs} epochs", train)
    test = list(adata.uns["scgears_split"]["conditions"]["test"])[: args.predict]
    if test:  # --predict 0 skips the step
        step(f"predict {len(test)} conditions", lambda: model.predict(test))
    genes = sorted({g for c in adata.obs["scgears_condition"].cat.categories for g in c.split("+")})
    genes = [g for g in genes if g != "ctrl"][: args.gi_genes]

    def gi_map():
        grid = sg.tl.predict_combinations(model, genes)
        return sg.tl.genetic_interactions(grid)

    if len(genes) >= 2:  # --gi-genes 0 skips the step
        step(f"GI map over {len(genes)} genes", gi_map)
    table = pd.DataFrame(rows)
    table.attrs["seconds_per_epoch"] = epochs[0] if epochs else float("nan")
    return table


def main(argv=None) -> None:
    args = _parse_args(argv)
    prepare_run(args.threads)
    summary = []
    for n_cells in args.cells:
        path = args.out / f"screen_{n_cells}.h5ad"
        t0 = time.perf_counter()
        if not path.exists():
            write_screen(path, n_cells, args)
        written = time.perf_counter() - t0
        print(
            f"\n{n_cells:,} cells: written in {written:.0f} s ({path.stat().st_size / 1e9:.1f} GB)"
        )
        table = run_pipeline(path, args)
        print(table.round(2).to_string(index=False))
        total = table["seconds"].sum()
        summary.append(
            {
                "cells": n_cells,
                "pipeline_minutes": total / 60,
                "seconds_per_epoch": table.attrs["seconds_per_epoch"],
                "peak_rss_gb": table["peak_rss_gb"].max(),
            }
        )
    print("\nSummary (time per epoch should not grow with the number of cells):")
    print(pd.DataFrame(summary).round(2).to_string(index=False))


if __name__ == "__main__":
    main()

"""Time a genetic-interaction map: every pair of a gene panel predicted by GEARS, then scored.

A GEARS model is trained briefly (the time of a prediction does not depend on how long the model
was trained) on the real Norman 2019 subset in ``../shared/data`` or, without it or with
``--simulated``, on a simulated screen. For each panel size, the panel is the screen's perturbed
genes followed by its measured genes in order of mean expression; ``sg.tl.predict_combinations``
predicts every pair and single, and ``sg.tl.genetic_interactions`` scores every pair with its
default gene selection. Printed: pairs, seconds for each step, peak RSS. Targets (issue 4): a
100-gene panel (4,950 pairs) predicted in under 30 s and scored in under a minute on 2 CPU cores.

With ``--calls``, the calibrated calls (issue 10) instead: simulated screens with planted
interactions of realistic size (synergy factor 1.5-2, suppression 0.4-0.6, on expression), over
seeds and cells per condition, scored by ``sg.tl.genetic_interactions`` with its defaults.
Printed: the confusion table (planted subtype x call, share of pairs), recovery per subtype, the
calibration table (calls binned by ``confidence``: how many are right), the gene-level precision,
recall and realised false-discovery proportion of ``nonadditive_fdr <= level`` against the
planted truth (``|true delta_AB - delta_A - delta_B| > --gene-tolerance``), and the time of 100
measured pairs with 200 replicates. Targets: every subtype recovered >= 90%, additive pairs
called non-additive <= 10%, calls with confidence >= 0.9 right >= 90%, 100 pairs in < 60 s.

Run from the repository root::

    python benchmarks/bench_gi.py                       # panels of 100 genes and every gene
    python benchmarks/bench_gi.py --panels 100 200      # chosen panel sizes
    python benchmarks/bench_gi.py --simulated           # without the Norman subset
    python benchmarks/bench_gi.py --calls               # calibration: 5 seeds x 50/100/200 cells
    python benchmarks/bench_gi.py --calls --seeds 5 6 --cells 100 --interactions-on activity
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from _setup import NORMAN_SUBSET, load_norman_subset, prepare_run


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=NORMAN_SUBSET)
    parser.add_argument("--simulated", action="store_true")
    parser.add_argument(
        "--panels", nargs="+", default=["100", "all"], help="panel sizes; 'all' = every gene"
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--calls", action="store_true", help="calibration of the calls instead")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--cells", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--genes", type=int, default=1000)
    parser.add_argument("--synergy", type=float, nargs=2, default=[1.5, 2.0])
    parser.add_argument("--suppression", type=float, nargs=2, default=[0.4, 0.6])
    parser.add_argument("--interactions-on", default="expression")
    parser.add_argument("--gene-tolerance", type=float, default=0.05)
    parser.add_argument("--no-speed", action="store_true", help="skip the 100-pair timing")
    parser.add_argument(
        "--generator",
        choices=["simulate_screen", "independent"],
        default="simulate_screen",
        help="planted truth: scgears' simulator, or the independent one in _gi_planted.py",
    )
    parser.add_argument("--effect-sd", type=float, default=0.6, help="independent: single effects")
    parser.add_argument("--depth", type=float, default=8000.0, help="independent: UMIs per cell")
    parser.add_argument("--neo", type=float, nargs=2, default=[0.5, 1.0], help="independent")
    parser.add_argument("--masked", type=float, nargs=2, default=[0.0, 0.2], help="independent")
    return parser.parse_args(argv)


def _screen(args):
    import scgears as sg

    if args.simulated or not args.data.exists():
        adata = sg.datasets.simulate_screen(n_genes=500, seed=args.seed)
        sg.pp.register_perturbations(adata, "perturbation_name")
        return adata, "simulated screen"
    adata = load_norman_subset(args.data)
    sg.pp.register_perturbations(adata, "condition", control="control")
    return adata, f"Norman 2019 subset ({args.data.name})"


def _panel(adata, size: str) -> list[str]:
    import numpy as np

    from scgears._conditions import condition_genes

    conditions = adata.obs["scgears_condition"].cat.categories
    perturbed = sorted({g for c in conditions if c != "ctrl" for g in condition_genes(c)})
    mean = np.asarray(adata.X.mean(axis=0)).ravel()
    measured = [adata.var_names[i] for i in np.argsort(-mean)]
    genes = list(dict.fromkeys(perturbed + measured))
    return genes if size == "all" else genes[: int(size)]


def _planted_screen(args, seed: int, cells: int, n_doubles: int = 60):
    import scgears as sg

    if args.generator == "independent":
        from _gi_planted import planted_screen

        adata = planted_screen(
            n_genes=args.genes,
            n_cells=cells,
            n_per_subtype=max(1, n_doubles // 10),
            n_additive=n_doubles - 5 * max(1, n_doubles // 10),
            synergy=tuple(args.synergy),
            suppression=tuple(args.suppression),
            neo=tuple(args.neo),
            masked=tuple(args.masked),
            effect_sd=args.effect_sd,
            depth=args.depth,
            seed=seed,
        )
        sg.pp.register_perturbations(adata, "perturbation_name", control="control")
        return adata

    adata = sg.datasets.simulate_screen(
        n_genes=args.genes,
        n_doubles=n_doubles,
        n_cells_per_condition=cells,
        synergy_factor=tuple(args.synergy),
        suppression_factor=tuple(args.suppression),
        interactions_on=args.interactions_on,
        seed=seed,
    )
    sg.pp.register_perturbations(adata, "perturbation_name")
    return adata


def _planted(adata):
    if "planted" in adata.uns:
        return adata.uns["planted"]
    return adata.uns["simulation"]["gi"]


def _true_nonadditive(adata, pairs):
    import numpy as np
    import pandas as pd

    if "true_delta" in adata.uns:
        delta = adata.uns["true_delta"]
        rows = [delta.loc[p].to_numpy() - delta.loc[p.split("+")].sum().to_numpy() for p in pairs]
        return np.stack(rows)
    sim = adata.uns["simulation"]
    means = pd.DataFrame(sim["true_means"], index=sim["conditions"], columns=adata.var_names)
    delta = means - means.loc["ctrl"]
    rows = [delta.loc[p].to_numpy() - delta.loc[p.split("+")].sum().to_numpy() for p in pairs]
    return np.stack(rows)


def calls(args) -> None:
    import time

    import numpy as np
    import pandas as pd

    import scgears as sg

    records, genes = [], []
    for cells in args.cells:
        for seed in args.seeds:
            adata = _planted_screen(args, seed, cells)
            planted = _planted(adata)
            start = time.perf_counter()
            gi, per_gene = sg.tl.genetic_interactions(
                adata, list(planted.index), return_genes=True, key_added=None
            )
            seconds = time.perf_counter() - start
            frame = gi[["subtype", "confidence"]].assign(
                truth=planted.loc[gi.index, "subtype"].to_numpy(), cells=cells, seed=seed
            )
            records.append(frame)
            truth = np.abs(_true_nonadditive(adata, list(gi.index))) > args.gene_tolerance
            fdr = per_gene.layers["nonadditive_fdr"]
            for level in (0.05, 0.1):
                called = fdr <= level
                genes.append(
                    {
                        "cells": cells,
                        "seed": seed,
                        "level": level,
                        "called": int(called.sum()),
                        "true": int(truth.sum()),
                        "true_called": int((called & truth).sum()),
                    }
                )
            print(f"cells {cells} seed {seed}: {len(gi)} pairs in {seconds:.1f} s", flush=True)
    table = pd.concat(records)
    subtypes = list(table["subtype"].cat.categories)
    confusion = pd.crosstab(table["truth"], table["subtype"], normalize="index", dropna=False)
    confusion = confusion.reindex(index=subtypes, columns=subtypes, fill_value=0.0)
    print(
        f"\nPlanted pairs ({args.generator}): {args.interactions_on} factors synergy "
        f"{args.synergy}, suppression {args.suppression}; seeds {args.seeds}; cells "
        f"{args.cells}; {len(table)} pairs"
    )
    print("\nConfusion (rows planted, columns called; share of the row):\n")
    print(confusion.round(3).to_markdown())
    right = table["subtype"].astype(str) == table["truth"]
    by_size = (
        table.assign(right=right)
        .groupby(["cells", "truth"])["right"]
        .mean()
        .unstack("truth")
        .reindex(columns=subtypes)
    )
    print("\nRecovered (additive: called additive) by cells per condition:\n")
    print(by_size.round(3).to_markdown())
    bins = pd.cut(table["confidence"], [0.0, 0.5, 0.7, 0.9, 1.0], include_lowest=True)
    calibration = (
        table.assign(right=right, bin=bins)
        .groupby("bin", observed=False)["right"]
        .agg(["size", "mean"])
        .rename(columns={"size": "calls", "mean": "right"})
    )
    print("\nCalibration (calls binned by confidence):\n")
    print(calibration.round(3).to_markdown())
    high = table["confidence"] >= 0.9
    print(f"\nconfidence >= 0.9: {int(high.sum())} calls, {right[high].mean():.3f} right")
    gene_table = pd.DataFrame(genes).groupby(["level", "cells"])[["called", "true", "true_called"]]
    gene_table = gene_table.sum()
    gene_table["precision"] = gene_table["true_called"] / gene_table["called"].clip(lower=1)
    gene_table["recall"] = gene_table["true_called"] / gene_table["true"].clip(lower=1)
    gene_table["realised_FDP"] = 1.0 - gene_table["precision"]
    print(f"\nGene level (true: |non-additive| > {args.gene_tolerance}):\n")
    print(gene_table.round(3).to_markdown())
    if not args.no_speed:
        adata = _planted_screen(args, args.seeds[0], 100, n_doubles=100)
        start = time.perf_counter()
        gi = sg.tl.genetic_interactions(adata, key_added=None)
        seconds = time.perf_counter() - start
        print(
            f"\nSpeed: {len(gi)} measured pairs x 200 replicates in {seconds:.1f} s (target < 60 s)"
        )


def main(argv=None) -> None:
    args = _parse_args(argv)
    if args.calls:
        calls(args)
        return
    prepare_run(args.threads)
    import pandas as pd
    import torch
    from _measure import measure

    import scgears as sg

    adata, name = _screen(args)
    sg.pp.rank_perturbation_genes(adata)
    sg.pp.split_perturbations(adata, kind="simulation", seed=args.seed)
    sg.pp.coexpression_graph(adata)
    sg.pp.perturbation_graph(adata)
    sg.model.GEARS.setup_anndata(adata)
    torch.manual_seed(args.seed)
    model = sg.model.GEARS(adata)
    model.train(max_epochs=args.epochs, enable_progress_bar=False)

    rows = []
    for size in args.panels:
        panel = _panel(adata, size)
        with measure() as predicted:
            grid = sg.tl.predict_combinations(model, panel, progress_bar=False)
        with measure() as scored:
            gi = sg.tl.genetic_interactions(grid)
        rows.append(
            {
                "panel_genes": len(panel),
                "pairs": len(gi),
                "predicted_conditions": grid.n_obs,
                "predict_s": round(predicted.seconds, 1),
                "gi_score_s": round(scored.seconds, 1),
                "peak_rss_mb": round(max(predicted.peak_mb, scored.peak_mb)),
                "pairs_not_additive": int((gi["subtype"] != "additive").sum()),
            }
        )
        del grid, gi
    print(
        f"\n{name}: {adata.n_obs:,} cells x {adata.n_vars:,} genes; GEARS trained "
        f"{args.epochs} epoch(s); torch threads {args.threads}, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}\n"
    )
    print(pd.DataFrame(rows).to_markdown(index=False))
    print("\nTargets: 100-gene panel (4,950 pairs) predicted in < 30 s, scored in < 60 s.")


if __name__ == "__main__":
    main()

"""Time a genetic-interaction map: every pair of a gene panel predicted by GEARS, then scored.

A GEARS model is trained briefly (the time of a prediction does not depend on how long the model
was trained) on the real Norman 2019 subset in ``../shared/data`` or, without it or with
``--simulated``, on a simulated screen. For each panel size, the panel is the screen's perturbed
genes followed by its measured genes in order of mean expression; ``sg.tl.predict_combinations``
predicts every pair and single, and ``sg.tl.genetic_interactions`` scores every pair with its
default gene selection. Printed: pairs, seconds for each step, peak RSS. Targets (issue 4): a
100-gene panel (4,950 pairs) predicted in under 30 s and scored in under a minute on 2 CPU cores.

Run from the repository root::

    python benchmarks/bench_gi.py                       # panels of 100 genes and every gene
    python benchmarks/bench_gi.py --panels 100 200      # chosen panel sizes
    python benchmarks/bench_gi.py --simulated           # without the Norman subset
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


def main(argv=None) -> None:
    args = _parse_args(argv)
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
                "pairs_called_any_subtype": int(
                    gi[["synergy", "suppression", "neomorphism", "redundancy", "epistasis"]]
                    .any(axis=1)
                    .sum()
                ),
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

"""Time ``sg.tl.recommend`` over every pair of a 100-gene panel (4,950 candidates), per objective.

A ``simulate_screen`` screen with 100 perturbed genes is run through ``sg.pp``, an ensemble of
three GEARS models is trained for one short epoch (the time of ``recommend`` does not depend on
how long the model was trained: it is almost all ``predict`` of the candidates), and
``recommend`` is timed with the first member alone and with the ensemble. Prints a table of
seconds per objective and the load average. Target (issue 15): under 30 s on 2 CPU cores.

Run from the repository root::

    python benchmarks/bench_recommend.py                 # 300 measured genes
    python benchmarks/bench_recommend.py --genes 2000
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

from _setup import prepare_run


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genes", type=int, default=300, help="measured genes of the screen")
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = _parse_args(argv)
    prepare_run(args.threads)
    import pandas as pd

    import scgears as sg

    adata = sg.datasets.simulate_screen(
        n_genes=args.genes,
        n_perturbed_genes=100,
        n_doubles=60,
        n_cells_per_condition=15,
        seed=args.seed,
    )
    sg.pp.register_perturbations(adata, "perturbation_name")
    sg.pp.rank_perturbation_genes(adata)
    sg.pp.split_perturbations(adata, kind="simulation", seed=1)
    sg.pp.coexpression_graph(adata)
    sg.pp.perturbation_graph(adata, all_genes=False)
    sg.model.GEARS.setup_anndata(adata)
    ensemble = sg.model.GEARSEnsemble(adata, n_models=3)
    ensemble.train(max_epochs=1, min_steps_per_epoch=2, enable_progress_bar=False)

    conditions = adata.obs["scgears_condition"].astype(str)
    genes = sorted({g for c in conditions if c != "ctrl" for g in c.split("+")})
    candidates = ["+".join(pair) for pair in itertools.combinations(genes, 2)]
    objectives = {
        "interactions": "interactions",
        "coverage": "coverage",
        "interactions + coverage": {"interactions": 1, "coverage": 1},
        "uncertainty": "uncertainty",
    }
    rows = []
    for name, model in (("GEARS", ensemble.models[0]), ("ensemble of 3", ensemble)):
        row = {"model": name}
        for label, objective in objectives.items():
            if label == "uncertainty" and name == "GEARS":
                row[label] = float("nan")  # one model has no uncertainty to rank by
                continue
            start = time.perf_counter()
            sg.tl.recommend(model, candidates, budget=args.budget, objective=objective)
            row[label] = round(time.perf_counter() - start, 1)
        rows.append(row)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n{len(candidates):,} candidate pairs over {len(genes)} genes; {adata.n_vars:,} "
        f"measured genes; seconds; torch threads {args.threads}, load average {load}\n"
    )
    print(pd.DataFrame(rows).to_markdown(index=False))
    print("\nTarget: under 30 s.")


if __name__ == "__main__":
    main()

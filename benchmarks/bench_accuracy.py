"""Accuracy of scgears' GEARS against the reference GEARS and the baselines on real Norman cells.

On the real Norman 2019 subset in ``../shared/data`` (3,375 cells x 500 genes, 33 perturbations),
for each seed of the ``simulation`` split: scgears' GEARS with its defaults, the reference GEARS
(cell-gears 0.1.2, the same hidden size, learning rate, epochs and seed, run on scgears' split
through its ``custom`` split; see ``benchmarks/reference``), and the no-change, train-mean,
additive and linear baselines are scored on the same test conditions with ``sg.tl.evaluate``
(GEARS' metric definitions). Printed: mse_de, pearson_delta and the fraction of top-20 DE genes in
the wrong direction, averaged over seeds, overall and per subgroup. Conditions the reference cannot
predict (genes outside its GO graph) get its no-change prediction, and are listed.

Run from the repository root (the reference needs ``bash benchmarks/reference/setup_env.sh``)::

    python benchmarks/bench_accuracy.py                    # seeds 1-3, 20 epochs, with reference
    python benchmarks/bench_accuracy.py --no-reference     # scgears and baselines only
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _setup import NORMAN_SUBSET, load_norman_subset, prepare_run

HERE = Path(__file__).resolve().parent
METRICS = ["mse_de", "pearson_delta", "frac_opposite_direction_top20_non_dropout"]
BASELINES = ["control", "mean", "additive", "linear"]


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=NORMAN_SUBSET)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument(
        "--reuse-reference",
        action="store_true",
        help="read the reference's earlier run in --out for a seed when its split and settings "
        "are the same, instead of training it again",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "accuracy")
    return parser.parse_args(argv)


def _prepare(adata, seed: int):
    import scgears as sg

    sg.pp.register_perturbations(adata, "condition", control="control")
    sg.pp.rank_perturbation_genes(adata)
    sg.pp.split_perturbations(adata, kind="simulation", seed=seed)
    sg.pp.coexpression_graph(adata)
    sg.pp.perturbation_graph(adata)
    return adata


def _baselines(adata, test: list[str]) -> dict:
    import scgears as sg

    out = {}
    for kind in BASELINES:
        conditions = test
        if kind == "additive":
            trained = set(adata.uns["scgears_split"]["conditions"]["train"])
            trained |= set(adata.uns["scgears_split"]["conditions"]["val"])
            conditions = [c for c in test if all(g in trained for g in c.split("+"))]
            if not conditions:
                continue
        out[kind] = sg.tl.baseline(adata, kind, conditions=conditions)
    return out


def _scgears(adata, seed: int, epochs: int):
    import torch

    import scgears as sg

    sg.model.GEARS.setup_anndata(adata)
    torch.manual_seed(seed)
    model = sg.model.GEARS(adata)
    start = time.perf_counter()
    model.train(max_epochs=epochs, seed=seed, enable_progress_bar=False)
    seconds = time.perf_counter() - start
    test = list(adata.uns["scgears_split"]["conditions"]["test"])
    return model.predict(test), seconds, model.kept_epoch_.best_epoch


def _reference(adata, seed: int, epochs: int, threads: int, workdir: Path, reuse: bool):
    from _reference import reference_predict

    start = time.perf_counter()
    pred = reference_predict(
        adata,
        epochs=epochs,
        seed=seed,
        threads=threads,
        missing="control",
        workdir=workdir,
        reuse=reuse,
    )
    return pred, time.perf_counter() - start


def main(argv=None) -> None:
    args = _parse_args(argv)
    prepare_run(args.threads)
    import pandas as pd

    import scgears as sg

    args.out.mkdir(parents=True, exist_ok=True)
    base = load_norman_subset(args.data)
    tables, notes = [], []
    for seed in args.seeds:
        adata = _prepare(base.copy(), seed)
        test = list(adata.uns["scgears_split"]["conditions"]["test"])
        predictions = {"scgears GEARS": None, **_baselines(adata, test)}
        predictions["scgears GEARS"], seconds, best = _scgears(adata, seed, args.epochs)
        notes.append(
            f"seed {seed}: scgears trained {args.epochs} epochs in {seconds:.0f} s "
            f"(best validation epoch {best + 1})"
        )
        if not args.no_reference:
            pred, ref_seconds = _reference(
                adata,
                seed,
                args.epochs,
                args.threads,
                args.out / f"reference_seed{seed}",
                args.reuse_reference,
            )
            predictions["reference GEARS"] = pred
            missing = pred.uns["scgears_profile"].get("not_predicted", [])
            notes.append(
                f"seed {seed}: reference trained and predicted in "
                f"{pred.uns['scgears_profile']['timings'].get('total_s', ref_seconds):.0f} s; "
                f"not predictable (no-change used): {list(missing) or 'none'}"
            )
        # each method on the conditions it predicts (additive: those with both singles trained)
        table = pd.concat(
            [
                sg.tl.evaluate(adata, {name: pred}, conditions=list(pred.obs_names))
                for name, pred in predictions.items()
            ],
            ignore_index=True,
        )
        table["seed"] = seed
        table.to_csv(args.out / f"per_condition_seed{seed}.csv", index=False)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(args.out / "per_condition.csv", index=False)

    print("\n".join(notes))
    per_seed = table.groupby(["method", "seed"])[METRICS].mean().groupby("method").mean()
    per_seed["conditions_per_seed"] = table.groupby("method").size() / len(args.seeds)
    print("\n## Overall (mean over test conditions, then over seeds)\n")
    print(per_seed.round(4).to_markdown())
    for metric in METRICS[:2]:
        by_group = (
            table.groupby(["method", "subgroup", "seed"])[metric]
            .mean()
            .groupby(["method", "subgroup"])
            .mean()
            .unstack("subgroup")
        )
        print(f"\n## {metric} by subgroup (mean over seeds)\n")
        print(by_group.round(4).to_markdown())
    counts = table[table["method"] == "scgears GEARS"].groupby(["seed", "subgroup"]).size()
    print("\n## Test conditions per seed and subgroup\n")
    print(counts.unstack("subgroup").to_markdown())
    print("\nAdditive is defined only where both singles were trained on (combo_seen2).")
    print(f"Per-condition results: {args.out / 'per_condition.csv'}")


if __name__ == "__main__":
    main()

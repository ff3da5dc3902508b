"""Accuracy of scgears' GEARS against the baselines, the split-half ceiling and the reference GEARS.

On the real Norman 2019 subset in ``../shared/data`` (3,375 cells x 500 genes, 33 perturbations),
or on a larger simulated screen (``--simulated``), for each seed of the ``simulation`` split:
scgears' GEARS with its defaults, the reference GEARS (cell-gears 0.1.2, the same hidden size,
learning rate, epochs and seed, run on scgears' split through its ``custom`` split; see
``benchmarks/reference``), the no-change, train-mean, additive and linear baselines and the
``duplicate`` split-half ceiling are scored on the same test conditions with ``sg.tl.evaluate``.
Printed, per subgroup (``unseen_single``, ``combo_seen0/1/2``) and overall: every metric (GEARS'
and ``pds``, ``pearson_delta_pert(_de)``, ``centroid_accuracy``), averaged over the test
conditions of each seed, then over seeds. Conditions the reference cannot predict (genes outside
its GO graph) get its no-change prediction, and are listed.

Scope of the comparison: the additive baseline is defined only for conditions whose genes all
have a training single (``combo_seen2``), so its "overall" row covers those only, and its
``centroid_accuracy`` is decided among those conditions only (fewer candidates than the others).

Run from the repository root (the reference needs ``bash benchmarks/reference/setup_env.sh``)::

    python benchmarks/bench_accuracy.py --no-model --no-reference   # baselines and ceiling
    python benchmarks/bench_accuracy.py --reuse-reference            # + model, stored reference
    python benchmarks/bench_accuracy.py --simulated --no-reference   # a larger simulated screen
    python benchmarks/bench_accuracy.py --no-reference --ensemble 5  # + a 5-member GEARSEnsemble

With ``--ensemble N`` a :class:`~scgears.model.GEARSEnsemble` of N members (the default model's
settings, seeds ``seed .. seed + N - 1``) is trained too, scored like the other methods, and the
Spearman correlation of its per-condition ``obs["uncertainty"]`` with the actual per-condition
``mse_de`` is printed over all test conditions, with the mean uncertainty per subgroup.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _setup import NORMAN_SUBSET, load_norman_subset, prepare_run

HERE = Path(__file__).resolve().parent
METRICS = [
    "mse_de",
    "pearson_delta",
    "pearson_delta_de",
    "frac_opposite_direction_top20_non_dropout",
    "pds",
    "pearson_delta_pert",
    "pearson_delta_pert_de",
    "centroid_accuracy",
    "mse",
    "pearson_de",
]
BASELINES = ["control", "mean", "additive", "linear"]
ENSEMBLE = "scgears ensemble"
CEILING = "duplicate (ceiling)"
SUBGROUPS = ["unseen_single", "combo_seen0", "combo_seen1", "combo_seen2", "overall"]


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=NORMAN_SUBSET)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--no-model", action="store_true", help="baselines and ceiling only")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument(
        "--reuse-reference",
        action="store_true",
        help="read the reference's earlier run in --out for a seed when its split and settings "
        "are the same, instead of training it again",
    )
    parser.add_argument(
        "--simulated",
        action="store_true",
        help="a simulated screen (sg.datasets.simulate_screen) instead of the Norman subset",
    )
    parser.add_argument("--genes", type=int, default=2000, help="simulated screen: genes")
    parser.add_argument("--perturbed-genes", type=int, default=80, help="simulated: genes hit")
    parser.add_argument("--doubles", type=int, default=150, help="simulated: pairs")
    parser.add_argument("--cells-per-condition", type=int, default=100, help="simulated")
    parser.add_argument("--screen-seed", type=int, default=0, help="simulated screen's seed")
    parser.add_argument(
        "--ensemble", type=int, default=0, help="also train a GEARSEnsemble of this many members"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = HERE / "results" / ("accuracy_simulated" if args.simulated else "accuracy")
    if args.simulated:
        args.no_reference = True  # the stored reference runs are for the Norman subset
    return args


def _load(args):
    import scgears as sg

    if not args.simulated:
        return load_norman_subset(args.data), "condition"
    adata = sg.datasets.simulate_screen(
        n_genes=args.genes,
        n_perturbed_genes=args.perturbed_genes,
        n_doubles=args.doubles,
        n_cells_per_condition=args.cells_per_condition,
        seed=args.screen_seed,
    )
    return adata, "perturbation_name"


def _prepare(adata, key: str, seed: int, model: bool):
    import scgears as sg

    sg.pp.register_perturbations(adata, key, control="control")
    sg.pp.rank_perturbation_genes(adata)
    sg.pp.split_perturbations(adata, kind="simulation", seed=seed)
    if model:
        sg.pp.coexpression_graph(adata)
        sg.pp.perturbation_graph(adata)
    return adata


def _baselines(adata, test: list[str], seed: int) -> dict:
    import scgears as sg

    out = {}
    for kind in BASELINES:
        conditions = test
        if kind == "additive":
            split = adata.uns["scgears_split"]["conditions"]
            trained = set(split["train"]) | set(split["val"])
            conditions = [c for c in test if all(g in trained for g in c.split("+"))]
            if not conditions:
                continue
        out[kind] = sg.tl.baseline(adata, kind, conditions=conditions)
    out[CEILING] = sg.tl.baseline(adata, "duplicate", conditions=test, seed=seed)
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
    return model.predict(test), seconds


def _ensemble(adata, seed: int, epochs: int, n_models: int):
    import scgears as sg

    ensemble = sg.model.GEARSEnsemble(adata, n_models=n_models)
    start = time.perf_counter()
    ensemble.train(max_epochs=epochs, seed=seed, enable_progress_bar=False)
    seconds = time.perf_counter() - start
    test = list(adata.uns["scgears_split"]["conditions"]["test"])
    return ensemble.predict(test), seconds


def _uncertainty_lines(table, uncertainty) -> list[str]:
    """Spearman of the ensemble's per-condition uncertainty with its per-condition mse_de."""
    from scipy.stats import spearmanr

    rows = table[table["method"] == ENSEMBLE].merge(uncertainty, on=["seed", "condition"])
    if len(rows) < 3:
        return []
    pooled = spearmanr(rows["uncertainty"], rows["mse_de"])[0]
    members = spearmanr(rows["uncertainty_members"], rows["mse_de"])[0]
    per_seed = rows.groupby("seed").apply(
        lambda g: spearmanr(g["uncertainty"], g["mse_de"])[0], include_groups=False
    )
    by_group = rows.groupby("subgroup")[["uncertainty", "uncertainty_members", "mse_de"]].mean()
    return [
        f"\n## ensemble uncertainty vs error ({len(rows)} test conditions)\n",
        f"Spearman(obs['uncertainty'], mse_de) over all conditions: {pooled:.3f} "
        f"(members' spread alone: {members:.3f}); per seed: "
        + ", ".join(f"{s}: {v:.2f}" for s, v in per_seed.items()),
        "",
        by_group.round(4).to_markdown(),
    ]


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


def _score(adata, predictions: dict):
    """One evaluate call for the methods that predict every test condition, one per other."""
    import pandas as pd

    import scgears as sg

    test = list(adata.uns["scgears_split"]["conditions"]["test"])
    complete = {k: p for k, p in predictions.items() if set(test) <= set(p.obs_names)}
    tables = [sg.tl.evaluate(adata, complete, conditions=test)] if complete else []
    for name, pred in predictions.items():
        if name not in complete:
            tables.append(sg.tl.evaluate(adata, {name: pred}, conditions=list(pred.obs_names)))
    return pd.concat(tables, ignore_index=True)


def _by_subgroup(table, methods: list[str]):
    """Mean over the conditions of each (method, subgroup, seed), then over seeds."""
    import pandas as pd

    overall = table.assign(subgroup="overall")
    long = pd.concat([table, overall], ignore_index=True)
    per_seed = long.groupby(["method", "subgroup", "seed"], sort=False)[METRICS].mean()
    means = per_seed.groupby(["method", "subgroup"], sort=False).mean()
    counts = long.groupby(["method", "subgroup"], sort=False).size() / table["seed"].nunique()
    means.insert(0, "conditions_per_seed", counts)
    order = [m for m in methods if m in means.index.get_level_values(0)]
    return means, order


def main(argv=None) -> None:
    args = _parse_args(argv)
    prepare_run(args.threads)
    import pandas as pd

    args.out.mkdir(parents=True, exist_ok=True)
    base, key = _load(args)
    tables, notes, uncertainties = [], [], []
    for seed in args.seeds:
        adata = _prepare(base.copy(), key, seed, model=not args.no_model)
        test = list(adata.uns["scgears_split"]["conditions"]["test"])
        predictions = {}
        if not args.no_model:
            predictions["scgears GEARS"], seconds = _scgears(adata, seed, args.epochs)
            notes.append(f"seed {seed}: scgears trained {args.epochs} epochs in {seconds:.0f} s")
        if args.ensemble and not args.no_model:
            pred, seconds = _ensemble(adata, seed, args.epochs, args.ensemble)
            predictions[ENSEMBLE] = pred
            notes.append(f"seed {seed}: {args.ensemble}-member ensemble trained in {seconds:.0f} s")
            uncertainties.append(
                pred.obs[["uncertainty", "uncertainty_members"]]
                .rename_axis("condition")
                .reset_index()
                .assign(seed=seed)
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
        predictions.update(_baselines(adata, test, seed))
        table = _score(adata, predictions)
        table["seed"] = seed
        table.to_csv(args.out / f"per_condition_seed{seed}.csv", index=False)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(args.out / "per_condition.csv", index=False)

    methods = list(dict.fromkeys(table["method"]))
    means, order = _by_subgroup(table, methods)
    means.to_csv(args.out / "summary.csv")
    lines = [*notes, ""]
    source = "simulated screen" if args.simulated else "Norman subset"
    lines.append(f"{source}, `simulation` split, seeds {', '.join(map(str, args.seeds))}")
    for subgroup in SUBGROUPS:
        rows = means.xs(subgroup, level="subgroup") if subgroup in means.index.levels[1] else None
        if rows is None or rows.empty:
            continue
        rows = rows.reindex([m for m in order if m in rows.index])
        lines += [f"\n## {subgroup} (mean over conditions, then over seeds)\n"]
        lines.append(rows.round(3).to_markdown())
    if uncertainties:
        lines += _uncertainty_lines(table, pd.concat(uncertainties, ignore_index=True))
    lines.append(
        "\nadditive: only conditions whose singles were all trained on (combo_seen2); its "
        "centroid_accuracy is decided among those conditions only."
    )
    lines.append(f"Per-condition results: {args.out / 'per_condition.csv'}")
    text = "\n".join(lines)
    (args.out / "summary.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

"""Predicted cells through cell-eval and pertpy: scgears' GEARS beside the train-mean baseline.

On the real Norman 2019 subset in ``../shared/data`` (``simulation`` split, ``--seed``), scgears'
GEARS is trained with its defaults for ``--epochs`` epochs; its prediction of the test conditions,
the train-mean baseline (``sg.tl.baseline(adata, "mean")``), the no-change baseline and the measured
means of the test conditions themselves (the noise model's own ceiling) are each turned into cells
by ``sg.tl.sample_cells`` (as many cells per condition as were measured, sampled control cells).
Each set of cells is then scored against the measured cells of the test conditions (with the
measured control cells) by

- cell-eval's ``MetricsEvaluator(...).compute(profile="full")`` (its aggregated metrics, mean over
  conditions; its DE is pdex's Wilcoxon test, FDR 0.05), and
- pertpy's ``Distance`` with ``edistance`` and ``mse``, predicted cells against measured cells of
  the same condition, on the log-normalised expression of all genes (lower is better),

and the number of DE genes per condition (scanpy's Wilcoxon test, FDR 0.05) of predicted and
measured cells is printed beside them.

cell-eval and pertpy are not scgears dependencies; run this in a separate environment that has
them (see the docs page "Predicted cells", which also gives the pins pertpy 1.0.3 needs)::

    python benchmarks/bench_interop.py --epochs 5 --out benchmarks/results/interop
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _setup import NORMAN_SUBSET, load_norman_subset, prepare_run

HERE = Path(__file__).resolve().parent
PERT = "perturbation"
CONTROL = "control"
#: cell-eval's aggregated metrics shown in the printed table (all are kept in the CSV).
SHOWN = [
    "overlap_at_N",
    "precision_at_N",
    "de_nsig_counts_pred",
    "de_nsig_counts_real",
    "de_spearman_lfc_sig",
    "pearson_delta",
    "mse",
    "discrimination_score_l1",
]


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=NORMAN_SUBSET)
    parser.add_argument("--seed", type=int, default=1, help="seed of the split and training")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "interop")
    return parser.parse_args(argv)


def prepare(adata, seed: int):
    """Register, rank DE genes, split and build the graphs, as the tutorial does."""
    import scgears as sg

    sg.pp.register_perturbations(adata, "condition", control="control")
    sg.pp.rank_perturbation_genes(adata)
    sg.pp.split_perturbations(adata, kind="simulation", seed=seed)
    sg.pp.coexpression_graph(adata)
    sg.pp.perturbation_graph(adata)
    return adata


def measured_cells(adata, conditions: list[str]):
    """The measured cells of ``conditions`` and the control cells, labelled as sample_cells does."""
    import numpy as np

    labels = adata.obs["scgears_condition"].astype(str)
    keep = labels.isin([*conditions, "ctrl"]).to_numpy()
    real = adata[keep].copy()
    names = labels[keep].to_numpy()
    real.obs[PERT] = np.where(names == "ctrl", CONTROL, names)
    return real


def cell_eval_scores(pred, real, outdir: Path):
    """cell-eval's per-condition results and aggregated metrics (pandas)."""
    from cell_eval import MetricsEvaluator

    evaluator = MetricsEvaluator(
        adata_pred=pred,
        adata_real=real,
        control_pert=CONTROL,
        pert_col=PERT,
        num_threads=1,
        outdir=str(outdir),
    )
    results, agg = evaluator.compute(profile="full", write_csv=False)
    return results.to_pandas(), agg.to_pandas()


def pertpy_distances(pred, real, conditions: list[str]):
    """pertpy's edistance and mse between predicted and measured cells of each condition."""
    import numpy as np
    import pandas as pd
    import pertpy as pt

    out = {}
    for metric in ("edistance", "mse"):
        distance = pt.tools.Distance(metric=metric)
        values = {}
        for condition in conditions:
            x = pred[pred.obs[PERT] == condition].X
            y = real[real.obs[PERT] == condition].X
            values[condition] = distance(_dense(x), _dense(y))
        out[metric] = pd.Series(values, dtype=np.float64)
    return pd.DataFrame(out)


def de_counts(cells, conditions: list[str]):
    """DE genes per condition against the control cells (scanpy's Wilcoxon test, FDR 0.05)."""
    import pandas as pd
    import scanpy as sc

    data = cells.copy()
    data.obs[PERT] = data.obs[PERT].astype(str).astype("category")
    sc.tl.rank_genes_groups(
        data, PERT, groups=conditions, reference=CONTROL, method="wilcoxon", key_added="de"
    )
    adjusted = data.uns["de"]["pvals_adj"]
    return pd.Series({c: int((adjusted[c] < 0.05).sum()) for c in conditions})


def _dense(x):
    import numpy as np

    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)


def main(argv=None) -> None:
    args = _parse_args(argv)
    prepare_run(args.threads)
    import pandas as pd
    import torch

    import scgears as sg

    args.out.mkdir(parents=True, exist_ok=True)
    adata = prepare(load_norman_subset(args.data), args.seed)
    test = sorted(adata.uns["scgears_split"]["conditions"]["test"])
    sg.model.GEARS.setup_anndata(adata)
    torch.manual_seed(args.seed)
    model = sg.model.GEARS(adata)
    start = time.perf_counter()
    model.train(max_epochs=args.epochs, seed=args.seed, enable_progress_bar=False)
    train_s = time.perf_counter() - start
    profiles = {
        "scgears GEARS": model.predict(test),
        "train mean": sg.tl.baseline(adata, "mean", conditions=test),
        "no change": sg.tl.baseline(adata, "control", conditions=test),
        "measured means": sg.tl.measured_profiles(adata, test),
    }
    # as many cells per condition as were measured, for every method alike
    n_cells = int(profiles["measured means"].obs["n_cells"].median())
    real = measured_cells(adata, test)
    real.write_h5ad(args.out / "measured_cells.h5ad")
    agg_rows, distance_rows, de_rows, notes = {}, {}, {"measured cells": de_counts(real, test)}, []
    for name, prof in profiles.items():
        start = time.perf_counter()
        cells = sg.tl.sample_cells(adata, prof, n_cells=n_cells, seed=args.seed)
        notes.append(f"{name}: {cells.n_obs} cells sampled in {time.perf_counter() - start:.1f} s")
        cells.write_h5ad(args.out / f"cells_{name.replace(' ', '_')}.h5ad")
        with tempfile.TemporaryDirectory() as tmp:
            results, agg = cell_eval_scores(cells, real, Path(tmp))
        results.to_csv(args.out / f"cell_eval_{name.replace(' ', '_')}.csv", index=False)
        agg_rows[name] = agg.set_index("statistic").loc["mean"]
        distance_rows[name] = pertpy_distances(cells, real, test).mean()
        de_rows[name] = de_counts(cells, test)

    agg = pd.DataFrame(agg_rows).T
    distances = pd.DataFrame(distance_rows).T
    de = pd.DataFrame(de_rows)
    agg.to_csv(args.out / "cell_eval_mean.csv")
    distances.to_csv(args.out / "pertpy_distances.csv")
    de.to_csv(args.out / "de_counts.csv")
    pd.set_option("display.width", 200)
    print(
        f"Norman subset, simulation split seed {args.seed}: {len(test)} test conditions, "
        f"{n_cells} cells each; scgears GEARS trained {args.epochs} epochs in {train_s:.0f} s"
    )
    print("\ncell-eval (mean over test conditions):")
    print(agg[[c for c in SHOWN if c in agg.columns]].round(3).to_string())
    print(
        "\npertpy Distance, predicted vs measured cells of each condition (mean; lower is better):"
    )
    print(distances.round(4).to_string())
    print("\nDE genes per test condition (scanpy Wilcoxon vs control, FDR 0.05):")
    print(de.to_string())
    print(de.describe().loc[["mean", "50%", "max"]].round(2).to_string())
    print("\n" + "\n".join(notes))


if __name__ == "__main__":
    main()

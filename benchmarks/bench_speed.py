"""Training speed and memory of scgears' GEARS against the reference GEARS, in one run.

Both train on the same simulated screen of Norman's shape (5,000 genes, ~240 conditions with
doubles, ~100,000 cells, sparse, log-normalised) and the same ``simulation`` split. Reported:

* scgears: a full ``model.train(max_epochs=EPOCHS)`` with its defaults (seconds, seconds per
  epoch including validation), the training throughput in cells per second (training cells per
  epoch / seconds per epoch; and per optimiser step, without validation), peak RSS;
* the reference (cell-gears 0.1.2, run through ``benchmarks/reference``): ``STEPS`` timed training
  steps at its default batch size (32 cells) after its data processing, cells per second, peak RSS;
* the ratio of the two throughputs.

Run from the repository root (the reference needs ``bash benchmarks/reference/setup_env.sh``)::

    python benchmarks/bench_speed.py                  # full size, 20 epochs, with reference
    python benchmarks/bench_speed.py --no-reference --cells-per-condition 50 --epochs 2  # smoke
    python benchmarks/bench_speed.py --accelerator gpu      # on a GPU machine
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _setup import add_screen_arguments, prepare_run

HERE = Path(__file__).resolve().parent


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_screen_arguments(parser)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--reference-steps", type=int, default=10)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument(
        "--reference-cells",
        type=int,
        default=None,
        help="give the reference a random subset of this many cells (its in-memory dataset of "
        "dense per-cell graphs needs ~2 x genes x 4 bytes per cell); default: all cells",
    )
    parser.add_argument(
        "--paths",
        default="statistics,cells",
        help="training paths to time, comma-separated: statistics (the default when exact), cells",
    )
    parser.add_argument(
        "--reference-cells-per-s",
        type=float,
        default=None,
        help="with --no-reference: a stored reference throughput (cells/s per step) for the ratio",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "speed")
    return parser.parse_args(argv)


class _StepTimer:
    """Lightning callback timing the optimiser steps (forward, backward, update) of each batch."""

    def __new__(cls):
        import time

        from lightning.pytorch.callbacks import Callback

        class StepTimer(Callback):
            def __init__(self):
                self.seconds, self.cells = [], []

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                self._start = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                self.seconds.append(time.perf_counter() - self._start)
                # cells a step covers: its cells, or the cells behind its statistics
                n = batch["x"].shape[0] if "x" in batch else batch["n_cells"].sum()
                self.cells.append(int(n))

        return StepTimer()


def main(argv=None) -> None:
    args = _parse_args(argv)
    prepare_run(args.threads)
    import numpy as np
    import pandas as pd
    import torch
    from _measure import measure

    import scgears as sg

    args.out.mkdir(parents=True, exist_ok=True)
    with measure() as simulated:
        adata = sg.datasets.simulate_screen(
            n_genes=args.genes,
            n_perturbed_genes=args.perturbed_genes,
            n_doubles=args.doubles,
            n_cells_per_condition=args.cells_per_condition,
            seed=args.seed,
        )
    del adata.layers["counts"]  # neither model reads the raw counts
    with measure() as preprocessed:
        sg.pp.register_perturbations(adata, "perturbation_name")
        sg.pp.rank_perturbation_genes(adata)
        sg.pp.split_perturbations(adata, kind="simulation", seed=1)
        sg.pp.coexpression_graph(adata)
        sg.pp.perturbation_graph(adata)
    split = adata.obs["scgears_split"].astype(str)
    n_conditions = adata.obs["scgears_condition"].nunique()
    print(
        f"screen: {adata.n_obs:,} cells x {adata.n_vars:,} genes, {n_conditions} conditions, "
        f"{(split == 'train').sum():,} train / {(split == 'val').sum():,} val cells; simulated in "
        f"{simulated.seconds:.0f} s, preprocessed in {preprocessed.seconds:.0f} s"
    )

    sg.model.GEARS.setup_anndata(adata)
    n_train = int((split == "train").sum())
    rows = []
    for path in args.paths.split(","):
        torch.manual_seed(0)
        with measure() as created:  # the one pass over X for the statistics happens here
            model = sg.model.GEARS(adata)
        timer = _StepTimer()
        with measure() as trained:
            model.train(
                max_epochs=args.epochs,
                statistics=path == "statistics",
                accelerator=args.accelerator,
                devices=1,
                enable_progress_bar=False,
                callbacks=[timer],
            )
        steps = np.array(timer.seconds[1:])  # the first step pays for lazy initialisation
        cells = np.array(timer.cells[1:])
        rows.append(
            {
                "implementation": f"scgears ({path})",
                "batch": "16 conditions"
                if path == "statistics"
                else "~512 cells (16 conditions x 32)",
                "create_s": round(created.seconds, 1),
                "train_s": round(trained.seconds, 1),
                "s_per_epoch": round(trained.seconds / args.epochs, 2),
                "cells_per_s_epoch": round(n_train * args.epochs / trained.seconds, 1),
                "s_per_step": round(float(steps.mean()), 4),
                "cells_per_s_steps": round(float(cells.sum() / steps.sum()), 1),
                "peak_rss_mb": round(max(created.peak_mb, trained.peak_mb)),
            }
        )
        del model
    reference_rate = args.reference_cells_per_s
    if not args.no_reference:
        from _reference import reference_throughput

        reference_data = adata
        if args.reference_cells and args.reference_cells < adata.n_obs:
            rng = np.random.default_rng(args.seed)
            keep = np.sort(rng.choice(adata.n_obs, args.reference_cells, replace=False))
            reference_data = adata[keep].copy()
        result = reference_throughput(
            reference_data, steps=args.reference_steps, batch_size=32, threads=args.threads
        )
        throughput = result["throughput"]
        rows.append(
            {
                "implementation": "reference GEARS 0.1.2",
                "batch": f"32 cells ({reference_data.n_obs:,}-cell dataset)",
                "train_s": None,
                "s_per_epoch": round(throughput["seconds_per_step"] * n_train / 32, 1),
                "cells_per_s_epoch": None,
                "s_per_step": round(throughput["seconds_per_step"], 4),
                "cells_per_s_steps": round(throughput["cells_per_s"], 2),
                "peak_rss_mb": round(result["peak_rss_mb"]["overall"]),
            }
        )
        reference_rate = throughput["cells_per_s"]
    table = pd.DataFrame(rows).set_index("implementation")
    table.to_csv(args.out / "speed.csv")
    print(f"\ndevice: {args.accelerator}, torch threads: {args.threads}, "
          f"torch {torch.__version__}\n")  # fmt: skip
    print(table.to_markdown())
    for row in rows:
        if row["implementation"].startswith("scgears"):
            print(
                f"{row['implementation']}: {args.epochs} epochs in {row['train_s']:.0f} s "
                f"(+{row['create_s']:.0f} s creating the model)"
            )
            if reference_rate:
                print(
                    f"  throughput ratio / reference ({reference_rate} cells/s per step"
                    + (", stored" if args.no_reference else ", same run")
                    + f"): {row['cells_per_s_steps'] / reference_rate:.0f}x per step, "
                    f"{row['cells_per_s_epoch'] / reference_rate:.0f}x per epoch with validation"
                )
    if not args.no_reference:
        print(f"reference data processing: {result.get('timings')}")


if __name__ == "__main__":
    main()

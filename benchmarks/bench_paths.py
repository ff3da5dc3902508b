"""Accuracy of the two training paths (sufficient statistics, cells) on the real Norman subset.

Same data, seeds, split, epochs and metrics as ``bench_accuracy.py`` (``sg.tl.evaluate`` on the
test conditions of each ``simulation`` split); the only difference between the two rows of a seed
is ``model.train(statistics=...)``. Printed: mean metrics per path over the seeds, and per seed.

Run from the repository root::

    python benchmarks/bench_paths.py --seeds 1 2 3 --epochs 20
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _setup import NORMAN_SUBSET, load_norman_subset, prepare_run
from bench_accuracy import METRICS, _prepare

HERE = Path(__file__).resolve().parent


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=NORMAN_SUBSET)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "paths")
    args = parser.parse_args(argv)
    prepare_run(args.threads)
    import pandas as pd
    import torch

    import scgears as sg

    args.out.mkdir(parents=True, exist_ok=True)
    base = load_norman_subset(args.data)
    rows = []
    for seed in args.seeds:
        adata = _prepare(base.copy(), seed)
        sg.model.GEARS.setup_anndata(adata)
        test = list(adata.uns["scgears_split"]["conditions"]["test"])
        for path in ("statistics", "cells"):
            torch.manual_seed(seed)
            model = sg.model.GEARS(adata)
            start = time.perf_counter()
            model.train(
                max_epochs=args.epochs,
                seed=seed,
                statistics=path == "statistics",
                enable_progress_bar=False,
            )
            seconds = time.perf_counter() - start
            table = sg.tl.evaluate(adata, {path: model.predict(test)})
            row = table[METRICS].mean().to_dict()
            rows.append({"seed": seed, "path": path, "train_s": round(seconds, 1), **row})
            print(rows[-1], flush=True)
    result = pd.DataFrame(rows)
    result.to_csv(args.out / "paths.csv", index=False)
    print(result.round(4).to_markdown(index=False))
    print()
    print(result.groupby("path")[["train_s", *METRICS]].mean().round(4).to_markdown())


if __name__ == "__main__":
    main()

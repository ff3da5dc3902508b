"""Training speed from a plain Python script against the command line's settings (issue 11, item 6).

Each mode trains GEARS for ``--epochs`` epochs on the Norman subset of the development data, in a
fresh Python process (OpenMP reads its settings once per process):

``cli``
    ``OMP_WAIT_POLICY=PASSIVE`` in the environment before torch loads: what ``scgears demo`` does.
``scgears-first``
    A plain script: no variable set, ``import scgears`` before torch (scgears sets the policy).
``torch-first``
    No variable set, torch imported before scgears (a notebook that imported scvi-tools first),
    trained as scgears 0.x did: idle threads spin.
``torch-first-fixed``
    The same, trained inside :func:`scgears._threads.training_threads` (what ``GEARS.train`` does).

Run on a shared machine, the timings measure exactly the contention the modes differ by; the
table shows each mode's median training time and its ratio to ``cli``::

    python benchmarks/bench_threads.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODES = ("cli", "scgears-first", "torch-first", "torch-first-fixed")


def child(mode: str, epochs: int, data: str) -> dict:
    """Prepare the Norman subset and time its training, in the way ``mode`` says."""
    if mode.startswith("torch-first"):
        import torch  # loads OpenMP before scgears can set the wait policy
    import logging
    import warnings

    import anndata as ad

    import scgears as sg
    from scgears._threads import training_threads

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    adata = ad.read_h5ad(data)
    adata = adata[adata.obs["dataset"] == "norman19"].copy()
    sg.pp.register_perturbations(adata, "condition", control="control")
    sg.pp.rank_perturbation_genes(adata)
    sg.pp.split_perturbations(adata, kind="simulation", seed=1)
    sg.pp.coexpression_graph(adata)
    sg.pp.perturbation_graph(adata)
    sg.model.GEARS.setup_anndata(adata)
    model = sg.model.GEARS(adata)
    import torch

    start = time.perf_counter()
    if mode in ("scgears-first", "torch-first-fixed"):
        with training_threads() as n_threads:
            model.train(max_epochs=epochs, seed=1, enable_progress_bar=False)
    else:
        n_threads = torch.get_num_threads()
        model.train(max_epochs=epochs, seed=1, enable_progress_bar=False)
    return {
        "mode": mode,
        "train_s": time.perf_counter() - start,
        "threads": n_threads,
        "policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "load": os.getloadavg()[0],
    }


def run(mode: str, epochs: int, data: str) -> dict:
    """One fresh process in ``mode``; its result."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if mode == "cli":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    src = str(HERE.parent / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, __file__, "--child", mode, "--epochs", str(epochs), "--data", data]
    start = time.perf_counter()
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    default = HERE.parents[1] / "shared/data/perturbseq/perturbench_devel_norman19_mcfaline23.h5ad"
    parser.add_argument("--data", default=str(default))
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.epochs, args.data)))
        return
    if not Path(args.data).exists():
        sys.exit(f"Norman subset not found at {args.data}; pass --data.")
    results = []
    for repeat in range(args.repeats):
        for mode in args.modes:  # interleaved, so that a change of load hits every mode
            result = run(mode, args.epochs, args.data)
            results.append(result)
            print(
                f"[{repeat}] {mode:18s} train {result['train_s']:7.1f} s  threads "
                f"{result['threads']}  load {result['load']:.1f}",
                flush=True,
            )
    cli_times = [r["train_s"] for r in results if r["mode"] == "cli"]
    cli = statistics.median(cli_times) if cli_times else float("nan")
    print(f"\n{args.epochs}-epoch training on the Norman subset, {os.cpu_count()} cores")
    print(f"{'mode':18s} {'median s':>9s} {'x cli':>6s}  runs")
    for mode in args.modes:
        times = [r["train_s"] for r in results if r["mode"] == mode]
        median = statistics.median(times)
        shown = ", ".join(f"{t:.1f}" for t in times)
        print(f"{mode:18s} {median:9.1f} {median / cli:6.2f}  {shown}")


if __name__ == "__main__":
    main()

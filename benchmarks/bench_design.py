"""Retrospective experiment design: does ``sg.tl.recommend`` find interactions faster than chance?

On screens whose every double was measured, pretend most doubles were not: start from every single
plus a random 20% of the pairs (the "revealed" conditions), then in rounds of ``k`` conditions
let an objective choose which unrevealed pairs to measure next, reveal their measured cells,
retrain, and record after each round

* ``error``: the model's mean ``mse_de`` on the pairs not yet revealed (lower is better), and
* ``found``: how many strong interactions the revealed-by-selection pairs hold. On simulated
  screens a pair counts when it is a planted interaction (any of the five subtypes) that
  :func:`scgears.tl.genetic_interactions`, run on all of its measured cells, calls as that subtype
  with ``confidence >= 0.9``; on real screens (no truth) when the measured call is non-additive
  with ``confidence >= 0.9``. Without the calibrated calls (older versions), planted pairs count.

Each objective (``interactions``, ``coverage``, ``uncertainty`` when the model has one, and a
``mix`` of interactions and coverage) is compared with random selection at the same budget, from the
same start, averaged over screens. ``--screens`` picks simulated seeds; ``--norman`` adds the real
Norman subset (skipped when ``../shared/data`` is absent).

Run from the repository root::

    python benchmarks/bench_design.py                       # 3 simulated screens, 3 rounds
    python benchmarks/bench_design.py --norman --figure docs/_static/design_curves.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _setup import NORMAN_SUBSET, load_norman_subset, prepare_run

OBJECTIVES = {
    "random": None,
    "interactions": "interactions",
    "coverage": "coverage",
    "mix": {"interactions": 1.0, "coverage": 1.0},
}


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screens", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--genes", type=int, default=400)
    parser.add_argument("--perturbed-genes", type=int, default=24)
    parser.add_argument("--doubles", type=int, default=80)
    parser.add_argument("--interactions-per-subtype", type=int, default=3)
    parser.add_argument("--cells-per-condition", type=int, default=60)
    parser.add_argument("--start-fraction", type=float, default=0.2)
    parser.add_argument("--reveal-fraction", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--norman", action="store_true", help="add the real Norman subset")
    parser.add_argument("--data", type=Path, default=NORMAN_SUBSET)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--figure", type=Path, default=None)
    return parser.parse_args(argv)


def _simulated(seed: int, args):
    import scgears as sg

    adata = sg.datasets.simulate_screen(
        n_genes=args.genes,
        n_perturbed_genes=args.perturbed_genes,
        n_doubles=args.doubles,
        n_interactions_per_subtype=args.interactions_per_subtype,
        n_cells_per_condition=args.cells_per_condition,
        seed=seed,
    )
    sg.pp.register_perturbations(adata, "perturbation_name")
    truth = adata.uns["simulation"]["gi"]["subtype"].astype(str)
    return adata, truth


def _norman(args):
    import scgears as sg

    adata = load_norman_subset(args.data)
    sg.pp.register_perturbations(adata, "condition", control="control")
    return adata, None


def _measured_calls(adata, pairs: list[str]) -> pd.DataFrame:
    """Calibrated calls of every measured pair from all of its cells: the truth as measured."""
    import scgears as sg

    return sg.tl.genetic_interactions(adata, pairs=pairs)


def _strong(calls: pd.DataFrame, truth: pd.Series | None) -> set[str]:
    """Pairs that count as found when revealed."""
    calibrated = {"subtype", "confidence"} <= set(calls.columns)
    if truth is not None:
        planted = set(truth.index[truth != "additive"])
        if not calibrated:
            return planted
        right = calls["subtype"].astype(str).reindex(truth.index) == truth
        confident = calls["confidence"].reindex(truth.index) >= 0.9
        return planted & set(truth.index[right & confident])
    if not calibrated:
        return set()
    nonadditive = calls["subtype"].astype(str) != "additive"
    return set(calls.index[nonadditive & (calls["confidence"] >= 0.9)])


def _train(adata, revealed: list[str], hidden: list[str], seed: int, epochs: int):
    import scgears as sg

    work = adata.copy()
    # validation: a few revealed pairs, so model selection never sees a hidden pair
    rng = np.random.default_rng(seed)
    val = list(rng.choice(revealed, size=max(1, len(revealed) // 10), replace=False))
    sg.pp.split_perturbations(work, kind="custom", test_conditions={"test": hidden, "val": val})
    sg.pp.rank_perturbation_genes(work)
    sg.pp.coexpression_graph(work)
    # the screen's genes only: a graph over the whole GO table would cost more than the model
    sg.pp.perturbation_graph(work, all_genes=False)
    sg.model.GEARS.setup_anndata(work)
    model = sg.model.GEARS(work)
    model.train(max_epochs=epochs, seed=seed, enable_progress_bar=False)
    return model, work


def _error(model, work, hidden: list[str]) -> float:
    import scgears as sg

    table = sg.tl.evaluate(work, {"GEARS": model.predict(hidden)}, conditions=hidden)
    return float(table["mse_de"].mean())


def _pick(model, objective, hidden: list[str], k: int, rng) -> list[str]:
    import scgears as sg

    if objective is None:
        return list(rng.choice(hidden, size=min(k, len(hidden)), replace=False))
    table = sg.tl.recommend(model, hidden, budget=k, objective=objective, random_state=0)
    return list(table.index)


def _run_screen(name, adata, truth, args) -> pd.DataFrame:
    conditions = pd.unique(adata.obs["scgears_condition"].astype(str))
    pairs = sorted(c for c in conditions if c.count("+") == 1)
    calls = _measured_calls(adata, pairs)
    strong = _strong(calls, truth)
    rng = np.random.default_rng(0)
    n_start = max(1, round(args.start_fraction * len(pairs)))
    start = sorted(rng.choice(pairs, size=n_start, replace=False))
    n_reveal = max(args.rounds, round(args.reveal_fraction * len(pairs)))
    k = int(np.ceil(n_reveal / args.rounds))
    rows = []
    first = None  # round 0 starts from the same conditions for every objective: train it once
    for label, objective in OBJECTIVES.items():
        revealed = list(start)
        chosen: list[str] = []
        pick_rng = np.random.default_rng(1)
        for round_ in range(args.rounds + 1):
            hidden = [p for p in pairs if p not in revealed]
            t0 = time.perf_counter()
            if round_ == 0 and first is not None:
                model, work = first
            else:
                model, work = _train(adata, revealed, hidden, seed=round_, epochs=args.epochs)
                if round_ == 0:
                    first = (model, work)
            rows.append(
                {
                    "screen": name,
                    "objective": label,
                    "round": round_,
                    "revealed_pairs": len(chosen),
                    "error": _error(model, work, hidden),
                    "found": len(strong & set(chosen)),
                    "strong_total": len(strong - set(start)),
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
            if round_ == args.rounds:
                break
            picks = _pick(model, objective, hidden, k, pick_rng)
            chosen += picks
            revealed += picks
    return pd.DataFrame(rows)


def _figure(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean = table.groupby(["objective", "revealed_pairs"])[["found", "error"]].mean().reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for objective, part in mean.groupby("objective"):
        axes[0].plot(part["revealed_pairs"], part["found"], marker="o", label=objective)
        axes[1].plot(part["revealed_pairs"], part["error"], marker="o", label=objective)
    axes[0].set_xlabel("pairs revealed by the objective")
    axes[0].set_ylabel("strong interactions found")
    axes[1].set_xlabel("pairs revealed by the objective")
    axes[1].set_ylabel("mse_de on unrevealed pairs")
    axes[0].legend(fontsize=8)
    fig.suptitle("Retrospective design (mean over screens)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    args = _parse_args(argv)
    prepare_run(args.threads)
    screens = []
    for seed in args.screens:
        adata, truth = _simulated(seed, args)
        screens.append((f"simulated seed {seed}", adata, truth))
    if args.norman:
        if Path(args.data).exists():
            adata, truth = _norman(args)
            screens.append(("Norman subset", adata, truth))
        else:
            print(f"Norman subset not found at {args.data}: skipped")
    tables = [_run_screen(name, adata, truth, args) for name, adata, truth in screens]
    table = pd.concat(tables, ignore_index=True)
    last = table[table["round"] == args.rounds]
    summary = last.groupby(["screen", "objective"])[["found", "strong_total", "error"]].mean()
    print("\nAfter the last round (found = strong interactions among the revealed pairs):")
    print(summary.round(4).to_string())
    simulated = last[last["screen"].str.startswith("simulated")]
    if len(simulated):
        mean = simulated.groupby("objective")[["found", "error"]].mean()
        print("\nMean over simulated screens:")
        print(mean.round(4).to_string())
        if "random" in mean.index and mean.loc["random", "found"] > 0:
            ratio = mean["found"] / mean.loc["random", "found"]
            print("\nfound / random's found:")
            print(ratio.round(2).to_string())
    if args.figure is not None:
        _figure(table, args.figure)
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()

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

Each objective (``interactions`` and ``uncertainty`` chosen by an ensemble of ``--members``
models, ``interactions (1 model)`` by its first member alone, ``coverage``, and a mix of
interactions and coverage) starts from the same conditions and is compared with ``--random-draws``
random batches of the same size. ``error`` is always that of one GEARS model retrained on the
revealed conditions (as a user's model would be); ``interactions (1 model)`` is only counted.
Screens: ``--screens`` picks seeds of ``sg.datasets.simulate_screen``; ``--sparse`` seeds of a
second, independent generator (``_sparse_screen.py``: sparse single effects, interactions planted
on random pairs, optionally around ``--hub-genes`` hubs); ``--norman`` adds the real Norman subset
(skipped when ``../shared/data`` is absent).

Run from ``benchmarks/`` (the numbers of the docs: three runs, then one summary and figure)::

    python bench_design.py --screens 0 1 2 --sparse --epochs 6 --random-draws 2 --out sim.csv
    python bench_design.py --screens --sparse 0 1 2 --epochs 6 --random-draws 2 --out sparse.csv
    python bench_design.py --screens --sparse 0 1 --hub-genes 4 --epochs 6 --random-draws 2 \
        --out hubs.csv
    python bench_design.py --from-csv sim.csv sparse.csv hubs.csv \
        --figure ../docs/_static/design_curves.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _setup import NORMAN_SUBSET, load_norman_subset, prepare_run

#: Objectives compared with random selection: (recommend's objective, model that chooses).
#: "ensemble" picks with the members' mean prediction (and their spread), "single" with member 0.
OBJECTIVES = {
    "interactions": ("interactions", "ensemble"),
    "interactions (1 model)": ("interactions", "single"),
    "uncertainty": ("uncertainty", "ensemble"),
    "coverage": ("coverage", "single"),
    "interactions + coverage": ({"interactions": 1.0, "coverage": 1.0}, "ensemble"),
}
#: Objectives whose picks are only counted (found), not retrained on (error): to save time.
FOUND_ONLY = ("interactions (1 model)",)


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screens", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument(
        "--sparse", type=int, nargs="*", default=[0, 1, 2], help="seeds of the second generator"
    )
    parser.add_argument(
        "--hub-genes", type=int, default=0, help="hub genes of the second generator (0: none)"
    )
    parser.add_argument("--genes", type=int, default=400)
    parser.add_argument("--perturbed-genes", type=int, default=24)
    parser.add_argument("--doubles", type=int, default=80)
    parser.add_argument("--interactions-per-subtype", type=int, default=3)
    parser.add_argument("--cells-per-condition", type=int, default=60)
    parser.add_argument("--start-fraction", type=float, default=0.2)
    parser.add_argument("--reveal-fraction", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--members", type=int, default=3, help="ensemble members that choose")
    parser.add_argument("--random-draws", type=int, default=3)
    parser.add_argument("--objectives", nargs="*", default=list(OBJECTIVES))
    parser.add_argument("--norman", action="store_true", help="add the real Norman subset")
    parser.add_argument("--data", type=Path, default=NORMAN_SUBSET)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write the rows as csv")
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument(
        "--from-csv", type=Path, nargs="*", default=None, help="summarise saved --out rows only"
    )
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


def _sparse(seed: int, args):
    from _sparse_screen import sparse_screen

    import scgears as sg

    adata, truth = sparse_screen(
        n_genes=args.genes,
        n_perturbed_genes=args.perturbed_genes,
        n_doubles=args.doubles,
        n_interactions_per_subtype=args.interactions_per_subtype,
        n_cells_per_condition=args.cells_per_condition,
        n_hub_genes=args.hub_genes,
        seed=seed,
    )
    sg.pp.register_perturbations(adata, "perturbation_name", control="control")
    return adata, truth


def _train(adata, revealed: list[str], hidden: list[str], seed: int, epochs: int, members=1):
    """A GEARS model (or an ensemble of ``members``) trained on the revealed conditions only."""
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
    gears = sg.model.GEARS
    model = sg.model.GEARSEnsemble(work, n_models=members) if members > 1 else gears(work)
    model.train(max_epochs=epochs, seed=seed, enable_progress_bar=False)
    return model, work


def _error(model, work, hidden: list[str]) -> float:
    import scgears as sg

    table = sg.tl.evaluate(work, {"GEARS": model.predict(hidden)}, conditions=hidden)
    return float(table["mse_de"].mean())


def _pick(models: dict, objective, chooser: str, hidden: list[str], k: int) -> list[str]:
    import scgears as sg

    model = models[chooser]
    table = sg.tl.recommend(model, hidden, budget=k, objective=objective, random_state=0)
    return list(table.index)


def _run_screen(name, adata, truth, args) -> pd.DataFrame:
    """One screen: every objective from the same start, then random draws; one row per round."""
    conditions = pd.unique(adata.obs["scgears_condition"].astype(str))
    pairs = sorted(c for c in conditions if c.count("+") == 1)
    calls = _measured_calls(adata, pairs)
    strong = _strong(calls, truth)
    planted = set() if truth is None else set(truth.index[truth != "additive"])
    rng = np.random.default_rng(0)
    n_start = max(1, round(args.start_fraction * len(pairs)))
    start = sorted(rng.choice(pairs, size=n_start, replace=False))
    n_reveal = max(args.rounds, round(args.reveal_fraction * len(pairs)))
    k = int(np.ceil(n_reveal / args.rounds))
    runs = [(label, *OBJECTIVES[label]) for label in args.objectives]
    runs += [(f"random {d}", None, None) for d in range(args.random_draws)]
    rows = []
    first = None  # round 0 starts from the same conditions for every run: train it once
    for label, objective, chooser in runs:
        revealed = list(start)
        chosen: list[str] = []
        pick_rng = np.random.default_rng(1 + int(label.split()[-1]) if chooser is None else 1)
        found_only = label in FOUND_ONLY
        for round_ in range(args.rounds + 1):
            hidden = [p for p in pairs if p not in revealed]
            t0 = time.perf_counter()
            if round_ == 0 and first is not None:
                models, work = first
            elif round_ > 0 and found_only and round_ == args.rounds:
                models, work = None, None
            else:
                # an ensemble only where one chooses next: the error is one model's
                chooses = round_ < args.rounds and (round_ == 0 or chooser == "ensemble")
                members = args.members if chooses else 1
                ens, work = _train(adata, revealed, hidden, round_, args.epochs, members)
                single = ens.models[0] if members > 1 else ens
                models = {"ensemble": ens, "single": single}
                if round_ == 0:
                    first = (models, work)
            left = strong & set(hidden)
            rows.append(
                {
                    "screen": name,
                    "objective": label,
                    "round": round_,
                    "revealed_pairs": len(chosen),
                    # error of one model (member 0), as a user's single model would have
                    "error": np.nan if models is None else _error(models["single"], work, hidden),
                    "found": len(strong & set(chosen)),
                    "planted_revealed": len(planted & set(chosen)),
                    "strong_total": len(strong - set(start)),
                    # what random selection finds on average with the next batch
                    "random_expected_next": k * len(left) / max(len(hidden), 1),
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
            if round_ == args.rounds:
                break
            if chooser is None:
                picks = list(pick_rng.choice(hidden, size=min(k, len(hidden)), replace=False))
            else:
                picks = _pick(models, objective, chooser, hidden, k)
            chosen += picks
            revealed += picks
    return pd.DataFrame(rows)


def _figure(table: pd.DataFrame, path: Path) -> None:
    """Found and error against pairs revealed, one row of panels per generator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = table.copy()
    table["generator"] = table["screen"].str.split(" seed").str[0]
    table["objective"] = table["objective"].str.replace(r"^random \d+$", "random", regex=True)
    generators = list(dict.fromkeys(table["generator"]))
    fig, axes = plt.subplots(len(generators), 2, figsize=(9, 3.2 * len(generators)), squeeze=False)
    for row, generator in enumerate(generators):
        part = table[table["generator"] == generator]
        mean = part.groupby(["objective", "revealed_pairs"])[["found", "error"]].mean()
        for objective, curve in mean.reset_index().groupby("objective"):
            style = {"color": "black", "linestyle": "--"} if objective == "random" else {}
            for col, name in enumerate(("found", "error")):
                axes[row, col].plot(
                    curve["revealed_pairs"], curve[name], marker="o", label=objective, **style
                )
        n = part["screen"].nunique()
        axes[row, 0].set_ylabel(f"{generator} ({n} screens)\nstrong interactions found")
        axes[row, 1].set_ylabel("mse_de on unrevealed pairs")
    for col in range(2):
        axes[-1, col].set_xlabel("pairs revealed by the objective")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Retrospective design (mean over screens; random: mean of its draws)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def _summary(table: pd.DataFrame, rounds: int) -> pd.DataFrame:
    """Mean over screens after the last round, with random as the mean of its draws."""
    last = table[table["round"] == rounds].copy()
    last["objective"] = last["objective"].str.replace(r"^random \d+$", "random", regex=True)
    per_screen = last.groupby(["screen", "objective"])[
        ["found", "planted_revealed", "strong_total", "error"]
    ].mean()
    random = per_screen.xs("random", level="objective")
    out = per_screen.copy()
    out["found_x_random"] = (
        out["found"] / random["found"].reindex(out.index.get_level_values("screen")).to_numpy()
    )
    out["error_vs_random"] = (
        out["error"] / random["error"].reindex(out.index.get_level_values("screen")).to_numpy()
    )
    if rounds == 1:
        first = table[(table["round"] == 0)].groupby("screen")["random_expected_next"].first()
        out["random_expected"] = first.reindex(out.index.get_level_values("screen")).to_numpy()
    return out


def _overall(summary: pd.DataFrame) -> pd.DataFrame:
    """Means over the screens of each generator; x random is the ratio of the means."""
    frame = summary.reset_index()
    frame["generator"] = frame["screen"].str.split(" seed").str[0]
    mean = frame.groupby(["generator", "objective"])[
        ["found", "planted_revealed", "strong_total", "error"]
        + (["random_expected"] if "random_expected" in frame else [])
    ].mean()
    random = mean.xs("random", level="objective")
    gen = mean.index.get_level_values("generator")
    mean["found_x_random"] = mean["found"] / random["found"].reindex(gen).to_numpy()
    if "random_expected" in mean:
        mean["found_x_expected"] = mean["found"] / mean["random_expected"]
    mean["error_vs_random"] = mean["error"] / random["error"].reindex(gen).to_numpy() - 1
    return mean


def main(argv=None) -> None:
    args = _parse_args(argv)
    if args.from_csv:
        table = pd.concat([pd.read_csv(path) for path in args.from_csv], ignore_index=True)
        _report(table, int(table["round"].max()), args.figure)
        return
    prepare_run(args.threads)
    screens = []
    for seed in args.screens:
        adata, truth = _simulated(seed, args)
        screens.append((f"simulate_screen seed {seed}", adata, truth))
    for seed in args.sparse:
        adata, truth = _sparse(seed, args)
        label = "sparse" if args.hub_genes == 0 else f"sparse, {args.hub_genes} hubs"
        screens.append((f"{label} seed {seed}", adata, truth))
    if args.norman:
        if Path(args.data).exists():
            adata, truth = _norman(args)
            screens.append(("Norman subset seed 0", adata, truth))
        else:
            print(f"Norman subset not found at {args.data}: skipped")
    tables = [_run_screen(name, adata, truth, args) for name, adata, truth in screens]
    table = pd.concat(tables, ignore_index=True)
    if args.out is not None:
        table.to_csv(args.out, index=False)
    _report(table, args.rounds, args.figure)


def _report(table: pd.DataFrame, rounds: int, figure: Path | None) -> None:
    summary = _summary(table, rounds)
    pd.set_option("display.width", 200)
    print("\nAfter the last round (found = strong interactions among the revealed pairs):")
    print(summary.round(4).to_string())
    print("\nMean over screens (x random: ratio of the means; error vs random: relative):")
    print(_overall(summary).round(3).to_string())
    if figure is not None:
        _figure(table, figure)
        print(f"figure: {figure}")


if __name__ == "__main__":
    main()

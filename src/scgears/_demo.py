"""The demo job behind ``scgears demo``: every step of scgears on a simulated screen, offline.

It simulates a screen with planted genetic interactions, preprocesses it, trains GEARS, predicts
the held-out conditions beside the baselines, predicts the genetic-interaction map of the screen's
genes and writes the tables, profiles and figures to a folder. :func:`run_demo` is the Python
entry point; ``scgears demo --out DIR`` (``scgears._cli``) adds logging and prints the summary.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from ._conditions import condition_genes
from ._constants import CONDITION_KEY, CONTROL, SPLIT_KEY
from .tl._precision import PRECISION_RULES, _ranking

logger = logging.getLogger(__name__)

#: Simulated screens: the default demo and the small one of ``small=True`` (tests, CI).
SCREEN_SIZES = {
    "default": {
        "n_genes": 1000,
        "n_perturbed_genes": 40,
        "n_doubles": 60,
        "n_cells_per_condition": 50,
    },
    "small": {
        "n_genes": 200,
        "n_perturbed_genes": 12,
        "n_doubles": 12,
        "n_cells_per_condition": 20,
    },
}
#: Training epochs of the default and the small demo.
EPOCHS = {"default": 10, "small": 2}
#: The baselines reported beside GEARS (see :func:`scgears.tl.baseline`).
BASELINES = ("control", "mean", "additive", "linear")
#: The five planted genetic-interaction subtypes (``uns["simulation"]["gi"]``).
GI_SUBTYPES = ("synergy", "suppression", "neomorphism", "redundancy", "epistasis")
#: Summary metrics: the paper's headline pair.
SUMMARY_METRICS = ("mse_de", "pearson_delta")

#: Files written by :func:`run_demo`, by role.
OUTPUT_FILES = {
    "prediction": "prediction.h5ad",
    "gi_profiles": "gi_map.h5ad",
    "gi_table": "gi_table.csv",
    "metrics": "metrics.csv",
    "summary": "summary.csv",
    "gi_recovery": "gi_recovery.csv",
    "timings": "timings.csv",
    "perturbation_plot": "perturbation.png",
    "metrics_plot": "metrics.png",
    "gi_map_plot": "gi_map.png",
    "uncertainty_plot": "uncertainty.png",
}


@dataclass
class DemoResult:
    """What :func:`run_demo` computed, besides the files it wrote."""

    summary: pd.DataFrame
    gi_recovery: pd.DataFrame
    timings: dict[str, float]
    files: dict[str, Path]


def run_demo(
    out: str | Path,
    *,
    seed: int = 0,
    max_epochs: int | None = None,
    small: bool = False,
    overwrite: bool = False,
    progress_bar: bool = True,
) -> pd.DataFrame:
    """Run scgears end to end on a simulated screen and write every result to ``out``.

    The steps, all offline:

    1. :func:`scgears.datasets.simulate_screen` (1,000 genes, 40 perturbed genes alone and in 60
       pairs, 50 cells per condition, planted genetic interactions), seeded by ``seed``.
    2. ``sg.pp``: register the conditions, rank DE genes, split the perturbations (GEARS'
       ``"simulation"`` split), build the co-expression and the GO perturbation graphs.
    3. Train :class:`scgears.model.GEARS` with the uncertainty head for ``max_epochs`` epochs.
    4. Predict the split's test conditions, score them with :func:`scgears.tl.evaluate` beside
       the baselines ``control``, ``mean``, ``linear`` and ``additive`` (the latter only on test
       conditions whose genes all have a training single: it is undefined elsewhere), and average
       per split subgroup with :func:`scgears.tl.summarize`.
    5. Predict every pair of the screen's perturbed genes
       (:func:`scgears.tl.predict_combinations`), score their genetic interactions
       (:func:`scgears.tl.genetic_interactions`) and check how many planted interactions the
       predicted scores rank first (see *GI recovery*).
    6. Write the files below and the four figures.

    Files in ``out``
        ``prediction.h5ad`` (GEARS' test predictions: profile AnnData with ``layers["delta"]``
        and ``layers["uncertainty"]``), ``gi_map.h5ad`` (predicted profiles of the panel's singles
        and pairs), ``gi_table.csv`` (GI scores and calls of every predicted pair, with
        ``measured``, ``split`` and ``planted`` columns), ``metrics.csv`` (one row per method and
        test condition), ``summary.csv`` (per method and subgroup), ``gi_recovery.csv``,
        ``timings.csv`` (seconds per step), and the figures ``perturbation.png`` (a test pair's
        top DE genes: measured cells, GEARS, baselines), ``metrics.png`` (``mse_de`` and
        ``pearson_delta`` per subgroup), ``gi_map.png`` and ``uncertainty.png``.

    GI recovery
        For each planted subtype with ``n`` planted pairs among the screen's measured pairs, the
        measured pairs are ranked by the subtype's score as :func:`scgears.tl.gi_precision` ranks
        them (``synergy`` highest ``mag``, ``suppression`` lowest ``mag``, ``neomorphism`` lowest
        ``corr_fit``, ``redundancy`` highest ``dcor``, ``epistasis`` lowest ``eq_contr``), and the
        table counts the planted pairs among the first ``n``: from GEARS' predicted profiles
        (``gears``), from the measured cells (``measured``, the reachable level), and the count
        expected by chance (``random``). ``planted_test`` and ``gears_test`` do the same among the
        test pairs only, which GEARS never saw.

    Parameters
    ----------
    out
        Folder for the results; created if needed. It must be empty unless ``overwrite``.
    seed
        Seed of the screen, the split and the training.
    max_epochs
        Training epochs; default 10 (2 with ``small``).
    small
        A much smaller screen (200 genes, 12 perturbed genes, 12 pairs, 20 cells per condition)
        and 2 epochs: seconds instead of minutes, for tests.
    overwrite
        Allow a non-empty ``out``; files of the same names are replaced, others are left alone.
    progress_bar
        Show the training and GI-map progress bars.

    Returns
    -------
    The summary, also in ``summary.csv``: :func:`~scgears.tl.summarize` of ``mse_de`` and
    ``pearson_delta`` per method and subgroup (with ``n_conditions``). The GI recovery is in
    ``gi_recovery.csv`` and the seconds per step in ``timings.csv``.

    Examples
    --------
    >>> from scgears._demo import run_demo
    >>> summary = run_demo("demo_out", small=True)  # doctest: +SKIP
    >>> summary.pivot(index="method", columns="subgroup", values="pearson_delta")  # doctest: +SKIP
    """
    return _run_demo(
        out,
        seed=seed,
        max_epochs=max_epochs,
        small=small,
        overwrite=overwrite,
        progress_bar=progress_bar,
    ).summary


def _run_demo(
    out: str | Path,
    *,
    seed: int,
    max_epochs: int | None,
    small: bool,
    overwrite: bool,
    progress_bar: bool,
) -> DemoResult:
    """:func:`run_demo`, returning everything the command line prints."""
    out = _check_out(out, overwrite)
    size = "small" if small else "default"
    epochs = EPOCHS[size] if max_epochs is None else int(max_epochs)
    if epochs < 1:
        raise ValueError(f"max_epochs must be at least 1, got {max_epochs}.")
    timings: dict[str, float] = {}

    import scgears as sg

    with _step("simulate screen", timings):
        adata = sg.datasets.simulate_screen(**SCREEN_SIZES[size], seed=seed)
    with _step("preprocess", timings):
        _preprocess(sg, adata, seed)
    with _step("train GEARS", timings):
        model = _train(sg, adata, epochs, seed, progress_bar)
    test = [str(c) for c in adata.uns[SPLIT_KEY]["conditions"]["test"]]
    with _step("predict test conditions", timings):
        prediction = model.predict(test)
    with _step("baselines and evaluation", timings):
        baselines = _baselines(sg, adata, test)
        metrics = _evaluate(sg, adata, prediction, baselines)
        summary = sg.tl.summarize(metrics, metrics=list(SUMMARY_METRICS))
    with _step("GI map", timings):
        panel = _perturbed_genes(adata)
        gi_profiles = sg.tl.predict_combinations(model, panel, progress_bar=progress_bar)
        # few replicates: every replicate re-scores every pair of the panel (calls, confidence)
        gi_table = sg.tl.genetic_interactions(gi_profiles, n_bootstrap=20, seed=seed)
        measured_gi = sg.tl.genetic_interactions(adata, key_added=None, n_bootstrap=50, seed=seed)
        planted = adata.uns["simulation"]["gi"]
        gi_table = _annotate_pairs(gi_table, adata, planted)
        recovery = planted_recovery(gi_table, measured_gi, planted, test)
    with _step("write tables and profiles", timings):
        files = _write_tables(out, prediction, gi_profiles, gi_table, metrics, summary, recovery)
    with _step("figures", timings):
        files.update(
            _figures(sg, out, adata, prediction, baselines, metrics, gi_table, test, planted)
        )
    files["timings"] = out / OUTPUT_FILES["timings"]
    pd.Series(timings, name="seconds").rename_axis("step").to_csv(files["timings"])
    logger.info("Demo finished in %.1f s; results in %s", sum(timings.values()), out)
    return DemoResult(summary=summary, gi_recovery=recovery, timings=timings, files=files)


# --------------------------------------------------------------------------------------------
# steps


@contextmanager
def _step(name: str, timings: dict[str, float]) -> Iterator[None]:
    logger.info("%s ...", name)
    start = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - start
    logger.info("%s: done in %.1f s", name, timings[name])


def _check_out(out: str | Path, overwrite: bool) -> Path:
    """Create ``out``, refusing a non-empty folder unless ``overwrite`` (before any work).

    Every refusal is an :class:`OSError` whose message names the folder and the fix: a file in
    its place or above it, a folder that cannot be created or written to, or one not empty.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"--out {str(path)!r} exists and is not a folder: choose another.")
    above = next((p for p in path.absolute().parents if p.exists()), None)
    if not path.exists() and above is not None and not above.is_dir():
        raise NotADirectoryError(
            f"--out {str(path)!r} cannot be created: {str(above)!r} is a file, not a folder. "
            "Choose an output folder elsewhere."
        )
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(
            f"Output folder {str(path)!r} exists and is not empty: choose a new folder, or pass "
            "--overwrite (overwrite=True) to replace the demo's files in it."
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PermissionError(
            f"--out {str(path)!r} cannot be created ({error.strerror or error}). Choose an output "
            "folder you can write to."
        ) from error
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(
            f"--out {str(path)!r} is not writable: the demo could not save its results there. "
            "Choose an output folder you can write to."
        )
    return path


def _preprocess(sg, adata: AnnData, seed: int) -> None:
    sg.pp.register_perturbations(adata, "perturbation_name", control="control")
    sg.pp.rank_perturbation_genes(adata)
    sg.pp.split_perturbations(adata, kind="simulation", seed=seed)
    sg.pp.coexpression_graph(adata)
    sg.pp.perturbation_graph(adata)


def _train(sg, adata: AnnData, epochs: int, seed: int, progress_bar: bool):
    import torch

    sg.model.GEARS.setup_anndata(adata)
    # seeded weights, so the same seed gives the same numbers; the caller's RNG is restored
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = sg.model.GEARS(adata, uncertainty=True)
        logger.info("%s", model)
        model.train(
            max_epochs=epochs,
            seed=seed,
            enable_progress_bar=progress_bar,
        )
    return model


def _baselines(sg, adata: AnnData, test: list[str]) -> dict[str, AnnData]:
    """Every baseline on the test conditions; ``additive`` only where it is defined."""
    trained = _training_singles(adata)
    baselines = {}
    for kind in BASELINES:
        conditions = test
        if kind == "additive":
            conditions = [c for c in test if set(condition_genes(c)) <= trained]
            if not conditions:
                logger.info("additive baseline skipped: no test condition has all its singles.")
                continue
            logger.info(
                "additive baseline on the %d of %d test conditions whose singles were trained.",
                len(conditions),
                len(test),
            )
        baselines[kind] = sg.tl.baseline(adata, kind, conditions=conditions)
    return baselines


def _training_singles(adata: AnnData) -> set[str]:
    conditions = adata.uns[SPLIT_KEY]["conditions"]
    labels = [str(c) for part in ("train", "val") for c in conditions[part]]
    return {c for c in labels if c != CONTROL and len(condition_genes(c)) == 1}


def _evaluate(sg, adata, prediction, baselines) -> pd.DataFrame:
    """GEARS and the baselines; each method on the conditions it predicts."""
    methods = {"GEARS": prediction, **baselines}
    tables = [
        sg.tl.evaluate(adata, {name: profiles}, conditions=list(profiles.obs_names))
        for name, profiles in methods.items()
    ]
    return pd.concat(tables, ignore_index=True)


def _perturbed_genes(adata: AnnData) -> list[str]:
    """The screen's genes perturbed alone, sorted: the GI-map panel."""
    labels = adata.obs[CONDITION_KEY].astype(str).unique()
    return sorted(c for c in labels if c != CONTROL and len(condition_genes(c)) == 1)


def _annotate_pairs(gi: pd.DataFrame, adata: AnnData, planted: pd.DataFrame) -> pd.DataFrame:
    """Add whether each pair was measured, its split set and its planted subtype."""
    split = adata.obs.groupby(CONDITION_KEY, observed=True)["scgears_split"].first().astype(str)
    gi = gi.copy()
    gi["measured"] = gi.index.isin(split.index)
    gi["split"] = [split.get(p, "") for p in gi.index]
    gi["planted"] = [planted["subtype"].get(p, "") for p in gi.index]
    return gi


def planted_recovery(
    predicted_gi: pd.DataFrame,
    measured_gi: pd.DataFrame,
    planted: pd.DataFrame,
    test: list[str],
) -> pd.DataFrame:
    """Planted interactions ranked first by each table's scores (see :func:`run_demo`).

    Parameters
    ----------
    predicted_gi, measured_gi
        Tables of :func:`scgears.tl.genetic_interactions`, indexed by pair.
    planted
        ``uns["simulation"]["gi"]``: the screen's pairs with their planted ``subtype``.
    test
        The split's test conditions.

    Returns
    -------
    One row per subtype: ``subtype``, ``score``, ``planted``, ``gears``, ``measured``,
    ``random``, ``planted_test`` and ``gears_test``.

    Examples
    --------
    >>> import pandas as pd
    >>> planted = pd.DataFrame({"subtype": ["synergy", "additive"]}, index=["A+B", "A+C"])
    >>> gi = pd.DataFrame({"mag": [2.0, 1.0], "dcor": 0.9, "corr_fit": 0.9, "eq_contr": 0.5},
    ...                   index=["A+B", "A+C"])
    >>> table = planted_recovery(gi, gi, planted, ["A+B"])
    >>> table.set_index("subtype").loc["synergy", ["planted", "gears", "gears_test"]].tolist()
    [1, 1, 1]
    """
    pairs = planted.index.intersection(predicted_gi.index).intersection(measured_gi.index)
    test_pairs = pairs.intersection(pd.Index(test))
    rows = []
    for subtype in GI_SUBTYPES:
        score = PRECISION_RULES[subtype][0]
        is_planted = planted.loc[pairs, "subtype"].to_numpy() == subtype
        in_test = planted.loc[test_pairs, "subtype"].to_numpy() == subtype
        n, n_test = int(is_planted.sum()), int(in_test.sum())
        rows.append(
            {
                "subtype": subtype,
                "score": score,
                "planted": n,
                "gears": _top_hits(predicted_gi.loc[pairs, score], is_planted, subtype, n),
                "measured": _top_hits(measured_gi.loc[pairs, score], is_planted, subtype, n),
                "random": n * n / len(pairs) if len(pairs) else 0.0,
                "planted_test": n_test,
                "gears_test": _top_hits(
                    predicted_gi.loc[test_pairs, score], in_test, subtype, n_test
                ),
            }
        )
    return pd.DataFrame(rows)


def _top_hits(scores: pd.Series, is_planted: np.ndarray, subtype: str, n: int) -> int:
    """Planted pairs among the ``n`` pairs ranked first for ``subtype`` (NaN scores last)."""
    if n == 0:
        return 0
    values = scores.to_numpy(dtype=float)
    valid = ~np.isnan(values)
    order = _ranking(values[valid], scores.index.to_numpy()[valid], subtype)
    return int(is_planted[valid][order[:n]].sum())


# --------------------------------------------------------------------------------------------
# output


def _write_tables(out, prediction, gi_profiles, gi_table, metrics, summary, recovery):
    files = {role: out / name for role, name in OUTPUT_FILES.items()}
    prediction.write_h5ad(files["prediction"])
    gi_profiles.write_h5ad(files["gi_profiles"])
    gi_table.to_csv(files["gi_table"])
    metrics.to_csv(files["metrics"], index=False)
    summary.to_csv(files["summary"], index=False)
    recovery.to_csv(files["gi_recovery"], index=False)
    return {k: v for k, v in files.items() if not k.endswith("_plot") and k != "timings"}


def _figures(sg, out, adata, prediction, baselines, metrics, gi_table, test, planted):
    import matplotlib.pyplot as plt

    files = {role: out / name for role, name in OUTPUT_FILES.items() if role.endswith("_plot")}
    pair = _showcase_pair(test, planted, baselines)
    shown = {k: v for k, v in baselines.items() if pair in v.obs_names and k != "control"}
    drawn = [
        sg.pl.perturbation(
            adata, prediction, pair, baselines=shown, show=False, save=files["perturbation_plot"]
        ),
        sg.pl.metrics(
            metrics, metric=list(SUMMARY_METRICS), show=False, save=files["metrics_plot"]
        ),
        # a fixed scale (magnitude 0 to 2): one extreme pair would otherwise wash out the map
        sg.pl.gi_map(gi_table, vmax=1.0, show=False, save=files["gi_map_plot"]),
        sg.pl.uncertainty(adata, prediction, show=False, save=files["uncertainty_plot"]),
    ]
    for axes in drawn:
        first = next(iter(axes.values())) if isinstance(axes, dict) else axes
        plt.close(first.figure)
    return files


def _showcase_pair(test: list[str], planted: pd.DataFrame, baselines: dict) -> str:
    """A test pair to plot: one with a planted interaction and an additive baseline if any."""
    pairs = [c for c in test if len(condition_genes(c)) == 2]
    if not pairs:
        return test[0]
    additive = baselines.get("additive")

    def rank(pair: str) -> tuple[int, int]:
        interacting = planted["subtype"].get(pair, "additive") != "additive"
        has_additive = additive is not None and pair in additive.obs_names
        return (-int(interacting), -int(has_additive))

    return min(pairs, key=rank)

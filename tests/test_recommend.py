"""Experiment design: sg.tl.recommend and sg.pl.recommend."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

import scgears as sg
from scgears._conditions import condition_genes

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def model(prepared_screen):
    adata = prepared_screen(
        n_genes=150, n_perturbed_genes=10, n_doubles=10, n_cells_per_condition=20, seed=5
    )
    sg.model.GEARS.setup_anndata(adata)
    torch.manual_seed(0)
    trained = sg.model.GEARS(adata, n_hidden=16)
    trained.train(max_epochs=2, min_steps_per_epoch=5, enable_progress_bar=False)
    return trained


def _measured(model):
    return set(model.adata.obs["scgears_condition"].astype(str))


def test_default_candidates_are_unmeasured_singles_and_pairs(model):
    table = sg.tl.recommend(model, budget=5)
    measured = _measured(model)
    assert len(table) == 5
    assert table["rank"].tolist() == [1, 2, 3, 4, 5]
    assert not set(table.index) & measured
    assert all(1 <= n <= 2 for n in table["n_perturbed_genes"])
    screen_genes = {g for c in measured if c != "ctrl" for g in condition_genes(c)}
    assert all(set(genes) <= screen_genes for genes in table["genes"])
    # written to the model's AnnData, genes joined for h5ad
    stored = model.adata.uns["scgears_recommend"]
    assert list(stored.index) == list(table.index)
    assert stored["genes"].iloc[0] == "+".join(table["genes"].iloc[0])


def test_interactions_score_is_the_product_of_its_factors(model):
    genes = sorted({g for c in _measured(model) if c != "ctrl" for g in condition_genes(c)})
    pairs = [f"{genes[0]}+{genes[1]}", f"{genes[2]}+{genes[3]}", genes[4]]
    table = sg.tl.recommend(model, pairs, budget=3, objective="interactions")
    pred = model.predict([*pairs[:2], *genes[:4]])
    delta = pd.DataFrame(pred.layers["delta"], index=pred.obs_names)
    for pair in pairs[:2]:
        a, b = condition_genes(pair)
        expected = np.linalg.norm(delta.loc[pair] - delta.loc[a] - delta.loc[b])
        assert table.loc[pair, "predicted_nonadditivity"] == pytest.approx(expected, rel=1e-4)
        assert 0 <= table.loc[pair, "detectability"] <= 1
        assert table.loc[pair, "hub_propensity"] > 0
        product = table.loc[pair, ["predicted_nonadditivity", "detectability", "hub_propensity"]]
        assert table.loc[pair, "interactions"] == pytest.approx(np.prod(product), rel=1e-9)
    # a single has no interaction: it comes last
    assert table.index[-1] == genes[4]
    assert table.loc[genes[4], "interactions"] == 0
    assert table["interactions"].is_monotonic_decreasing


def test_coverage_picks_are_spread_out(model):
    table = sg.tl.recommend(model, budget=6, objective="coverage")
    # greedy max-min: each pick's distance to what was measured or picked before never grows
    assert table["coverage"].is_monotonic_decreasing
    assert len(set(table.index)) == 6


def test_mixed_objective_and_reproducibility(model):
    weights = {"interactions": 1.0, "coverage": 1.0}
    first = sg.tl.recommend(model, budget=4, objective=weights, random_state=3)
    second = sg.tl.recommend(model, budget=4, objective=weights, random_state=3)
    pd.testing.assert_frame_equal(first, second)
    assert {"interactions", "coverage", "score"} <= set(first.columns)


def test_exclude_and_budget_larger_than_pool(model):
    genes = sorted({g for c in _measured(model) if c != "ctrl" for g in condition_genes(c)})
    pool = [f"{genes[0]}+{genes[1]}", f"{genes[0]}+{genes[2]}"]
    table = sg.tl.recommend(model, pool, budget=10, exclude=[pool[0]])
    assert list(table.index) == [pool[1]]


def test_uncertainty_objective_needs_uncertainty(model):
    with pytest.raises(ValueError, match="uncertainty=True"):
        sg.tl.recommend(model, budget=2, objective="uncertainty")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"objective": "novelty"}, ValueError, "Unknown objective"),
        ({"objective": {"coverage": -1}}, ValueError, "non-negative"),
        ({"budget": 0}, ValueError, "budget must be a positive integer"),
        ({"candidates": ["NOTAGENE+TP53"]}, ValueError, "cannot predict"),
    ],
)
def test_bad_arguments(model, kwargs, error, match):
    with pytest.raises(error, match=match):
        sg.tl.recommend(model, **kwargs)


def test_plot_recommend(model, tmp_path):
    sg.tl.recommend(model, budget=4, objective="coverage")
    ax = sg.pl.recommend(model, show=False, save=tmp_path / "rec.png")
    assert (tmp_path / "rec.png").stat().st_size > 0
    assert "4 recommended" in ax.get_title()


def test_ensemble_recommends_by_uncertainty(model):
    ensemble = sg.model.GEARSEnsemble(model.adata, n_models=2, n_hidden=16)
    ensemble.train(max_epochs=1, min_steps_per_epoch=3, enable_progress_bar=False)
    table = sg.tl.recommend(ensemble, budget=3, objective="uncertainty")
    pred = ensemble.predict(list(table.index))
    expected = pred.obs["uncertainty"].reindex(table.index).to_numpy()
    # float32 sums over a different batch of conditions: not bit-identical
    np.testing.assert_allclose(table["uncertainty"].to_numpy(), expected, rtol=1e-3)
    assert table["uncertainty"].is_monotonic_decreasing
    mixed = sg.tl.recommend(ensemble, budget=2, objective={"interactions": 1, "uncertainty": 1})
    assert {"interactions", "uncertainty", "detectability"} <= set(mixed.columns)
    ax = sg.pl.recommend(ensemble, show=False)
    assert "2 recommended" in ax.get_title()

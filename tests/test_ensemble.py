"""GEARSEnsemble: members' mean, their spread per gene and per condition, NaN for one member."""

from __future__ import annotations

import numpy as np
import pytest

import scgears as sg
from scgears.model import GEARS, GEARSEnsemble


@pytest.fixture(scope="module")
def screen():
    adata = sg.datasets.simulate_screen(
        n_genes=80, n_perturbed_genes=10, n_doubles=10, n_cells_per_condition=15, seed=4
    )
    sg.pp.register_perturbations(adata, "perturbation_name")
    sg.pp.rank_perturbation_genes(adata)
    sg.pp.split_perturbations(adata, kind="simulation", seed=1)
    sg.pp.coexpression_graph(adata)
    sg.pp.perturbation_graph(adata, all_genes=False)
    GEARS.setup_anndata(adata)
    return adata


@pytest.fixture(scope="module")
def ensemble(screen):
    ensemble = GEARSEnsemble(screen, n_models=3, n_hidden=8)
    ensemble.train(max_epochs=1, min_steps_per_epoch=3, enable_progress_bar=False)
    return ensemble


def _test(adata):
    return list(adata.uns["scgears_split"]["conditions"]["test"])


def test_prediction_is_the_members_mean_and_spread(ensemble, screen):
    test = _test(screen)
    pred = ensemble.predict(test)
    members = np.stack([m.predict(test).X for m in ensemble.models])
    np.testing.assert_allclose(pred.X, members.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        pred.layers["uncertainty"], members.std(0, ddof=1), rtol=1e-4, atol=1e-6
    )
    expressed = ensemble.models[0].module.expressed_genes.numpy()
    np.testing.assert_allclose(
        pred.obs["uncertainty"], pred.layers["uncertainty"][:, expressed].mean(1), rtol=1e-5
    )
    # members really differ (own seeds), the mean is a valid profile, subgroups are kept
    assert (pred.obs["uncertainty"] > 0).all()
    assert (pred.X >= 0).all()
    control = pred.var["control_mean"].to_numpy()
    np.testing.assert_allclose(pred.layers["delta"], pred.X - control, atol=1e-6)
    assert list(pred.obs["subgroup"]) == list(ensemble.models[0].predict(test).obs["subgroup"])
    assert pred.uns["scgears_profile"]["n_models"] == 3


def test_control_has_no_spread(ensemble):
    pred = ensemble.predict(["ctrl"])
    np.testing.assert_array_equal(pred.layers["delta"], 0.0)
    np.testing.assert_array_equal(pred.layers["uncertainty"], 0.0)


def test_one_member_has_nan_uncertainty(screen):
    single = GEARSEnsemble(screen, n_models=1, n_hidden=8)
    single.train(max_epochs=1, min_steps_per_epoch=2, enable_progress_bar=False)
    pred = single.predict(_test(screen)[:2])
    assert np.isnan(pred.layers["uncertainty"]).all()
    assert pred.obs["uncertainty"].isna().all()


@pytest.mark.parametrize("n_models", [0, -1, 2.5, "3"])
def test_bad_number_of_members(screen, n_models):
    with pytest.raises(ValueError, match="n_models must be a positive integer"):
        GEARSEnsemble(screen, n_models=n_models)


def test_save_and_load(ensemble, screen, tmp_path):
    ensemble.save(tmp_path / "ens")
    loaded = GEARSEnsemble.load(tmp_path / "ens", adata=screen)
    assert loaded.n_models == 3
    test = _test(screen)
    np.testing.assert_allclose(loaded.predict(test).X, ensemble.predict(test).X, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="No ensemble members"):
        GEARSEnsemble.load(tmp_path / "empty")

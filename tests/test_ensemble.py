"""GEARSEnsemble: members' mean, their spread per gene and per condition, NaN for one member."""

from __future__ import annotations

import numpy as np
import pytest

from scgears.model import GEARS, GEARSEnsemble


@pytest.fixture(scope="module")
def screen(prepared_screen):
    adata = prepared_screen(
        n_genes=80,
        n_perturbed_genes=10,
        n_doubles=10,
        n_cells_per_condition=15,
        seed=4,
        all_genes=False,
    )
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
    expressed = ensemble.models[0].module.expressed_genes.numpy()
    prior = ensemble.prior_noise.variance(test) * expressed
    np.testing.assert_allclose(
        pred.layers["uncertainty"] ** 2, members.var(0, ddof=1) + prior, rtol=1e-3, atol=1e-8
    )
    np.testing.assert_allclose(
        pred.obs["uncertainty"], pred.layers["uncertainty"][:, expressed].mean(1), rtol=1e-5
    )
    # members that nearly agree have spreads near 1e-6, where float32 rounding alone moves the
    # last digits: an absolute tolerance far below any spread that matters
    np.testing.assert_allclose(
        pred.obs["uncertainty_members"],
        members.std(0, ddof=1)[:, expressed].mean(1),
        rtol=1e-3,
        atol=1e-8,
    )
    # members really differ (own seeds), the mean is a valid profile, subgroups are kept
    assert (pred.obs["uncertainty"] > 0).all()
    assert (pred.X >= 0).all()
    control = pred.var["control_mean"].to_numpy()
    np.testing.assert_allclose(pred.layers["delta"], pred.X - control, atol=1e-6)
    assert list(pred.obs["subgroup"]) == list(ensemble.models[0].predict(test).obs["subgroup"])
    assert pred.uns["scgears_profile"]["n_models"] == 3


def test_prior_noise_is_what_the_measurements_leave_open(ensemble, screen):
    """Measured single: its mean's sampling variance; unmeasured: the singles' spread; pairs add
    the training pairs' departure from additivity, net of sampling noise."""
    from scgears._conditions import condition_genes

    noise = ensemble.prior_noise
    seen = list(noise.genes)
    conditions = screen.obs["scgears_condition"].astype(str).to_numpy()
    x = np.asarray(screen.X.toarray() if hasattr(screen.X, "toarray") else screen.X)
    gene = seen[0]
    cells = x[conditions == gene]
    control = x[conditions == "ctrl"]
    expected = cells.var(0, ddof=1) / len(cells) + control.var(0, ddof=1) / len(control)
    np.testing.assert_allclose(noise.variance([gene])[0], expected, rtol=1e-3, atol=1e-9)
    effects = np.stack([x[conditions == g].mean(0) - control.mean(0) for g in seen])
    unseen = [g for g in screen.uns["scgears_split"]["subgroups"]["unseen_single"]]
    np.testing.assert_allclose(
        noise.variance(unseen[:1])[0], effects.var(0, ddof=1), rtol=1e-3, atol=1e-9
    )
    pair = f"{seen[0]}+{seen[1]}"
    np.testing.assert_allclose(
        noise.variance([pair])[0],
        noise.single_noise[0] + noise.single_noise[1] + noise.interaction,
        rtol=1e-6,
    )
    assert (noise.interaction >= 0).all()
    # what was never measured is less certain than what was
    assert noise.variance(unseen[:1]).mean() > noise.variance([gene]).mean()
    assert noise.variance(["ctrl"]).max() == 0
    assert list(condition_genes(pair)) == [seen[0], seen[1]]


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
    """The members and the prior's noise come back; predictions are identical."""
    ensemble.save(tmp_path / "ens")
    loaded = GEARSEnsemble.load(tmp_path / "ens", adata=screen)
    assert loaded.n_models == 3
    test = _test(screen)
    before, after = ensemble.predict(test), loaded.predict(test)
    np.testing.assert_allclose(after.X, before.X, atol=1e-6)
    np.testing.assert_allclose(after.layers["uncertainty"], before.layers["uncertainty"], atol=1e-6)
    # the prior's noise is saved beside the members and read back
    assert (tmp_path / "ens" / "prior_noise.npz").is_file()
    np.testing.assert_array_equal(loaded.prior_noise.interaction, ensemble.prior_noise.interaction)
    with pytest.raises(FileNotFoundError, match="No ensemble members"):
        GEARSEnsemble.load(tmp_path / "empty")

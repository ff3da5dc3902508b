"""What was measured as the model's start, valid profiles, the control's prediction, subgroups."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import scgears as sg
from scgears._conditions import condition_genes
from scgears.model import GEARS


def _prepared(adata):
    sg.pp.register_perturbations(adata, "perturbation_name")
    sg.pp.rank_perturbation_genes(adata)
    sg.pp.split_perturbations(adata, kind="simulation", seed=2)
    sg.pp.coexpression_graph(adata)
    sg.pp.perturbation_graph(adata, all_genes=False)
    return adata


@pytest.fixture(scope="module")
def screen():
    adata = sg.datasets.simulate_screen(
        n_genes=120, n_perturbed_genes=12, n_doubles=14, n_cells_per_condition=20, seed=5
    )
    # a gene no cell expresses must be predicted exactly zero
    x = adata.X.tocsc(copy=True)
    x.data[x.indptr[7] : x.indptr[8]] = 0
    x.eliminate_zeros()
    adata.X = x.tocsr()
    return _prepared(adata)


@pytest.fixture(scope="module")
def trained(screen):
    adata = screen.copy()
    GEARS.setup_anndata(adata)
    torch.manual_seed(0)
    model = GEARS(adata, n_hidden=16)
    model.train(max_epochs=2, min_steps_per_epoch=4, enable_progress_bar=False)
    return model


def _test(adata):
    return list(adata.uns["scgears_split"]["conditions"]["test"])


def test_predictions_are_valid_profiles(trained, screen):
    pred = trained.predict(_test(screen))
    assert (pred.X >= 0).all()
    control = pred.var["control_mean"].to_numpy()
    np.testing.assert_allclose(pred.layers["delta"], pred.X - control[None, :], atol=1e-6)
    # the silent gene stays exactly zero, whatever the network says
    assert (pred.X[:, 7] == 0).all()
    assert (pred.layers["delta"][:, 7] == 0).all()


@pytest.mark.parametrize("control", [["ctrl"], [[]], "ctrl"])
def test_control_is_predicted_as_the_control_mean(trained, control):
    pred = trained.predict(control)
    assert list(pred.obs_names) == ["ctrl"]
    np.testing.assert_array_equal(pred.layers["delta"], 0.0)
    np.testing.assert_allclose(pred.X[0], trained.module.control_mean.numpy(), atol=0)


def test_predictions_carry_the_split_subgroup(trained, screen):
    split = screen.uns["scgears_split"]
    test = _test(screen)
    train = [c for c in split["conditions"]["train"] if c != "ctrl"][:2]
    pred = trained.predict(test + train + ["ctrl"])
    expected = {c: g for g, members in split["subgroups"].items() for c in members}
    for c in test:
        assert pred.obs.loc[c, "subgroup"] == expected[c]
        assert pred.obs.loc[c, "split"] == "test"
    for c in train:
        assert pred.obs.loc[c, "subgroup"] == "train"
    assert pred.obs.loc["ctrl", "split"] == "train"


def test_prior_is_the_additive_expectation_of_measured_singles(trained, screen):
    """A pair of measured singles starts from the additive baseline, exactly."""
    module = trained.module
    seen = set(trained.graphs["seen_genes"])
    pairs = [c for c in _test(screen) if len(condition_genes(c)) == 2]
    measured_pairs = [c for c in pairs if all(g in seen for g in condition_genes(c))]
    assert measured_pairs, "the fixture's split must hold a combo_seen2 pair"
    additive = sg.tl.baseline(screen, "additive", conditions=measured_pairs)
    nodes = torch.from_numpy(trained._nodes(measured_pairs))
    module.eval()
    with torch.inference_mode():
        prior = module.prior(nodes, module._measured(nodes)).numpy()
    np.testing.assert_allclose(prior, additive.layers["delta"], atol=1e-5)


def test_unmeasured_gene_starts_from_the_mean_single_and_its_on_target_change(trained, screen):
    module = trained.module
    seen = set(trained.graphs["seen_genes"])
    genes = list(screen.var_names)
    unseen = [
        c
        for c in _test(screen)
        if len(condition_genes(c)) == 1 and condition_genes(c)[0] not in seen
    ]
    assert unseen
    condition = unseen[0]
    nodes = torch.from_numpy(trained._nodes([condition]))
    with torch.inference_mode():
        prior = module.prior(nodes, module._measured(nodes))[0].numpy()
    expected = module.single_mean_effect.numpy().copy()
    column = genes.index(condition)
    expected[column] += float(module.on_target_change)
    np.testing.assert_allclose(prior, expected, atol=1e-6)
    # the simulated screen is CRISPRa: a measured target goes up, and the model learnt that
    assert float(module.on_target_change) > 0.2
    # the typical change is the measured mean of the training targets' own change
    measured = sg.tl.measured_profiles if hasattr(sg.tl, "measured_profiles") else None
    if measured is None:
        from scgears._profiles import measured_profiles as measured
    trainval = [
        c
        for part in ("train", "val")
        for c in screen.uns["scgears_split"]["conditions"][part]
        if c != "ctrl"
    ]
    profiles = measured(screen, trainval)
    changes = [
        profiles.layers["delta"][i, genes.index(g)]
        for i, c in enumerate(trainval)
        for g in condition_genes(c)
        if g in genes
    ]
    assert float(module.on_target_change) == pytest.approx(np.mean(changes), abs=1e-5)


def test_paper_variant_has_no_prior(screen):
    adata = screen.copy()
    GEARS.setup_anndata(adata)
    model = GEARS(adata, n_hidden=16, variant="paper")
    assert not model.module.measured_prior
    assert not model.module.residual
    # the statistics are still there, the paper's network just does not start from them
    assert model.module.measured_effect.shape[0] == len(model.graphs["seen_genes"])

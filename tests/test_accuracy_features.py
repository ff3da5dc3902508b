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
    seen = set(trained.graphs.seen_genes)
    pairs = [c for c in _test(screen) if len(condition_genes(c)) == 2]
    measured_pairs = [c for c in pairs if all(g in seen for g in condition_genes(c))]
    assert measured_pairs, "the fixture's split must hold a combo_seen2 pair"
    additive = sg.tl.baseline(screen, "additive", conditions=measured_pairs)
    nodes = torch.from_numpy(trained.graphs.encode(measured_pairs))
    module.eval()
    with torch.inference_mode():
        prior = module.prior(nodes, module._measured(nodes)).numpy()
    np.testing.assert_allclose(prior, additive.layers["delta"], atol=1e-5)


def test_unmeasured_gene_starts_from_the_mean_single_and_its_on_target_change(trained, screen):
    module = trained.module
    seen = set(trained.graphs.seen_genes)
    genes = list(screen.var_names)
    unseen = [
        c
        for c in _test(screen)
        if len(condition_genes(c)) == 1 and condition_genes(c)[0] not in seen
    ]
    assert unseen
    condition = unseen[0]
    nodes = torch.from_numpy(trained.graphs.encode([condition]))
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
    assert model.module.measured_effect.shape[0] == len(model.graphs.seen_genes)


# -------------------------------------------------------------------------------------------------
# gene embeddings as knowledge


def _embedding_screen():
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(0)
    genes = ["G1", "G2", "NOVEL1", "M1", "M2"]
    labels = ["control"] * 3 + ["G1"] * 2 + ["NOVEL1"] * 2
    adata = ad.AnnData(
        rng.random((len(labels), len(genes))).astype(np.float32),
        obs=pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(len(labels))]),
        var=pd.DataFrame(index=genes),
    )
    sg.pp.register_perturbations(adata, "perturbation")
    return adata


def test_embedding_source_gives_a_gene_missing_from_go_its_neighbours():
    import pandas as pd

    adata = _embedding_screen()
    embedding = pd.DataFrame(
        {"d0": [1.0, 0.9, 0.95, 0.0, -1.0], "d1": [0.0, 0.1, 0.05, 1.0, 0.0]},
        index=["G1", "G2", "NOVEL1", "M1", "M2"],
    )
    sg.pp.perturbation_graph(adata, source=embedding, n_neighbors=2, all_genes=False)
    stored = adata.uns["scgears_perturbation_graph"]
    genes = list(stored["genes"])
    graph = stored["graph"].toarray()
    novel = genes.index("NOVEL1")
    # NOVEL1 has no GO annotation, but its two nearest genes by cosine pass it messages
    neighbours = {genes[j] for j in np.flatnonzero(graph[novel]) if j != novel}
    assert neighbours == {"G1", "G2"}
    cosine = (0.95 * 1.0 + 0.05 * 0.0) / np.hypot(0.95, 0.05)
    assert graph[novel, genes.index("G1")] == pytest.approx(cosine, rel=1e-5)
    assert "NOVEL1" not in set(stored["isolated"])
    assert "cosine" in stored["source"]
    # M2 points away from everyone: only similarities above the threshold become edges
    assert graph[genes.index("M2")].sum() == pytest.approx(1.0)


def test_embedding_source_errors_are_clear():
    import pandas as pd

    adata = _embedding_screen()
    with pytest.raises(ValueError, match=r"non-numeric columns.*set_index"):
        sg.pp.perturbation_graph(
            adata, source=pd.DataFrame({"gene": ["G1"], "d0": [1.0]}), all_genes=False
        )
    with pytest.raises(ValueError, match="duplicated genes"):
        sg.pp.perturbation_graph(
            adata, source=pd.DataFrame({"d0": [1.0, 2.0]}, index=["G1", "G1"]), all_genes=False
        )
    with pytest.raises(ValueError, match="non-finite values for genes \\['G2'\\]"):
        sg.pp.perturbation_graph(
            adata,
            source=pd.DataFrame({"d0": [1.0, np.nan]}, index=["G1", "G2"]),
            all_genes=False,
        )
    assert "scgears_perturbation_graph" not in adata.uns


def test_go_embedding_places_genes_sharing_terms_together():
    from scgears._gene_features import cosine_neighbors, go_embedding

    embedding = go_embedding(n_components=16)
    assert embedding.shape[1] == 16
    assert np.isfinite(embedding.to_numpy()).all()
    # deterministic, and a copy each time (the cache is not exposed)
    again = go_embedding(n_components=16)
    np.testing.assert_array_equal(embedding.to_numpy(), again.to_numpy())
    again.iloc[0, 0] = 99.0
    assert go_embedding(n_components=16).iloc[0, 0] != 99.0

    def cosine(a, b):
        x, y = embedding.loc[a].to_numpy(), embedding.loc[b].to_numpy()
        return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))

    # two haemoglobin subunits share most of their GO terms; a ribosomal protein does not
    assert cosine("HBA1", "HBB") > cosine("HBA1", "RPL3") + 0.3
    targets, sources, weights = cosine_neighbors(
        embedding, n_neighbors=2, threshold=0.1, genes=["HBA1", "HBB", "RPL3", "RPL4"]
    )
    assert sources[targets == "HBA1"][0] == "HBB"
    assert sources[targets == "RPL3"][0] == "RPL4"
    assert (weights > 0.1).all()


def test_prediction_shrinks_the_learned_correction_towards_the_prior(trained, screen):
    module = trained.module
    module.eval()
    nodes = torch.from_numpy(trained.graphs.encode(_test(screen)))
    with torch.inference_mode():
        prior = module.prior(nodes, module._measured(nodes))
        half = module.inference(nodes)["delta"] - prior
        module.correction_scale = 1.0
        try:
            full = module.inference(nodes)["delta"] - prior
        finally:
            module.correction_scale = 0.5
    assert float(full.abs().max()) > 0
    np.testing.assert_allclose(half.numpy(), 0.5 * full.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="correction_scale must be in"):
        type(module)(4, 3, _empty_edges(), _empty_edges(), correction_scale=2.0)


def _empty_edges():
    return torch.zeros((2, 0), dtype=torch.long), torch.zeros(0)

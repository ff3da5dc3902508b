"""GEARS in scvi-tools form: setup checks, training, prediction, embeddings, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import scgears as sg
from scgears._conditions import condition_genes

GEARS = sg.model.GEARS


@pytest.fixture(scope="module")
def screen(prepared_screen):
    return prepared_screen(
        n_genes=150,
        n_perturbed_genes=12,
        n_doubles=12,
        n_cells_per_condition=20,
        seed=3,
        graph_genes=["TP53"],
    )


@pytest.fixture(scope="module")
def trained(screen):
    adata = screen.copy()
    GEARS.setup_anndata(adata)
    torch.manual_seed(0)
    model = GEARS(adata)
    model.train(max_epochs=3, min_steps_per_epoch=5, enable_progress_bar=False)
    return model


# -------------------------------------------------------------------------------------------------
# setup


@pytest.mark.parametrize(
    ("remove", "function"),
    [
        ("condition", "register_perturbations"),
        ("split", "split_perturbations"),
        ("de", "rank_perturbation_genes"),
        ("coexpression", "coexpression_graph"),
        ("graph", "perturbation_graph"),
    ],
)
def test_setup_names_the_missing_pp_step(screen, remove, function):
    adata = screen.copy()
    if remove == "condition":
        del adata.obs["scgears_condition"]
    elif remove == "split":
        del adata.obs["scgears_split"]
    elif remove == "de":
        del adata.uns["scgears_de"]
    elif remove == "coexpression":
        del adata.varp["scgears_coexpression"]
    else:
        del adata.uns["scgears_perturbation_graph"]
    with pytest.raises((KeyError, ValueError), match=function):
        GEARS.setup_anndata(adata)


def test_repr_and_setup_view(screen, capsys):
    adata = screen.copy()
    GEARS.setup_anndata(adata)
    model = GEARS(adata, n_hidden=16)
    text = repr(model)
    assert "150 genes" in text
    assert "16 hidden" in text
    assert "not trained" in text
    model.view_anndata_setup()
    assert "scgears_condition" in capsys.readouterr().out


def test_training_genes_must_be_graph_nodes(screen):
    adata = screen.copy()
    graph = adata.uns["scgears_perturbation_graph"]
    keep = np.array([g != "TP53" and g not in _genes(adata) for g in graph["genes"]])
    graph["genes"] = graph["genes"][keep]
    graph["graph"] = graph["graph"][keep][:, keep]
    GEARS.setup_anndata(adata)
    with pytest.raises(ValueError, match="perturbation_graph"):
        GEARS(adata)


def _genes(adata):
    return {g for c in adata.obs["scgears_condition"].cat.categories for g in condition_genes(c)}


# -------------------------------------------------------------------------------------------------
# training


def test_history_and_kept_weights(trained):
    history = trained.history
    for key in ("train_loss", "validation_loss", "validation_mse_de", "validation_mse_de_control"):
        assert key in history
        assert len(history[key]) == 3
    kept = trained.kept_epoch_
    best = int(np.argmin(history["validation_mse_de"].to_numpy(dtype=float).ravel()))
    assert kept.best_epoch == best
    # keep="last" (default): not the best epoch's weights unless it was the last
    if kept.best_epoch != 2:
        state = trained.module.state_dict()
        assert not all(torch.equal(state[k], v) for k, v in kept.best_state.items())
    assert trained.is_trained


@pytest.mark.parametrize("keep", ["best", "last"])
def test_kept_weights_follow_keep(screen, keep):
    adata = screen.copy()
    GEARS.setup_anndata(adata)
    torch.manual_seed(0)
    model = GEARS(adata, n_hidden=16)
    raw = {}

    class RawWeights(__import__("lightning").pytorch.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            raw.update({k: v.clone() for k, v in pl_module.module.state_dict().items()})

    model.train(
        max_epochs=3,
        min_steps_per_epoch=3,
        keep=keep,
        enable_progress_bar=False,
        callbacks=[RawWeights()],
    )
    state = model.module.state_dict()
    expected = model.kept_epoch_.best_state if keep == "best" else raw
    for name, value in expected.items():
        if name != "perturbed_center":
            assert torch.equal(state[name], value), name


def test_training_options_are_checked(screen):
    adata = screen.copy()
    GEARS.setup_anndata(adata)
    model = GEARS(adata, n_hidden=16)
    with pytest.raises(ValueError, match="keep must be 'last' or 'best'"):
        model.train(max_epochs=1, keep="first")
    with pytest.raises(ValueError, match="statistics must be"):
        model.train(max_epochs=1, statistics="yes")
    paper = GEARS(adata, n_hidden=16, variant="paper")
    with pytest.raises(ValueError, match=r"exact only for the squared error \(gamma=0\)"):
        paper.train(max_epochs=1, statistics=True)


def test_training_is_reproducible(screen):
    # same torch seed at creation, same training seed: bit-identical weights on CPU
    states = []
    for _ in range(2):
        adata = screen.copy()
        GEARS.setup_anndata(adata)
        torch.manual_seed(0)
        model = GEARS(adata, n_hidden=16)
        model.train(max_epochs=2, min_steps_per_epoch=3, seed=5, enable_progress_bar=False)
        states.append(model.module.state_dict())
    for name, value in states[0].items():
        assert torch.equal(value, states[1][name]), name


def test_split_without_validation_is_refused(screen):
    adata = screen.copy()
    adata.obs["scgears_split"] = adata.obs["scgears_split"].replace("val", "train")
    GEARS.setup_anndata(adata)
    model = GEARS(adata, n_hidden=16)
    with pytest.raises(ValueError, match="no perturbed val condition"):
        model.train(max_epochs=1)


def test_train_size_cannot_be_set(trained):
    with pytest.raises(ValueError, match="split_perturbations"):
        trained.train(max_epochs=1, train_size=0.5)


# -------------------------------------------------------------------------------------------------
# prediction


def test_predict_profiles(trained, screen):
    singles = [c for c in screen.obs["scgears_condition"].cat.categories if "+" not in c]
    gene = singles[1]
    pred = trained.predict([[gene], "TP53", f"{gene}+TP53", ["TP53", gene, singles[2]]])
    assert list(pred.obs_names) == [
        gene,
        "TP53",
        "+".join(sorted([gene, "TP53"])),
        "+".join(sorted([gene, "TP53", singles[2]])),
    ]
    assert pred.shape == (4, screen.n_vars)
    assert list(pred.var_names) == list(screen.var_names)
    np.testing.assert_allclose(
        pred.X - pred.var["control_mean"].to_numpy(), pred.layers["delta"], atol=1e-6
    )
    assert pred.obs["n_perturbed_genes"].tolist() == [1, 1, 2, 3]
    # TP53 is an extra graph node never perturbed: predicted, and flagged
    assert pred.obs.loc["TP53", "n_seen_genes"] == 0
    assert pred.obs.loc["TP53", "unseen_genes"] == "TP53"
    assert np.isfinite(pred.X).all()


def test_predict_unknown_gene_says_how_to_fix(trained):
    with pytest.raises(ValueError, match=r"NOTAGENE.*perturbation_graph\(adata, genes="):
        trained.predict([["NOTAGENE"]])


def test_delta_does_not_depend_on_batch_company(trained, screen):
    conditions = list(screen.uns["scgears_split"]["conditions"]["test"])
    together = trained.predict(conditions, batch_size=64)
    alone = [trained.predict([c]).layers["delta"][0] for c in conditions[:3]]
    np.testing.assert_allclose(together.layers["delta"][:3], np.array(alone), atol=1e-5)


def test_uncertainty_layer(screen):
    adata = screen.copy()
    GEARS.setup_anndata(adata)
    model = GEARS(adata, n_hidden=16, uncertainty=True)
    model.train(max_epochs=1, min_steps_per_epoch=3, enable_progress_bar=False)
    pred = model.predict(list(adata.uns["scgears_split"]["conditions"]["test"]))
    assert "uncertainty" in pred.layers
    assert (pred.layers["uncertainty"] > 0).all()
    assert "gaussian_nll_train" in model.history


def test_embeddings(trained, screen):
    genes = trained.get_gene_embedding()
    assert isinstance(genes, pd.DataFrame)
    assert list(genes.index) == list(screen.var_names)
    assert genes.shape[1] == 64
    perturbations = trained.get_perturbation_embedding()
    assert "TP53" in perturbations.index
    assert perturbations.shape == (len(trained.perturbable_genes), 64)


# -------------------------------------------------------------------------------------------------
# save / load


def test_save_load_round_trip(trained, screen, tmp_path):
    conditions = [*screen.uns["scgears_split"]["conditions"]["test"], "TP53"]
    before = trained.predict(conditions)
    trained.save(tmp_path / "model", overwrite=True)

    loaded = GEARS.load(tmp_path / "model", adata=screen.copy())
    after = loaded.predict(conditions)
    np.testing.assert_array_equal(before.X, after.X)
    assert loaded.is_trained

    # another AnnData with the same genes: graphs and vocabularies come from the saved model
    other = sg.datasets.simulate_screen(
        n_genes=150, n_perturbed_genes=12, n_doubles=12, n_cells_per_condition=10, seed=3
    )
    sg.pp.register_perturbations(other, "perturbation_name")
    reloaded = GEARS.load(tmp_path / "model", adata=other)
    np.testing.assert_array_equal(before.X, reloaded.predict(conditions).X)
    assert "scgears_coexpression" not in other.varp  # nothing recomputed from data


# -------------------------------------------------------------------------------------------------
# data access


def test_backed_training_matches_in_memory(screen, tmp_path):
    path = tmp_path / "screen.h5ad"
    screen.write_h5ad(path)
    import anndata as ad

    results = []
    for backed in (None, "r"):
        adata = ad.read_h5ad(path, backed=backed)
        GEARS.setup_anndata(adata)
        torch.manual_seed(0)
        model = GEARS(adata, n_hidden=16)
        model.train(max_epochs=2, min_steps_per_epoch=3, enable_progress_bar=False)
        results.append(model.history["train_loss"].to_numpy(dtype=float).ravel())
        assert adata.isbacked == (backed == "r")
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4)


# -------------------------------------------------------------------------------------------------
# variants


def test_variants_set_the_module(screen):
    adata = screen.copy()
    GEARS.setup_anndata(adata)
    default = GEARS(adata, n_hidden=16)
    assert default.module.residual
    assert default.module.gamma == 0.0
    assert default.module.perturbation_dropout == 0.5
    assert "variant: scgears" in repr(default)
    paper = GEARS(adata, n_hidden=16, variant="paper")
    assert not paper.module.residual
    assert paper.module.gamma == 2.0
    assert paper.module.perturbation_dropout == 0.0
    mixed = GEARS(adata, n_hidden=16, variant="paper", residual=True)
    assert mixed.module.residual
    assert mixed.module.gamma == 2.0
    with pytest.raises(ValueError, match="variant"):
        GEARS(adata, variant="fast")


def test_residual_predictions_average_to_the_mean_effect(trained, screen):
    split = screen.uns["scgears_split"]["conditions"]
    train = [c for c in split["train"] if c != "ctrl"]
    module = trained.module
    module.eval()
    nodes = torch.from_numpy(trained.graphs.encode(train))
    with torch.inference_mode():
        delta = module.inference(nodes)["delta"]
        prior = module.prior(nodes, module._measured(nodes))
    mean_effect = module.mean_effect.numpy()
    # the network's outputs are centred on the training perturbations: on average, the
    # prediction is what was measured (the prior), here the training singles and their sums
    np.testing.assert_allclose((delta - prior).mean(0).numpy(), 0.0, atol=1e-4)
    # and the mean effect is the measured one of the train and val perturbations
    from scgears._profiles import measured_profiles

    trainval = [*train, *split["val"]]
    measured = measured_profiles(screen, trainval)
    np.testing.assert_allclose(measured.layers["delta"].mean(0), mean_effect, atol=1e-4)


def test_paper_variant_trains(screen):
    adata = screen.copy()
    GEARS.setup_anndata(adata)
    model = GEARS(adata, n_hidden=16, variant="paper")
    model.train(max_epochs=1, min_steps_per_epoch=3, enable_progress_bar=False)
    pred = model.predict(list(adata.uns["scgears_split"]["conditions"]["test"]))
    assert np.isfinite(pred.X).all()


def test_held_out_planted_effect_direction_is_predicted():
    adata = sg.datasets.simulate_screen(
        n_genes=200, n_perturbed_genes=16, n_doubles=16, n_cells_per_condition=40, seed=11
    )
    sg.pp.register_perturbations(adata, "perturbation_name")
    labels = list(adata.obs["scgears_condition"].cat.categories)
    singles = {c for c in labels if "+" not in c and c != "ctrl"}
    doubles = [c for c in labels if "+" in c and set(c.split("+")) <= singles]
    held_out = doubles[:3]
    sg.pp.rank_perturbation_genes(adata)
    sg.pp.split_perturbations(
        adata, kind="custom", test_conditions={"test": held_out, "val": doubles[3:5]}
    )
    sg.pp.coexpression_graph(adata)
    sg.pp.perturbation_graph(adata, all_genes=False)
    GEARS.setup_anndata(adata)
    torch.manual_seed(0)
    model = GEARS(adata)
    model.train(max_epochs=8, enable_progress_bar=False)
    pred = model.predict(held_out)
    control = adata[adata.obs["scgears_condition"] == "ctrl"].X.mean(axis=0)
    agree = []
    for condition in held_out:
        measured = adata[adata.obs["scgears_condition"] == condition].X.mean(axis=0) - control
        measured = np.asarray(measured).ravel()
        predicted = pred[condition].layers["delta"].ravel()
        strongest = np.argsort(-np.abs(measured))[:10]
        agree.append(np.sign(measured[strongest]) == np.sign(predicted[strongest]))
    # the planted changes of the held-out doubles (never seen as doubles) move the predicted way
    assert np.mean(agree) >= 0.8
    table = sg.tl.evaluate(adata, pred, conditions=held_out)
    assert table["pearson_delta_de"].mean() > 0.4


def test_ddp_on_two_cpu_processes(screen):
    # Lightning's own strategy: two processes each take half of every epoch's batches, gradients
    # are averaged, the validation metric is reduced over both, and rank 0's weights come back
    adata = screen.copy()
    GEARS.setup_anndata(adata)
    torch.manual_seed(0)
    model = GEARS(adata)
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    model.train(
        max_epochs=2,
        min_steps_per_epoch=4,
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        enable_progress_bar=False,
    )
    assert model.is_trained
    changed = [k for k, v in model.module.state_dict().items() if not torch.equal(v, before[k])]
    assert changed  # the trained weights reached the main process
    assert len(model.history["validation_mse_de"]) == 2
    pred = model.predict(list(adata.uns["scgears_split"]["conditions"]["test"]))
    assert np.isfinite(pred.layers["delta"]).all()


def test_real_norman_cells(norman):
    # the real Norman 2019 subset: train briefly, beat the no-change baseline on the held-out
    # conditions, and predict a three-gene perturbation no one measured
    sg.pp.register_perturbations(norman, "condition", control="control")
    sg.pp.rank_perturbation_genes(norman)
    sg.pp.split_perturbations(norman, kind="simulation", seed=1)
    sg.pp.coexpression_graph(norman)
    sg.pp.perturbation_graph(norman)
    GEARS.setup_anndata(norman)
    model = GEARS(norman)
    model.train(max_epochs=3, seed=1, enable_progress_bar=False)
    test = list(norman.uns["scgears_split"]["conditions"]["test"])
    control = sg.tl.baseline(norman, "control", conditions=test)
    table = sg.tl.evaluate(norman, {"GEARS": model.predict(test), "control": control})
    means = table.groupby("method")[["mse_de", "pearson_delta"]].mean()
    assert means.loc["GEARS", "mse_de"] < means.loc["control", "mse_de"]
    assert means.loc["GEARS", "pearson_delta"] > 0.2

    triple = model.predict([["KLF1", "MAP2K6", "CBL"]])
    assert triple.obs_names.tolist() == ["CBL+KLF1+MAP2K6"]
    assert triple.shape == (1, norman.n_vars)
    assert np.isfinite(triple.layers["delta"]).all()
    assert triple.obs["n_perturbed_genes"].tolist() == [3]


def test_predict_cells_for_cell_level_evaluators(trained):
    labels = [c for c in trained.adata.uns["scgears_split"]["conditions"]["test"]][:2]
    cells = trained.predict(labels, n_cells=7, seed=3)
    again = trained.predict(labels, n_cells=7, seed=3)
    counts = cells.obs["perturbation"].value_counts()
    assert all(counts[label] == 7 for label in labels)
    assert "control" in counts.index
    assert cells.X.min() >= 0
    np.testing.assert_array_equal(cells.X.toarray(), again.X.toarray())
    profile = trained.predict(labels)
    assert profile.n_obs == len(labels)  # without n_cells: one profile per condition

"""Training paths: sufficient statistics against cells, checkpoints and resumption."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import scgears as sg
from scgears.model._loaders import ConditionBatches, StatisticsBatches

GEARS = sg.model.GEARS


@pytest.fixture(scope="module")
def screen(prepared_screen):
    return prepared_screen(
        n_genes=120, n_perturbed_genes=10, n_doubles=10, n_cells_per_condition=20, seed=4
    )


def _model(screen, **kwargs):
    adata = screen.copy()
    GEARS.setup_anndata(adata)
    torch.manual_seed(0)
    return GEARS(adata, n_hidden=16, **kwargs)


def _statistics_of(batch):
    """The sufficient statistics of exactly the cells of a cell-level batch."""
    index = batch["condition_index"]
    n_conditions = batch["perturbations"].shape[0]
    difference = batch["x"] - batch["x_control"]
    n = torch.bincount(index, minlength=n_conditions).to(difference.dtype)
    total = torch.zeros((n_conditions, difference.shape[1]), dtype=difference.dtype)
    target = total.index_add(0, index, difference) / n[:, None]
    squares = total.index_add(0, index, difference**2) / n[:, None]
    return {
        "perturbations": batch["perturbations"],
        "target": target,
        "variance": squares - target**2,
        "n_cells": n,
        "expressed": batch["expressed"],
        "de_index": batch["de_index"],
    }


@pytest.mark.parametrize("uncertainty", [False, True])
def test_statistics_and_cells_give_the_same_gradient(screen, uncertainty):
    model = _model(screen, uncertainty=uncertainty)
    data = model._training_data()
    loader = ConditionBatches(
        data, "train", conditions_per_batch=4, cells_per_condition=7, shuffle=True, seed=0
    )
    cells = {k: (v.double() if v.is_floating_point() else v) for k, v in next(iter(loader)).items()}
    assert len(cells["x"]) > cells["perturbations"].shape[0]  # several cells per condition
    statistics = _statistics_of(cells)
    module = model.module.double()
    module.train()
    with torch.no_grad():  # embeddings with max_norm renormalise their rows on first use
        module.inference(cells["perturbations"])
    results = []
    for batch in (cells, statistics):
        module.zero_grad()
        torch.manual_seed(1)  # the same dropout mask for both
        out = module.inference(batch["perturbations"])
        loss = module.loss(batch, out)
        loss.loss.backward()
        grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
        results.append((loss, grads))
    (cell_loss, cell_grads), (stat_loss, stat_grads) = results
    assert set(cell_grads) == set(stat_grads)
    assert any(g.abs().max() > 1e-6 for g in cell_grads.values())
    # float64 rounding, relative to the largest gradient (some parameters' gradients are
    # differences of much larger terms: batch norm and the residual centring cancel them)
    scale = max(float(g.abs().max()) for g in cell_grads.values())
    for name, grad in cell_grads.items():
        difference = float((stat_grads[name] - grad).abs().max())
        assert difference <= 1e-8 * scale, (name, difference, scale)
    # the squared error and the likelihood are equal as values too (the sign direction term, which
    # has no gradient, is computed on condition means by the statistics path)
    torch.testing.assert_close(
        stat_loss.extra_metrics["autofocus"], cell_loss.extra_metrics["autofocus"]
    )
    torch.testing.assert_close(stat_loss.extra_metrics["mse"], cell_loss.extra_metrics["mse"])
    if uncertainty:
        torch.testing.assert_close(
            stat_loss.extra_metrics["gaussian_nll"], cell_loss.extra_metrics["gaussian_nll"]
        )


def test_statistics_are_the_default_when_exact(screen):
    model = _model(screen)
    model.train(max_epochs=1, min_steps_per_epoch=2, enable_progress_bar=False)
    assert isinstance(model.trainer.datamodule._train, StatisticsBatches)
    paper = _model(screen, variant="paper")
    paper.train(max_epochs=1, min_steps_per_epoch=2, enable_progress_bar=False)
    assert isinstance(paper.trainer.datamodule._train, ConditionBatches)
    cells = _model(screen)
    cells.train(max_epochs=1, min_steps_per_epoch=2, statistics=False, enable_progress_bar=False)
    assert isinstance(cells.trainer.datamodule._train, ConditionBatches)


def test_default_epoch_is_one_visit_of_the_training_conditions(screen):
    # the default since round 3: an epoch is one pass, not a pass repeated up to 50 steps
    model = _model(screen)
    model.train(max_epochs=2, batch_size=128, enable_progress_bar=False)
    n_train = len(model._training_data().codes("train"))
    steps_per_pass = -(-n_train // (128 // 32))
    assert model.trainer.global_step == 2 * steps_per_pass
    repeated = _model(screen)
    repeated.train(
        max_epochs=2,
        batch_size=128,
        min_steps_per_epoch=steps_per_pass + 1,
        enable_progress_bar=False,
    )
    assert repeated.trainer.global_step >= 2 * (steps_per_pass + 1)


def test_statistics_epoch_visits_every_training_condition(screen):
    model = _model(screen)
    data = model._training_data()
    batches = StatisticsBatches(data, "train", conditions_per_batch=4, shuffle=True, seed=0)
    planned = batches._batches()
    codes = [c for batch in planned for c in batch]
    # one pass visits each training condition once; passes repeat up to min_steps (1 here)
    assert sorted(codes) == data.codes("train")
    assert all(len(batch) >= 2 for batch in planned)
    # targets: condition mean minus the training control mean, zero for the control
    stats = data.statistics
    item = next(iter(batches))
    first = int(planned[0][0])
    expected = stats.means("train")[first] - stats.control_mean()
    if first == data.control_code:
        expected = np.zeros_like(expected)
    np.testing.assert_allclose(item["target"][0].numpy(), expected, atol=1e-6)


def test_checkpoint_and_resume(screen, tmp_path):
    # 3 epochs in one go, and 2 epochs then resumed to 3: the same weights
    full = _model(screen)
    full.train(max_epochs=3, min_steps_per_epoch=3, enable_progress_bar=False)
    first = _model(screen)
    first.train(
        max_epochs=2, min_steps_per_epoch=3, checkpoint_dir=tmp_path, enable_progress_bar=False
    )
    assert (tmp_path / "last.ckpt").is_file()
    resumed = _model(screen)
    resumed.train(
        max_epochs=3,
        min_steps_per_epoch=3,
        checkpoint_dir=tmp_path,
        resume=True,
        enable_progress_bar=False,
    )
    for name, value in full.module.state_dict().items():
        torch.testing.assert_close(resumed.module.state_dict()[name], value, msg=name)
    with pytest.raises(FileNotFoundError, match="No checkpoint to resume from"):
        _model(screen).train(max_epochs=1, checkpoint_dir=tmp_path / "none", resume=True)


def test_vectorised_embedding_renorm_matches_torch():
    """The module's whole-table lookup renormalises and back-propagates exactly as torch's."""
    from scgears.model._module import _all_rows

    torch.manual_seed(0)
    ours = torch.nn.Embedding(500, 16, max_norm=True)
    with torch.no_grad():
        ours.weight.mul_(torch.rand(500, 1) * 3)  # rows on both sides of max_norm
    theirs = torch.nn.Embedding(500, 16, max_norm=True)
    theirs.load_state_dict(ours.state_dict())
    weights = torch.randn(500, 16)
    (_all_rows(ours) * weights).sum().backward()
    (theirs(torch.arange(500)) * weights).sum().backward()
    assert torch.equal(ours.weight, theirs.weight)
    assert torch.equal(ours.weight.grad, theirs.weight.grad)
    assert torch.linalg.vector_norm(ours.weight, dim=1).max() <= 1 + 1e-6


def test_graph_propagation_edge_mask_matches_isin():
    from scgears.model._layers import GraphPropagation

    generator = torch.Generator().manual_seed(1)
    edges = torch.randint(0, 50, (2, 300), generator=generator)
    layer = GraphPropagation(8, 2, edges, torch.rand(300, generator=generator), n_nodes=50)
    rows = torch.tensor([3, 7, 8, 41])
    assert torch.equal(layer._receives(rows), torch.isin(layer.targets, rows))
    x = torch.randn(50, 8, generator=generator)
    assert torch.allclose(layer(x, rows), layer(x)[rows], atol=1e-6)


def test_prediction_does_not_depend_on_conditions_per_pass(screen, monkeypatch):
    """Forward passes are cut by condition x gene rows; the cut must not change a prediction."""
    from scgears.model import _training_plan

    model = _model(screen)
    model.train(max_epochs=1, min_steps_per_epoch=2, enable_progress_bar=False)
    labels = sorted(set(model.adata.obs["scgears_condition"].astype(str)) - {"ctrl"})
    whole = model.predict(labels).layers["delta"]
    monkeypatch.setattr(_training_plan, "ROWS_PER_PASS", 2 * model.module.n_genes)
    assert _training_plan.conditions_per_pass(model.module.n_genes) == 2
    np.testing.assert_allclose(model.predict(labels).layers["delta"], whole, atol=1e-6)

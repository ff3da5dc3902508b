"""Bad or edge-case input (issue 12): each row gets a clear error or the documented behaviour."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import scgears as sg

# =================================================================================================
# model rows (CORE): 1, 4, 10, 11, 12, 14, 15 (model parts), 17
# =================================================================================================

GEARS = sg.model.GEARS


@pytest.fixture(scope="module")
def prepared():
    adata = sg.datasets.simulate_screen(
        n_genes=80, n_perturbed_genes=8, n_doubles=8, n_cells_per_condition=12, seed=7
    )
    sg.pp.register_perturbations(adata, "perturbation_name")
    sg.pp.rank_perturbation_genes(adata)
    sg.pp.split_perturbations(adata, kind="simulation", seed=1)
    sg.pp.coexpression_graph(adata)
    sg.pp.perturbation_graph(adata, all_genes=False)
    return adata


def _model(prepared, **kwargs):
    adata = prepared.copy()
    GEARS.setup_anndata(adata)
    torch.manual_seed(0)
    return GEARS(adata, n_hidden=8, **kwargs)


@pytest.fixture(scope="module")
def saved(prepared, tmp_path_factory):
    model = _model(prepared)
    model.train(max_epochs=1, min_steps_per_epoch=2, enable_progress_bar=False)
    path = tmp_path_factory.mktemp("saved") / "model"
    model.save(path)
    return path


class _Payload:
    """Unpickling this creates a file: what a malicious model folder would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_row1_load_never_unpickles(saved, prepared, tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    for name in ("model.json", "graphs.npz"):
        (folder / name).write_bytes((saved / name).read_bytes())
    marker = tmp_path / "payload_ran"
    (folder / "model.pt").write_bytes(pickle.dumps({"weights": _Payload(marker)}))
    with pytest.raises(ValueError, match="a model folder is data, not code"):
        GEARS.load(folder, adata=prepared.copy())
    assert not marker.exists()
    # the same payload saved the way torch saves
    torch.save({"weights": _Payload(marker)}, folder / "model.pt")
    with pytest.raises(ValueError, match="not a plain file of tensors"):
        GEARS.load(folder, adata=prepared.copy())
    assert not marker.exists()


def test_row1_saved_files_are_plain_data(saved):
    assert sorted(p.name for p in saved.iterdir()) == ["graphs.npz", "model.json", "model.pt"]
    state = torch.load(saved / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    with np.load(saved / "graphs.npz", allow_pickle=False) as arrays:
        assert "coexpression_indptr" in arrays.files
        assert all(arrays[k].dtype != object for k in arrays.files)


@pytest.mark.parametrize("max_epochs", [0, -1, 1.5])
def test_row4_max_epochs_below_one(prepared, max_epochs):
    model = _model(prepared)
    with pytest.raises(ValueError, match=r"max_epochs must be an integer >= 1"):
        model.train(max_epochs=max_epochs)
    assert not model.is_trained


def test_row4_untrained_model_warns_on_predict(prepared):
    model = _model(prepared)
    with pytest.warns(UserWarning, match="has not been trained"):
        model.predict(list(prepared.uns["scgears_split"]["conditions"]["test"])[:2])


def test_row10_resplit_after_model_is_detected(prepared):
    model = _model(prepared)
    sg.pp.split_perturbations(model.adata, kind="simulation", seed=2)
    with pytest.raises(ValueError, match=r"split_perturbations was re-run.*GEARS\(adata\)"):
        model.train(max_epochs=1)
    other = _model(prepared)
    sg.pp.coexpression_graph(other.adata, threshold=0.2)
    with pytest.raises(ValueError, match="coexpression_graph was re-run"):
        other.train(max_epochs=1)


def test_row11_same_seed_same_numbers(prepared):
    runs = []
    for _ in range(2):
        model = _model(prepared)
        model.train(max_epochs=2, min_steps_per_epoch=2, seed=3, enable_progress_bar=False)
        runs.append(model.predict(list(prepared.uns["scgears_split"]["conditions"]["test"])))
    np.testing.assert_array_equal(runs[0].X, runs[1].X)


def test_row12_divergence_restores_the_best_epoch(prepared):
    # residual=False: the residual model's centring would cancel much of the blow-up below
    model = _model(prepared, residual=False)
    from lightning.pytorch import Callback

    class Explode(Callback):
        # what a too-large learning rate does: the last epoch's weights blow up
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.current_epoch == 2 and batch_idx == 0:
                with torch.no_grad():
                    pl_module.module.gene_weight_2.mul_(1000.0)

    with pytest.warns(RuntimeWarning, match="diverged.*restored"):
        model.train(
            max_epochs=3, min_steps_per_epoch=2, enable_progress_bar=False, callbacks=[Explode()]
        )
    kept = model.kept_epoch_
    assert kept.best_epoch < 2
    state = model.module.state_dict()
    assert torch.equal(state["gene_weight_2"], kept.best_state["gene_weight_2"])


def test_row14_failed_load_writes_nothing(saved, prepared):
    adata = prepared.copy()
    adata = adata[:, adata.var_names[::-1]].copy()
    for key in [k for k in adata.uns if k.startswith("_scvi")]:
        del adata.uns[key]
    adata.obs = adata.obs.drop(columns=[c for c in adata.obs if c.startswith("_scvi")])
    with pytest.raises(ValueError, match="same genes, another order"):
        GEARS.load(saved, adata=adata)
    assert not [c for c in adata.obs.columns if c.startswith("_scvi")]
    assert not [k for k in adata.uns if k.startswith("_scvi")]


def test_row15_batch_size(prepared):
    model = _model(prepared)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 64, got 0"):
        model.train(max_epochs=1, batch_size=0)


def test_row15_save_into_existing_folder(saved, prepared):
    model = GEARS.load(saved, adata=prepared.copy())
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(saved)
    model.save(saved, overwrite=True)


def test_row15_load_missing_empty_or_corrupt(saved, prepared, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        GEARS.load(tmp_path / "nowhere", adata=prepared.copy())
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="folder is empty"):
        GEARS.load(tmp_path / "empty", adata=prepared.copy())
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in ("model.json", "graphs.npz"):
        (corrupt / name).write_bytes((saved / name).read_bytes())
    (corrupt / "model.pt").write_bytes((saved / "model.pt").read_bytes()[:100])
    with pytest.raises(ValueError, match=r"model\.pt is corrupt"):
        GEARS.load(corrupt, adata=prepared.copy())
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "model.pt").write_bytes(b"not relevant")
    with pytest.raises(FileNotFoundError, match="scvi-tools' pickled format"):
        GEARS.load(legacy, adata=prepared.copy())


def test_row17_lightning_is_quiet(prepared, capfd):
    model = _model(prepared)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.train(max_epochs=1, min_steps_per_epoch=2, enable_progress_bar=False)
    err = capfd.readouterr().err
    for noise in ("GPU available", "TPU available", "litmodels", "Tip:", "LeafSpec", "__len__"):
        assert noise not in err
    assert not [w for w in caught if "lightning" in str(w.filename)]


# ================================================================= end of the model rows (CORE)

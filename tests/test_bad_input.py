"""Bad input (issue 12): one test per row of the issue's table, each a clear error or warning.

Engineers add their rows in their own marked blocks; ``docs/checks.md`` lists every check.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import scgears as sg

KEY = "scgears_condition"


def small_screen(seed: int = 0) -> ad.AnnData:
    """A small simulated screen with registered conditions (log-normalised CSR ``X``)."""
    adata = sg.datasets.simulate_screen(
        n_genes=100, n_perturbed_genes=6, n_doubles=4, n_cells_per_condition=8, seed=seed
    )
    sg.pp.register_perturbations(adata, "perturbation_name", control="control")
    return adata


@pytest.fixture(scope="module")
def _prepared() -> ad.AnnData:
    adata = small_screen()
    sg.pp.rank_perturbation_genes(adata)
    sg.pp.split_perturbations(adata, kind="simulation", seed=1)
    sg.pp.coexpression_graph(adata)
    sg.pp.perturbation_graph(adata, all_genes=False)
    return adata


@pytest.fixture
def prepared(_prepared) -> ad.AnnData:
    """Every ``sg.pp`` step done: ready for ``GEARS.setup_anndata``."""
    return _prepared.copy()


def _uns_keys(adata):
    return set(adata.uns), set(adata.varp), set(adata.obs.columns)


# ==================================================================================================
# ROBUST: rows 2, 3, 7, 8, 9 (pp side), 15 (pp, data, CLI), 16


@pytest.mark.parametrize("kind", ["csr", "dense", "layer", "backed"])
def test_row02_nan_and_inf_are_refused_naming_count_genes_and_cells(kind, tmp_path):
    adata = small_screen()
    x = adata.X.toarray()
    x[3, 5] = np.nan
    x[3, 7] = np.nan
    x[10, 5] = np.inf
    layer = None
    if kind == "csr":
        adata.X = sp.csr_matrix(x)
    elif kind == "dense":
        adata.X = x
    elif kind == "layer":
        adata.layers["logged"] = sp.csr_matrix(x)
        adata.X = sp.csr_matrix(np.nan_to_num(x, nan=0.0, posinf=0.0))
        layer = "logged"
    else:
        adata.X = sp.csr_matrix(x)
        adata.write_h5ad(tmp_path / "screen.h5ad")
        adata = ad.read_h5ad(tmp_path / "screen.h5ad", backed="r")
    genes, cells = adata.var_names, adata.obs_names
    before = _uns_keys(adata)
    where = "adata.X" if layer is None else "adata.layers['logged']"
    pattern = (
        rf"{re.escape(where)} has 2 NaN and 1 infinite values, in 2 genes .*'{genes[5]}' \(2\)"
    )
    for function in (sg.pp.rank_perturbation_genes, sg.pp.coexpression_graph):
        with pytest.raises(ValueError, match=pattern) as err:
            function(adata, layer=layer)
        assert f"2 cells (['{cells[3]}', '{cells[10]}'])" in str(err.value)
        assert _uns_keys(adata) == before  # a failed call writes nothing


def test_row02_setup_anndata_refuses_nan_before_training(prepared):
    from scgears.model import GEARS

    prepared.X = prepared.X.tocsr(copy=True)
    prepared.X.data[0] = np.nan
    with pytest.raises(ValueError, match=r"adata.X has 1 NaN and 0 infinite values.*before setup"):
        GEARS.setup_anndata(prepared)
    assert "_scvi_uuid" not in prepared.uns


def test_row03_counts_or_negative_values_warn_with_the_fix():
    adata = small_screen()
    counts = adata.layers["counts"]
    adata.X = counts.copy()
    with pytest.warns(UserWarning, match=r"looks like raw counts.*normalize_total.*log1p"):
        sg.pp.rank_perturbation_genes(adata)
    # the counts layer is looked at when it is the one used
    adata.X = sp.csr_matrix(np.log1p(counts.toarray()))
    with pytest.warns(UserWarning, match=r"adata.layers\['counts'\] looks like raw counts"):
        sg.pp.coexpression_graph(adata, layer="counts")
    # large non-integer values are not on the log scale either
    adata.X = counts.toarray() * 100 + 0.5
    with pytest.warns(UserWarning, match=r"values up to .*far above log-normalised"):
        sg.pp.rank_perturbation_genes(adata)
    # scaled (centred) data has negative values
    x = np.log1p(counts.toarray())
    adata.X = (x - x.mean(axis=0)) / (x.std(axis=0) + 1)
    with pytest.warns(UserWarning, match=r"negative values \(smallest -.*sc.pp.scale"):
        sg.pp.rank_perturbation_genes(adata)


def test_row03_log_normalised_data_passes_silently(recwarn):
    adata = small_screen()
    sg.pp.rank_perturbation_genes(adata)
    sg.pp.coexpression_graph(adata)
    assert not [w for w in recwarn if str(w.message).startswith("adata.X")]


def test_row07_cells_labelled_ctrl_are_not_merged_into_another_control():
    adata = ad.AnnData(
        np.zeros((4, 2), dtype=np.float32),
        obs=pd.DataFrame({"p": ["control", "ctrl", "KLF1", "ctrl"]}, index=list("abcd")),
    )
    with pytest.raises(ValueError, match=r"2 cells are labelled 'ctrl'.*reserved") as err:
        sg.pp.register_perturbations(adata, "p", control="control")
    assert "control=['control', 'ctrl']" in str(err.value)  # the fix, if they are controls
    assert KEY not in adata.obs
    sg.pp.register_perturbations(adata, "p", control=["control", "ctrl"])
    assert adata.obs[KEY].tolist() == ["ctrl", "ctrl", "KLF1", "ctrl"]


def test_row08_repeated_genes_and_tokens_that_are_not_genes_are_reported():
    adata = ad.AnnData(
        np.zeros((5, 2), dtype=np.float32),
        obs=pd.DataFrame({"p": ["control", "KLF1+KLF1", "CBL", "CBL+CNN1", "KLF1"]}),
        var=pd.DataFrame(index=["GATA1", "HBG1"]),
    )
    with pytest.warns(UserWarning, match=r"1 labels .* name a gene more than once: 'KLF1\+KLF1'"):
        sg.pp.register_perturbations(adata, "p")
    assert adata.obs[KEY].tolist()[1] == "KLF1"

    guides = adata.copy()
    guides.obs["p"] = ["control", "KLF1_pDS255", "CBL_pDS100", "SPI1_pDS255", "KLF1_pDS255"]
    with pytest.warns(UserWarning, match=r"2 of 5 perturbed gene names .*split at '_'") as rec:
        sg.pp.register_perturbations(guides, "p")
    message = str(next(w.message for w in rec if "perturbed gene names" in str(w.message)))
    assert "'pDS255' (in 'KLF1_pDS255', 3 cells)" in message
    assert "drop_tokens=" in message
    assert "delimiter=" in message
    # the hint works: the plasmid names are dropped, no warning is left
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sg.pp.register_perturbations(guides, "p", drop_tokens="pDS*")
    assert guides.obs[KEY].tolist() == ["ctrl", "KLF1", "CBL", "SPI1", "KLF1"]


def test_row08_genes_measured_in_var_are_known():
    # a gene outside the GO table but measured is no "unknown token"
    adata = ad.AnnData(
        np.zeros((2, 2), dtype=np.float32),
        obs=pd.DataFrame({"p": ["control", "MYLNCRNA1"]}),
        var=pd.DataFrame(index=["MYLNCRNA1", "GATA1"]),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sg.pp.register_perturbations(adata, "p")


def test_row09_duplicated_var_names_are_refused_early(prepared):
    from scgears.model import GEARS

    names = prepared.var_names.tolist()
    names[4] = names[2]
    adata = prepared.copy()
    adata.var_names = names
    for function in (
        sg.pp.rank_perturbation_genes,
        sg.pp.coexpression_graph,
        GEARS.setup_anndata,
    ):
        with pytest.raises(ValueError, match=rf"1 duplicated gene names \(\['{names[2]}'\]\)") as e:
            function(adata)
        assert "var_names_make_unique()" in str(e.value)


def test_row15_empty_anndata_and_no_genes_say_what_is_empty():
    adata = small_screen()
    with pytest.raises(ValueError, match=r"no cells \(0 cells x 100 genes\)"):
        sg.pp.register_perturbations(adata[:0].copy(), "perturbation_name")
    no_genes = adata[:, :0].copy()
    for function in (sg.pp.rank_perturbation_genes, sg.pp.coexpression_graph):
        with pytest.raises(ValueError, match=r"no genes \(\d+ cells x 0 genes\).*subsetting"):
            function(no_genes)


def test_row15_numeric_labels_are_not_gene_names():
    adata = ad.AnnData(
        np.zeros((3, 2), dtype=np.float32), obs=pd.DataFrame({"p": [0, 1, 2]}, index=list("abc"))
    )
    with pytest.raises(TypeError, match=r"'p' holds numbers \(int64\).*map\("):
        sg.pp.register_perturbations(adata, "p", control="0")
    adata.obs["p"] = ["control", "KLF1", "CBL"]
    with pytest.raises(TypeError, match=r"control must be a label, a glob pattern"):
        sg.pp.register_perturbations(adata, "p", control=0)


@pytest.mark.parametrize("perturbation", [[1, 2], ["KLF1", 3], 5, [None]])
def test_row15_non_string_genes_are_refused_naming_the_value(perturbation):
    from scgears._conditions import as_condition

    with pytest.raises(TypeError, match=r"(Genes must be gene names|A perturbation is a label)"):
        as_condition(perturbation)
    with pytest.raises(TypeError, match=r"gene names"):
        sg.tl.baseline(small_screen(), "control", conditions=[perturbation])


def test_row15_unusable_data_dir_is_named_before_any_download(tmp_path, monkeypatch):
    from scgears.datasets import DatasetUnavailableError

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    monkeypatch.setenv("SCGEARS_DATA_DIR", str(a_file / "cache"))
    with pytest.raises(DatasetUnavailableError, match=r"a_file' is a file.*Set \$SCGEARS_DATA"):
        sg.datasets.norman2019()
    # not writable (tests may run as root, so the permission is simulated)
    folder = tmp_path / "readonly"
    folder.mkdir()
    monkeypatch.setenv("SCGEARS_DATA_DIR", str(folder))
    access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: str(p) != str(folder) and access(p, mode))
    with pytest.raises(
        DatasetUnavailableError, match=r"readonly' \(\$SCGEARS_DATA_DIR\) is not wr"
    ):
        sg.datasets.adamson2016()


@pytest.mark.parametrize("where", ["under_a_file", "not_writable"])
def test_row15_demo_out_that_cannot_be_written_is_a_usage_error(
    where, tmp_path, capsys, monkeypatch
):
    from scgears._cli import main

    if where == "under_a_file":
        (tmp_path / "notes.txt").write_text("")
        out, expected = tmp_path / "notes.txt" / "demo", r"is a file, not a folder"
    else:
        out, expected = tmp_path / "locked", r"is not writable"
        access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: str(p) != str(out) and access(p, mode))
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--out", str(out), "--small"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert str(out) in err
    assert re.search(expected, err)


def test_row16_isolated_genes_warn_only_when_a_perturbed_gene_is_isolated(caplog):
    adata = ad.AnnData(
        np.zeros((3, 3), dtype=np.float32),
        obs=pd.DataFrame({"p": ["control", "KLF1", "GATA1"]}, index=list("abc")),
        var=pd.DataFrame(index=["GATA1", "KLF1", "NOTAGENE1"]),
    )
    sg.pp.register_perturbations(adata, "p")
    logger = "scgears.pp._perturbation_graph"
    with caplog.at_level(logging.INFO, logger=logger):
        sg.pp.perturbation_graph(adata, all_genes=False)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    info = " ".join(r.getMessage() for r in caplog.records)
    assert "0 of 2 perturbed or requested genes and 1 of 3 measured genes have no edge" in info

    caplog.clear()
    with caplog.at_level(logging.INFO, logger=logger):
        sg.pp.perturbation_graph(adata, genes=["NOTAGENE2"], all_genes=False)
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1
    assert "1 of 3 perturbed or requested genes and 1 of 3 measured genes" in warning[0]
    assert ": NOTAGENE2. " in warning[0]  # only the gene that matters for prediction is named


@pytest.mark.parametrize(
    ("call", "exception", "pattern"),
    [
        (lambda a: sg.pp.register_perturbations(a, "nope"), KeyError, r"'nope' not found"),
        (
            lambda a: sg.pp.register_perturbations(a, "perturbation_name", control="NT"),
            ValueError,
            r"Control label 'NT' not found.*control='control'",
        ),
        (
            lambda a: sg.pp.rank_perturbation_genes(a, condition_key="other"),
            KeyError,
            r"register the perturbations first",
        ),
        (lambda a: sg.pp.rank_perturbation_genes(a, n_genes=0), ValueError, r"at least 1"),
        (lambda a: sg.pp.rank_perturbation_genes(a, layer="x"), KeyError, r"Layer 'x' not found"),
        (lambda a: sg.pp.coexpression_graph(a, threshold=2.0), ValueError, r"threshold must be"),
        (lambda a: sg.pp.coexpression_graph(a, n_neighbors=-1), ValueError, r"n_neighbors must"),
    ],
)
def test_existing_clear_errors_stay_clear(call, exception, pattern):
    adata = small_screen()
    with pytest.raises(exception, match=pattern):
        call(adata)


# END ROBUST
# ==================================================================================================


# =================================================================================================
# model rows (CORE): 1, 4, 10, 11, 12, 14, 15 (model parts), 17
# =================================================================================================

GEARS = sg.model.GEARS


@pytest.fixture(scope="module")
def model_adata():
    adata = sg.datasets.simulate_screen(
        n_genes=80, n_perturbed_genes=8, n_doubles=8, n_cells_per_condition=12, seed=7
    )
    sg.pp.register_perturbations(adata, "perturbation_name")
    sg.pp.rank_perturbation_genes(adata)
    sg.pp.split_perturbations(adata, kind="simulation", seed=1)
    sg.pp.coexpression_graph(adata)
    sg.pp.perturbation_graph(adata, all_genes=False)
    return adata


def _model(model_adata, **kwargs):
    adata = model_adata.copy()
    GEARS.setup_anndata(adata)
    torch.manual_seed(0)
    return GEARS(adata, n_hidden=8, **kwargs)


@pytest.fixture(scope="module")
def saved(model_adata, tmp_path_factory):
    model = _model(model_adata)
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


def test_row1_load_never_unpickles(saved, model_adata, tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    for name in ("model.json", "graphs.npz"):
        (folder / name).write_bytes((saved / name).read_bytes())
    marker = tmp_path / "payload_ran"
    (folder / "model.pt").write_bytes(pickle.dumps({"weights": _Payload(marker)}))
    with pytest.raises(ValueError, match="a model folder is data, not code"):
        GEARS.load(folder, adata=model_adata.copy())
    assert not marker.exists()
    # the same payload saved the way torch saves
    torch.save({"weights": _Payload(marker)}, folder / "model.pt")
    with pytest.raises(ValueError, match="not a plain file of tensors"):
        GEARS.load(folder, adata=model_adata.copy())
    assert not marker.exists()


def test_row1_saved_files_are_plain_data(saved):
    assert sorted(p.name for p in saved.iterdir()) == ["graphs.npz", "model.json", "model.pt"]
    state = torch.load(saved / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    with np.load(saved / "graphs.npz", allow_pickle=False) as arrays:
        assert "coexpression_indptr" in arrays.files
        assert all(arrays[k].dtype != object for k in arrays.files)


@pytest.mark.parametrize("max_epochs", [0, -1, 1.5])
def test_row4_max_epochs_below_one(model_adata, max_epochs):
    model = _model(model_adata)
    with pytest.raises(ValueError, match=r"max_epochs must be an integer >= 1"):
        model.train(max_epochs=max_epochs)
    assert not model.is_trained


def test_row4_untrained_model_warns_on_predict(model_adata):
    model = _model(model_adata)
    with pytest.warns(UserWarning, match="has not been trained"):
        model.predict(list(model_adata.uns["scgears_split"]["conditions"]["test"])[:2])


def test_row10_resplit_after_model_is_detected(model_adata):
    model = _model(model_adata)
    sg.pp.split_perturbations(model.adata, kind="simulation", seed=2)
    with pytest.raises(ValueError, match=r"split_perturbations was re-run.*GEARS\(adata\)"):
        model.train(max_epochs=1)
    other = _model(model_adata)
    sg.pp.coexpression_graph(other.adata, threshold=0.2)
    with pytest.raises(ValueError, match="coexpression_graph was re-run"):
        other.train(max_epochs=1)


def test_row11_same_seed_same_numbers(model_adata):
    runs = []
    for _ in range(2):
        model = _model(model_adata)
        model.train(max_epochs=2, min_steps_per_epoch=2, seed=3, enable_progress_bar=False)
        runs.append(model.predict(list(model_adata.uns["scgears_split"]["conditions"]["test"])))
    np.testing.assert_array_equal(runs[0].X, runs[1].X)


def test_row12_divergence_restores_the_best_epoch(model_adata):
    # residual=False, measured_prior=False: centring the network's output would cancel much of
    # the blow-up below
    model = _model(model_adata, residual=False, measured_prior=False)
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


def test_row14_failed_load_writes_nothing(saved, model_adata):
    adata = model_adata.copy()
    adata = adata[:, adata.var_names[::-1]].copy()
    for key in [k for k in adata.uns if k.startswith("_scvi")]:
        del adata.uns[key]
    adata.obs = adata.obs.drop(columns=[c for c in adata.obs if c.startswith("_scvi")])
    with pytest.raises(ValueError, match="same genes, another order"):
        GEARS.load(saved, adata=adata)
    assert not [c for c in adata.obs.columns if c.startswith("_scvi")]
    assert not [k for k in adata.uns if k.startswith("_scvi")]


def test_row15_batch_size(model_adata):
    model = _model(model_adata)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 64, got 0"):
        model.train(max_epochs=1, batch_size=0)


def test_row15_save_into_existing_folder(saved, model_adata):
    model = GEARS.load(saved, adata=model_adata.copy())
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(saved)
    model.save(saved, overwrite=True)


def test_row15_load_missing_empty_or_corrupt(saved, model_adata, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        GEARS.load(tmp_path / "nowhere", adata=model_adata.copy())
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="folder is empty"):
        GEARS.load(tmp_path / "empty", adata=model_adata.copy())
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in ("model.json", "graphs.npz"):
        (corrupt / name).write_bytes((saved / name).read_bytes())
    (corrupt / "model.pt").write_bytes((saved / "model.pt").read_bytes()[:100])
    with pytest.raises(ValueError, match=r"model\.pt is corrupt"):
        GEARS.load(corrupt, adata=model_adata.copy())
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "model.pt").write_bytes(b"not relevant")
    with pytest.raises(FileNotFoundError, match="scvi-tools' pickled format"):
        GEARS.load(legacy, adata=model_adata.copy())


def test_row17_lightning_is_quiet(model_adata, capfd):
    model = _model(model_adata)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.train(max_epochs=1, min_steps_per_epoch=2, enable_progress_bar=False)
    err = capfd.readouterr().err
    for noise in ("GPU available", "TPU available", "litmodels", "Tip:", "LeafSpec", "__len__"):
        assert noise not in err
    assert not [w for w in caught if "lightning" in str(w.filename)]


# ================================================================= end of the model rows (CORE)

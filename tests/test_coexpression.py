"""coexpression_graph: |Pearson r| over control and training singles, GEARS' top-k + threshold."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import scgears as sg
from scgears.pp import _coexpression

KEY = "scgears_coexpression"
CONDITIONS = ["ctrl", "A", "B", "C", "D", "A+B", "C+D"]


def screen(n_genes: int = 30, cells_per_condition: int = 25, seed: int = 0) -> ad.AnnData:
    """Correlated, partly sparse expression: a few latent programmes, then dropout."""
    rng = np.random.default_rng(seed)
    n = cells_per_condition * len(CONDITIONS)
    programmes = rng.normal(size=(n, 4)) @ rng.normal(size=(4, n_genes))
    x = np.maximum(programmes + rng.normal(scale=0.7, size=(n, n_genes)), 0).astype(np.float32)
    adata = ad.AnnData(
        X=sp.csr_matrix(x),
        obs=pd.DataFrame(
            {"p": np.repeat(CONDITIONS, cells_per_condition)}, index=[f"c{i}" for i in range(n)]
        ),
        var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]),
    )
    sg.pp.register_perturbations(adata, "p", control="ctrl")
    return adata


def expected_graph(x: np.ndarray, n_neighbors: int, threshold: float) -> np.ndarray:
    """GEARS' rule, densely: |corrcoef|, NaN -> 0, per gene its top-k others above threshold."""
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.abs(np.corrcoef(x, rowvar=False))
    corr = np.nan_to_num(corr)
    np.fill_diagonal(corr, -1)
    out = np.zeros_like(corr)
    for i, row in enumerate(corr):
        top = np.argsort(-row)[:n_neighbors]
        top = top[row[top] > threshold]
        out[i, top] = row[top]
    np.fill_diagonal(out, 1.0)
    return out


def selected(adata: ad.AnnData, split: str | None = None) -> np.ndarray:
    cond = adata.obs["scgears_condition"].astype(str)
    use = ~cond.str.contains("+", regex=False).to_numpy()
    if split is not None:
        use &= (adata.obs[split] == "train").to_numpy()
    x = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    return x[use]


def assert_invariants(graph, n_neighbors: int, threshold: float):
    assert sp.issparse(graph)
    graph = sp.csr_matrix(graph)
    np.testing.assert_array_equal(graph.diagonal(), 1.0)
    assert np.diff(graph.indptr).max() <= n_neighbors + 1
    off = graph - sp.diags(graph.diagonal())
    off.eliminate_zeros()
    assert (off.data > threshold).all()
    assert (off.data <= 1).all()


def test_weights_equal_corrcoef_without_split():
    adata = screen()
    sg.pp.coexpression_graph(adata, n_neighbors=5, threshold=0.3)
    graph = adata.varp[KEY]
    assert graph.shape == (adata.n_vars, adata.n_vars)
    expected = expected_graph(selected(adata), 5, 0.3)
    assert (expected > 0).sum() > 2 * adata.n_vars  # the example has edges beyond self edges
    np.testing.assert_allclose(graph.toarray(), expected, atol=1e-5)
    assert_invariants(graph, 5, 0.3)
    params = adata.uns[KEY]["params"]
    assert params["n_cells"] == 5 * 25  # ctrl + 4 singles, no doubles
    assert params["n_neighbors"] == 5
    assert params["threshold"] == 0.3


def test_split_uses_train_singles_only():
    adata = screen()
    adata.obs["scgears_split"] = pd.Categorical(
        adata.obs["scgears_condition"]
        .map({"ctrl": "train", "A": "train", "B": "val", "C": "test", "D": "train"})
        .fillna("train")
        .astype(str)
    )
    sg.pp.coexpression_graph(adata, n_neighbors=4, threshold=0.2)
    np.testing.assert_allclose(
        adata.varp[KEY].toarray(),
        expected_graph(selected(adata, "scgears_split"), 4, 0.2),
        atol=1e-5,
    )
    assert adata.uns[KEY]["params"]["n_cells"] == 3 * 25


def test_test_and_double_cells_do_not_change_the_graph():
    adata = screen()
    sg.pp.split_perturbations(
        adata, kind="custom", test_conditions={"test": ["B", "A+B"], "val": ["C"]}
    )
    sg.pp.coexpression_graph(adata)
    before = adata.varp[KEY].copy()
    cond = adata.obs["scgears_condition"].astype(str)
    excluded = (adata.obs["scgears_split"] != "train") | cond.str.contains("+", regex=False)
    x = adata.X.toarray()
    rng = np.random.default_rng(1)
    x[excluded.to_numpy()] = rng.exponential(size=(int(excluded.sum()), adata.n_vars))
    adata.X = sp.csr_matrix(x)
    sg.pp.coexpression_graph(adata)
    assert (adata.varp[KEY] != before).nnz == 0
    # whereas changing training cells does change it
    x[(cond == "A").to_numpy()] = rng.exponential(size=(25, adata.n_vars))
    adata.X = sp.csr_matrix(x)
    sg.pp.coexpression_graph(adata)
    assert (adata.varp[KEY] != before).nnz > 0


def test_doubles_excluded_without_split():
    adata = screen()
    sg.pp.coexpression_graph(adata)
    before = adata.varp[KEY].copy()
    x = adata.X.toarray()
    doubles = adata.obs["scgears_condition"].astype(str).str.contains("+", regex=False).to_numpy()
    x[doubles] = np.random.default_rng(2).exponential(size=(int(doubles.sum()), adata.n_vars))
    adata.X = sp.csr_matrix(x)
    sg.pp.coexpression_graph(adata)
    assert (adata.varp[KEY] != before).nnz == 0


def test_sparse_dense_and_backed_agree(tmp_path):
    adata = screen()
    sg.pp.split_perturbations(adata, kind="custom", test_conditions=["D", "C+D"])
    graphs = []
    for dense in (False, True):
        copy = adata.copy()
        if dense:
            copy.X = copy.X.toarray()
        path = tmp_path / f"{dense}.h5ad"
        copy.write_h5ad(path)
        sg.pp.coexpression_graph(copy)
        graphs.append(copy.varp[KEY])
        backed = ad.read_h5ad(path, backed="r")
        sg.pp.coexpression_graph(backed)
        graphs.append(backed.varp[KEY])
        backed.file.close()
    for graph in graphs[1:]:
        np.testing.assert_array_equal(graph.indptr, graphs[0].indptr)
        np.testing.assert_array_equal(graph.indices, graphs[0].indices)
        np.testing.assert_allclose(graph.data, graphs[0].data, atol=1e-6)


def test_copy_of_backed_data_is_refused_before_work(tmp_path, monkeypatch):
    adata = screen()
    sg.pp.register_perturbations(adata, "p", control="ctrl")
    sg.pp.split_perturbations(adata, kind="custom", test_conditions=["D", "C+D"])
    adata.write_h5ad(tmp_path / "screen.h5ad")
    backed = ad.read_h5ad(tmp_path / "screen.h5ad", backed="r")

    def must_not_run(*args, **kwargs):
        raise AssertionError("the graph was computed before the copy was refused")

    monkeypatch.setattr(_coexpression, "_correlation_graph", must_not_run)
    functions = {
        "coexpression_graph": lambda: sg.pp.coexpression_graph(backed, copy=True),
        "register_perturbations": lambda: sg.pp.register_perturbations(backed, "p", copy=True),
        "rank_perturbation_genes": lambda: sg.pp.rank_perturbation_genes(backed, copy=True),
        "split_perturbations": lambda: sg.pp.split_perturbations(backed, copy=True),
        "perturbation_graph": lambda: sg.pp.perturbation_graph(backed, copy=True),
    }
    for name, call in functions.items():
        with pytest.raises(ValueError, match=rf"{name}\(copy=True\) cannot copy .* backed"):
            call()
    assert KEY not in backed.varp
    backed.file.close()


def test_chunked_accumulation_matches(monkeypatch):
    # small cell chunks and gene blocks exercise the paths a 20,000-gene screen takes
    adata = screen(n_genes=23)
    sg.pp.coexpression_graph(adata, n_neighbors=6, threshold=0.1)
    whole = adata.varp[KEY].toarray()
    monkeypatch.setattr(_coexpression, "_CELL_CHUNK", 7)
    monkeypatch.setattr(_coexpression, "_BLOCK_BYTES", 8 * 23 * 5)  # blocks of 5 genes
    sg.pp.coexpression_graph(adata, n_neighbors=6, threshold=0.1)
    np.testing.assert_allclose(adata.varp[KEY].toarray(), whole, atol=1e-6)


def test_constant_gene_keeps_only_its_self_edge():
    adata = screen()
    x = adata.X.toarray()
    x[:, 3] = 2.0
    x[:, 4] = 0.0
    adata.X = sp.csr_matrix(x)
    sg.pp.coexpression_graph(adata, threshold=0.0)
    graph = adata.varp[KEY].toarray()
    for gene in (3, 4):
        assert graph[gene].tolist() == [1.0 if j == gene else 0.0 for j in range(adata.n_vars)]
        assert graph[:, gene].sum() == 1.0
    assert np.isfinite(graph).all()


def test_no_neighbours_gives_identity():
    adata = screen()
    sg.pp.coexpression_graph(adata, n_neighbors=0)
    assert (adata.varp[KEY] != sp.identity(adata.n_vars)).nnz == 0


def test_errors_write_nothing():
    adata = screen()
    with pytest.raises(ValueError, match="n_neighbors must be >= 0, got -1"):
        sg.pp.coexpression_graph(adata, n_neighbors=-1)
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\), got 1.5"):
        sg.pp.coexpression_graph(adata, threshold=1.5)
    with pytest.raises(KeyError, match="register_perturbations"):
        sg.pp.coexpression_graph(adata, condition_key="nope")
    small = adata[adata.obs["p"].isin(["ctrl", "A+B"])][:2].copy()
    with pytest.raises(ValueError, match="Only 2 control or training single-perturbation cells"):
        sg.pp.coexpression_graph(small)
    assert KEY not in adata.varp
    assert KEY not in small.varp


def test_copy_leaves_input_unchanged():
    adata = screen()
    out = sg.pp.coexpression_graph(adata, copy=True)
    assert out is not adata
    assert KEY not in adata.varp
    assert KEY not in adata.uns
    assert_invariants(out.varp[KEY], 20, 0.4)


def test_h5ad_round_trip(tmp_path):
    adata = screen()
    sg.pp.coexpression_graph(adata, n_neighbors=5, threshold=0.3)
    adata.write_h5ad(tmp_path / "g.h5ad")
    back = ad.read_h5ad(tmp_path / "g.h5ad")
    assert sp.issparse(back.varp[KEY])
    assert (back.varp[KEY] != adata.varp[KEY]).nnz == 0
    assert back.uns[KEY]["params"]["n_neighbors"] == 5


def test_norman(norman):
    sg.pp.register_perturbations(norman, "condition", control="control")
    sg.pp.split_perturbations(norman, kind="simulation", seed=1)
    sg.pp.coexpression_graph(norman)
    graph = norman.varp[KEY]
    assert_invariants(graph, 20, 0.4)
    assert graph.nnz > norman.n_vars
    np.testing.assert_allclose(
        graph.toarray(), expected_graph(selected(norman, "scgears_split"), 20, 0.4), atol=1e-5
    )

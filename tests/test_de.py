"""rank_perturbation_genes: GEARS' DE gene lists (scanpy t-test, |score|, non-dropout rules)."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
from scipy import stats

import scgears as sg

KEY = "scgears_de"
LISTS = ("top_genes", "top_non_dropout_genes", "top_non_zero_genes")

# Three control cells and three cells of condition "A", one column per gene. Welch t of A vs ctrl:
# dropout -6.93 (zero in A, expressed in ctrl), up 4.90, down -2.32, weak 0.61, both_zero 0 (0/0).
HAND = {
    "weak": ([1, 2, 3], [1.5, 2.5, 3.5]),
    "both_zero": ([0, 0, 0], [0, 0, 0]),
    "down": ([2, 3, 4], [1, 2, 1.5]),
    "dropout": ([3, 4, 5], [0, 0, 0]),
    "up": ([1, 2, 3], [5, 6, 7]),
}


def hand_adata(sparse: bool = True) -> ad.AnnData:
    ctrl = np.array([v[0] for v in HAND.values()], dtype=np.float32).T
    cond = np.array([v[1] for v in HAND.values()], dtype=np.float32).T
    x = np.vstack([ctrl, cond])
    adata = ad.AnnData(
        X=sp.csr_matrix(x) if sparse else x,
        obs=pd.DataFrame({"p": ["control"] * 3 + ["A"] * 3}, index=[f"c{i}" for i in range(6)]),
        var=pd.DataFrame(index=list(HAND)),
    )
    sg.pp.register_perturbations(adata, "p")
    return adata


def test_hand_example_welch_order():
    # the expected order below is the Welch t ranking, checked here with scipy
    t = {g: stats.ttest_ind(b, a, equal_var=False).statistic for g, (a, b) in HAND.items()}
    t["both_zero"] = 0.0
    assert sorted(t, key=lambda g: -abs(t[g])) == ["dropout", "up", "down", "weak", "both_zero"]

    adata = hand_adata()
    sg.pp.rank_perturbation_genes(adata, n_genes=5)
    de = adata.uns[KEY]
    assert list(de["top_genes"]["A"]) == ["dropout", "up", "down", "weak", "both_zero"]
    # a gene zero in the condition but expressed in control is a drop-out: excluded;
    # a gene zero in both is not: kept
    assert list(de["top_non_dropout_genes"]["A"]) == ["up", "down", "weak", "both_zero"]
    assert list(de["top_non_zero_genes"]["A"]) == ["up", "down", "weak"]
    assert set(de["top_genes"]) == {"A"}  # no list for the control


def test_lists_are_truncated_after_filtering():
    adata = hand_adata()
    sg.pp.rank_perturbation_genes(adata, n_genes=3)
    de = adata.uns[KEY]
    assert list(de["top_genes"]["A"]) == ["dropout", "up", "down"]
    assert list(de["top_non_dropout_genes"]["A"]) == ["up", "down", "weak"]
    assert list(de["top_non_zero_genes"]["A"]) == ["up", "down", "weak"]


def test_hand_example_matches_scanpy():
    adata = hand_adata()
    sg.pp.rank_perturbation_genes(adata, n_genes=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.tl.rank_genes_groups(
            adata, "scgears_condition", reference="ctrl", method="t-test", rankby_abs=True,
            n_genes=adata.n_vars, use_raw=False,
        )  # fmt: skip
    assert list(adata.uns["rank_genes_groups"]["names"]["A"]) == list(
        adata.uns[KEY]["top_genes"]["A"]
    )


def test_difference_without_variance_ranks_first_as_in_scanpy():
    # constant in both groups but different: Welch t is infinite, scanpy ranks such genes first
    adata = hand_adata()
    constant = np.array([[1], [1], [1], [2], [2], [2]], dtype=np.float32)
    adata = ad.concat(
        [adata, ad.AnnData(sp.csr_matrix(constant), obs=adata.obs, var=pd.DataFrame(index=["c"]))],
        axis=1,
        merge="same",
    )
    sg.pp.rank_perturbation_genes(adata, n_genes=2)
    assert list(adata.uns[KEY]["top_genes"]["A"]) == ["c", "dropout"]


def test_returns_gene_names_and_params():
    adata = hand_adata()
    assert sg.pp.rank_perturbation_genes(adata) is None
    de = adata.uns[KEY]
    assert de["params"] == {
        "n_genes": 20,
        "layer": "X",
        "method": "t-test",
        "reference": "ctrl",
        "condition_key": "scgears_condition",
    }
    for name in LISTS:
        genes = de[name]["A"]
        assert genes.dtype.kind in "UO"
        assert set(genes) <= set(adata.var_names)
    assert len(de["top_genes"]["A"]) == adata.n_vars  # n_genes larger than n_vars is clipped


def test_sparse_dense_and_backed_agree(tmp_path):
    results = []
    for sparse in (True, False):
        adata = hand_adata(sparse)
        adata.write_h5ad(tmp_path / f"{sparse}.h5ad")
        sg.pp.rank_perturbation_genes(adata, n_genes=4)
        results.append(adata.uns[KEY])
        backed = ad.read_h5ad(tmp_path / f"{sparse}.h5ad", backed="r")
        sg.pp.rank_perturbation_genes(backed, n_genes=4)
        results.append(backed.uns[KEY])
        backed.file.close()
    for other in results[1:]:
        for name in LISTS:
            assert list(other[name]["A"]) == list(results[0][name]["A"])


def test_layer():
    adata = hand_adata()
    adata.layers["counts"] = adata.X.copy()
    adata.X = sp.csr_matrix(np.ones(adata.shape, dtype=np.float32))
    sg.pp.rank_perturbation_genes(adata, layer="counts", n_genes=2)
    assert list(adata.uns[KEY]["top_genes"]["A"]) == ["dropout", "up"]
    assert adata.uns[KEY]["params"]["layer"] == "counts"
    with pytest.raises(KeyError, match=r"'missing' not found in adata\.layers"):
        sg.pp.rank_perturbation_genes(adata, layer="missing")


def test_cells_without_condition_are_ignored():
    adata = hand_adata()
    sg.pp.rank_perturbation_genes(adata, n_genes=5)
    expected = adata.uns[KEY]
    extra = ad.AnnData(
        sp.csr_matrix(np.full((2, adata.n_vars), 50.0, dtype=np.float32)),
        obs=pd.DataFrame({"p": ["?", "?"]}, index=["x1", "x2"]),
        var=adata.var,
    )
    both = ad.concat([adata, extra])
    both.obs["scgears_condition"] = pd.Categorical(
        [*adata.obs["scgears_condition"], np.nan, np.nan], categories=["ctrl", "A"]
    )
    sg.pp.rank_perturbation_genes(both, n_genes=5)
    for name in LISTS:
        assert list(both.uns[KEY][name]["A"]) == list(expected[name]["A"])


def test_copy_leaves_input_unchanged():
    adata = hand_adata()
    out = sg.pp.rank_perturbation_genes(adata, copy=True, key_added="de")
    assert out is not adata
    assert "de" not in adata.uns
    assert list(out.uns["de"]["top_genes"]["A"])[:2] == ["dropout", "up"]


def test_errors():
    adata = hand_adata()
    with pytest.raises(ValueError, match="n_genes must be at least 1, got 0"):
        sg.pp.rank_perturbation_genes(adata, n_genes=0)
    with pytest.raises(KeyError, match="register_perturbations"):
        sg.pp.rank_perturbation_genes(adata, condition_key="missing")
    one_control = adata[2:].copy()
    with pytest.raises(ValueError, match=r"at least 2 control cells.*has 1"):
        sg.pp.rank_perturbation_genes(one_control)
    assert KEY not in one_control.uns


def test_h5ad_round_trip(tmp_path):
    adata = hand_adata()
    sg.pp.rank_perturbation_genes(adata, n_genes=3)
    adata.write_h5ad(tmp_path / "de.h5ad")
    back = ad.read_h5ad(tmp_path / "de.h5ad").uns[KEY]
    assert back["params"]["n_genes"] == 3
    for name in LISTS:
        assert list(back[name]["A"]) == list(adata.uns[KEY][name]["A"])


def test_norman_matches_scanpy_top20(norman):
    sg.pp.register_perturbations(norman, "condition", control="control")
    sg.pp.rank_perturbation_genes(norman)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.tl.rank_genes_groups(
            norman, "scgears_condition", reference="ctrl", method="t-test", rankby_abs=True,
            n_genes=norman.n_vars, use_raw=False,
        )  # fmt: skip
    names = norman.uns["rank_genes_groups"]["names"]
    de = norman.uns[KEY]
    conditions = [c for c in norman.obs["scgears_condition"].cat.categories if c != "ctrl"]
    assert sorted(de["top_genes"]) == sorted(conditions)
    for c in conditions:
        assert list(de["top_genes"][c]) == list(names[c][:20]), c


def test_norman_non_dropout_rule(norman):
    sg.pp.register_perturbations(norman, "condition", control="control")
    sg.pp.rank_perturbation_genes(norman, n_genes=norman.n_vars)
    de = norman.uns[KEY]
    x = norman.X.toarray()
    cond = norman.obs["scgears_condition"].to_numpy()
    ctrl_mean = pd.Series(x[cond == "ctrl"].mean(axis=0), index=norman.var_names)
    for c in ("KLF1", "CBL+CNN1"):
        mean = pd.Series(x[cond == c].mean(axis=0), index=norman.var_names)
        ranking = list(de["top_genes"][c])
        keep = (mean != 0) | (ctrl_mean == 0)
        assert list(de["top_non_dropout_genes"][c]) == [g for g in ranking if keep[g]]
        assert list(de["top_non_zero_genes"][c]) == [g for g in ranking if mean[g] != 0]

"""sg.pp.perturbation_graph: GO Jaccard graph and the other knowledge sources."""

from __future__ import annotations

import gzip
import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import scgears as sg
from scgears._conditions import condition_genes

KEY = "scgears_perturbation_graph"


def _screen(var_names, conditions=("ctrl", "A")) -> ad.AnnData:
    """A registered screen with the given measured genes and conditions (expression irrelevant)."""
    obs = pd.DataFrame(
        {"scgears_condition": pd.Categorical(list(conditions))},
        index=[f"cell{i}" for i in range(len(conditions))],
    )
    return ad.AnnData(
        np.zeros((len(conditions), len(var_names)), dtype=np.float32),
        obs=obs,
        var=pd.DataFrame(index=list(var_names)),
    )


def _dense(adata, key=KEY) -> pd.DataFrame:
    """The graph as a labelled dense frame: rows = targets, columns = message sources."""
    graph = adata.uns[key]
    return pd.DataFrame(graph["graph"].toarray(), index=graph["genes"], columns=graph["genes"])


def _expected_top_k(name_to_set: dict, nodes, k: int, threshold: float) -> dict:
    """Plain-Python GEARS rule: Jaccard > threshold, k best per gene, ties by gene name."""
    expected = {}
    for target in nodes:
        a = name_to_set.get(target, set())
        scores = []
        for other in nodes:
            b = name_to_set.get(other, set())
            if other == target or not a or not b:
                continue
            score = len(a & b) / len(a | b)
            if score > threshold:
                scores.append((-score, other))
        expected[target] = {other: -s for s, other in sorted(scores)[:k]}
    return expected


def _assert_rows(adata, expected: dict) -> None:
    frame = _dense(adata)
    for target, neighbours in expected.items():
        row = frame.loc[target]
        row = row[row != 0].drop(target)
        assert set(row.index) == set(neighbours), target
        np.testing.assert_allclose(
            row[list(neighbours)].to_numpy(), list(neighbours.values()), rtol=1e-6
        )
        assert frame.loc[target, target] == 1.0


# --- GO (the default) on real data ---------------------------------------------------------------


@pytest.fixture(scope="module")
def debian_go(shared_data) -> dict[str, set[str]]:
    table = pd.read_csv(
        shared_data / "go" / "human_gene2go_orgHsEgDb_3.16.tsv.gz",
        sep="\t",
        usecols=["symbol", "go_id"],
        keep_default_na=False,
    )
    return {s: set(ids) for s, ids in table.groupby("symbol")["go_id"]}


@pytest.fixture
def norman_registered(norman):
    sg.pp.register_perturbations(norman, "condition")
    return norman


def test_go_weights_match_python_jaccard_on_norman(norman_registered, debian_go):
    adata = norman_registered
    perturbed = {
        g for c in adata.obs["scgears_condition"].cat.categories for g in condition_genes(c)
    }
    sg.pp.perturbation_graph(adata, all_genes=False)
    result = adata.uns[KEY]
    nodes = sorted(perturbed | set(adata.var_names))
    assert list(result["genes"]) == nodes
    assert perturbed <= set(result["genes"])
    # every row: exactly the 20 best Jaccard > 0.1 neighbours, weights as plain-Python sets give
    _assert_rows(adata, _expected_top_k(debian_go, nodes, k=20, threshold=0.1))
    graph = result["graph"]
    assert sp.isspmatrix_csr(graph)
    assert graph.dtype == np.float32
    assert np.diff(graph.indptr).max() <= 21
    off_diagonal = graph - sp.diags(graph.diagonal())
    assert off_diagonal.data[off_diagonal.data != 0].min() > 0.1
    assert "org.Hs.eg.db 3.16" in result["source"]


def test_go_top_k_and_threshold_parameters(norman_registered, debian_go):
    adata = norman_registered
    sg.pp.perturbation_graph(adata, all_genes=False, n_neighbors=3, threshold=0.3)
    nodes = list(adata.uns[KEY]["genes"])
    expected = _expected_top_k(debian_go, nodes, k=3, threshold=0.3)
    _assert_rows(adata, expected)
    assert max(len(v) for v in expected.values()) == 3


def test_go_isolated_genes_are_kept_listed_and_warned(norman_registered, caplog):
    adata = norman_registered
    with caplog.at_level(logging.WARNING, logger="scgears.pp._perturbation_graph"):
        sg.pp.perturbation_graph(adata, all_genes=False, genes=["NOTAGENE1"])
    result = adata.uns[KEY]
    # IER5L (a Norman perturbation) has no GO annotation: GEARS drops it, scgears keeps it
    for gene in ("NOTAGENE1", "IER5L"):
        assert gene in result["isolated"]
        i = list(result["genes"]).index(gene)
        row = result["graph"][i]
        assert row.nnz == 1
        assert row[0, i] == 1.0
    graph = result["graph"]
    lonely = (np.diff(graph.indptr) == 1) & (np.diff(graph.tocsc().indptr) == 1)
    assert set(result["isolated"]) == set(result["genes"][lonely])
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    n_isolated, n_genes = len(result["isolated"]), len(result["genes"])
    assert "2 of 32 perturbed or requested genes and " in warning
    assert f"({n_isolated} of {n_genes} graph genes in all" in warning
    assert ": IER5L, NOTAGENE1. " in warning  # only the perturbed and requested ones are named


def test_go_alias_is_looked_up_under_the_current_symbol(caplog):
    adata = _screen(["MIDEAS", "GATA1"], conditions=("ctrl", "ELMSAN1"))
    with caplog.at_level(logging.INFO, logger="scgears.pp._perturbation_graph"):
        sg.pp.perturbation_graph(adata, all_genes=False)
    frame = _dense(adata)
    # the node keeps the user's (old) name and has exactly MIDEAS's GO terms
    assert "ELMSAN1" in frame.index
    assert frame.loc["ELMSAN1", "MIDEAS"] == 1.0
    assert frame.loc["MIDEAS", "ELMSAN1"] == 1.0
    assert "ELMSAN1" not in adata.uns[KEY]["isolated"]
    assert adata.uns[KEY]["params"]["aliases"] == {"ELMSAN1": "MIDEAS"}
    assert any("ELMSAN1 -> MIDEAS" in r.getMessage() for r in caplog.records)


def test_extra_genes_become_nodes():
    adata = _screen(["GATA1"], conditions=("ctrl", "KLF1"))
    sg.pp.perturbation_graph(adata, all_genes=False, genes=["TAL1", "GATA1", "ZFPM1"])
    assert list(adata.uns[KEY]["genes"]) == ["GATA1", "KLF1", "TAL1", "ZFPM1"]
    sg.pp.perturbation_graph(adata, all_genes=False, genes="TAL1")  # a single name is one gene
    assert list(adata.uns[KEY]["genes"]) == ["GATA1", "KLF1", "TAL1"]
    sg.pp.perturbation_graph(adata, all_genes=False, genes=pd.Index(["TAL1"]))
    assert list(adata.uns[KEY]["genes"]) == ["GATA1", "KLF1", "TAL1"]


def test_go_graph_round_trips_through_h5ad(norman_registered, tmp_path):
    adata = norman_registered
    sg.pp.perturbation_graph(adata, all_genes=False, genes=["ELMSAN1"])
    adata.write_h5ad(tmp_path / "screen.h5ad")
    back = ad.read_h5ad(tmp_path / "screen.h5ad").uns[KEY]
    before = adata.uns[KEY]
    np.testing.assert_array_equal(back["genes"].astype(str), before["genes"].astype(str))
    np.testing.assert_array_equal(back["isolated"].astype(str), before["isolated"].astype(str))
    assert sp.issparse(back["graph"])
    assert (back["graph"] != before["graph"]).nnz == 0
    assert back["source"] == before["source"]
    assert back["params"] == before["params"]


def test_empty_isolated_round_trips(tmp_path):
    adata = _screen(["B"], conditions=("ctrl", "A"))
    sg.pp.perturbation_graph(adata, all_genes=False, source={"A": ["t"], "B": ["t"]})
    assert len(adata.uns[KEY]["isolated"]) == 0
    adata.write_h5ad(tmp_path / "s.h5ad")
    back = ad.read_h5ad(tmp_path / "s.h5ad").uns[KEY]
    assert len(back["isolated"]) == 0
    np.testing.assert_array_equal(back["graph"].toarray(), np.ones((2, 2)))


def test_copy_leaves_the_input_untouched(norman_registered):
    adata = norman_registered
    uns_before = set(adata.uns)
    out = sg.pp.perturbation_graph(adata, all_genes=False, copy=True)
    assert KEY not in adata.uns
    assert set(adata.uns) == uns_before
    assert KEY in out.uns
    assert sg.pp.perturbation_graph(adata, all_genes=False) is None
    assert KEY in adata.uns


# --- other sources on hand-made examples ---------------------------------------------------------

TERMS = {"A": {"t1", "t2"}, "B": {"t2", "t3"}, "C": {"t1", "t2", "t3"}, "D": {"t9"}}
# Jaccard: A-B 1/3, A-C 2/3, B-C 2/3; D shares nothing


def _terms_screen():
    return _screen(["B", "C", "D"], conditions=("ctrl", "A", "A+B"))


def test_mapping_source_hand_computed():
    adata = _terms_screen()
    sg.pp.perturbation_graph(adata, all_genes=False, source=TERMS)
    expected = np.array(
        [[1, 1 / 3, 2 / 3, 0], [1 / 3, 1, 2 / 3, 0], [2 / 3, 2 / 3, 1, 0], [0, 0, 0, 1]]
    )
    np.testing.assert_allclose(_dense(adata).to_numpy(), expected, rtol=1e-6)
    assert list(adata.uns[KEY]["isolated"]) == ["D"]
    assert "mapping" in adata.uns[KEY]["source"]


def test_mapping_source_top_k_ties_and_threshold():
    adata = _terms_screen()
    sg.pp.perturbation_graph(adata, all_genes=False, source=TERMS, n_neighbors=1)
    frame = _dense(adata)
    assert frame.loc["A"].to_dict() == {"A": 1, "B": 0, "C": pytest.approx(2 / 3), "D": 0}
    # C's two best (A and B, both 2/3) tie: the first gene in order wins
    assert frame.loc["C"].to_dict() == {"A": pytest.approx(2 / 3), "B": 0, "C": 1, "D": 0}
    sg.pp.perturbation_graph(adata, all_genes=False, source=TERMS, threshold=0.5)
    frame = _dense(adata)
    assert frame.loc["A", "B"] == 0
    assert frame.loc["B", "C"] == pytest.approx(2 / 3)
    sg.pp.perturbation_graph(adata, all_genes=False, source=TERMS, n_neighbors=0)
    np.testing.assert_array_equal(_dense(adata).to_numpy(), np.eye(4))
    # a string value is one term, not a set of characters
    sg.pp.perturbation_graph(adata, all_genes=False, source={"A": "ab", "B": "ba"})
    assert _dense(adata).loc["A", "B"] == 0


@pytest.mark.parametrize("suffix", [".gmt", ".gmt.gz"])
def test_gmt_source_hand_computed(tmp_path, suffix):
    lines = "t1\tdesc\tA\tC\nt2\t\tA\tB\tC\nt3\thttp://x\tB\tC\nt9\t\tD\n"
    path = tmp_path / f"sets{suffix}"
    if suffix.endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            fh.write(lines)
    else:
        path.write_text(lines)
    adata = _terms_screen()
    sg.pp.perturbation_graph(adata, all_genes=False, source=path)
    reference = _terms_screen()
    sg.pp.perturbation_graph(reference, all_genes=False, source=TERMS)
    np.testing.assert_array_equal(_dense(adata).to_numpy(), _dense(reference).to_numpy())
    sg.pp.perturbation_graph(adata, all_genes=False, source=str(path))  # a str path works too
    assert adata.uns[KEY]["source"] == f"GMT file sets{suffix}"


def test_gmt_source_real_msigdb_file(shared_data):
    path = shared_data / "go" / "msigdb_c5_gobp_subset_CASCADE.gmt.gz"
    sets = {}
    with gzip.open(path, "rt") as fh:
        for line in fh:
            name, _, *genes = line.rstrip("\n").split("\t")
            for gene in genes:
                sets.setdefault(gene, set()).add(name)
    nodes = ["GATA1", "KLF1", "TAL1", "SPI1", "CEBPA", "CEBPE", "MAPK1", "MAP2K6", "ZFPM1"]
    adata = _screen(nodes, conditions=("ctrl", "KLF1"))
    sg.pp.perturbation_graph(adata, all_genes=False, source=path, n_neighbors=3)
    _assert_rows(adata, _expected_top_k(sets, sorted(nodes), k=3, threshold=0.1))


def test_edge_list_source_hand_computed(caplog):
    edges = pd.DataFrame(
        {
            "source": ["TF1", "TF1", "A", "TF1", "TF2", "X"],
            "target": ["A", "B", "TF1", "C", "A", "A"],
            "weight": [0.5, -2.0, 0.1, 0.05, 1.0, 3.0],
        }
    )
    adata = _screen(["A", "B", "C"], conditions=("ctrl", "TF1", "TF2"))
    sg.pp.perturbation_graph(adata, all_genes=False, source=edges, threshold=0.1)
    frame = _dense(adata)
    # undirected, |weight|, the larger of A->TF1 (0.1) and TF1->A (0.5), C dropped (0.05 <= 0.1),
    # X is not a node
    expected = pd.DataFrame(
        [
            [1, 0, 0, 0.5, 1.0],
            [0, 1, 0, 2.0, 0],
            [0, 0, 1, 0, 0],
            [0.5, 2.0, 0, 1, 0],
            [1.0, 0, 0, 0, 1],
        ],
        index=["A", "B", "C", "TF1", "TF2"],
        columns=["A", "B", "C", "TF1", "TF2"],
    )
    pd.testing.assert_frame_equal(frame, expected.astype(np.float32))
    assert list(adata.uns[KEY]["isolated"]) == ["C"]
    # top-1: A keeps TF2 (1.0 > 0.5); TF1 keeps B (2.0)
    sg.pp.perturbation_graph(adata, all_genes=False, source=edges, n_neighbors=1)
    frame = _dense(adata)
    assert frame.loc["A"].to_dict() == {"A": 1, "B": 0, "C": 0, "TF1": 0, "TF2": 1}
    assert frame.loc["TF1"].to_dict() == {"A": 0, "B": 2, "C": 0, "TF1": 1, "TF2": 0}


def test_edge_list_without_weight_ignores_threshold():
    edges = pd.DataFrame({"source": ["TF1", "TF1"], "target": ["A", "B"]})
    adata = _screen(["A", "B"], conditions=("ctrl", "TF1"))
    sg.pp.perturbation_graph(adata, all_genes=False, source=edges, threshold=5.0, n_neighbors=1)
    frame = _dense(adata)
    assert frame.loc["TF1"].to_dict() == {"A": 1, "B": 0, "TF1": 1}  # tie: first gene in order
    assert frame.loc["B", "TF1"] == 1
    assert adata.uns[KEY]["params"]["threshold_applied"] is False


def test_collectri_edge_list_real_file(shared_data, norman_registered):
    collectri = pd.read_csv(
        shared_data / "networks" / "collectri_signed_zaggregate.tsv.gz", sep="\t"
    )
    sign = collectri["interaction"].map(
        {"upregulates-expression": 1.0, "downregulates-expression": -1.0}
    )
    edges = collectri[["source", "target"]].assign(weight=sign)
    adata = norman_registered
    sg.pp.perturbation_graph(adata, all_genes=False, source=edges)
    frame = _dense(adata)
    nodes = list(frame.index)
    node_set = set(nodes)
    partners: dict[str, set[str]] = {g: set() for g in nodes}
    for tf, target in zip(collectri["source"], collectri["target"], strict=True):
        if tf in node_set and target in node_set and tf != target:
            partners[tf].add(target)
            partners[target].add(tf)
    for gene in nodes:
        row = frame.loc[gene]
        kept = set(row.index[row != 0]) - {gene}
        # all weights are |±1| = 1: the first 20 partners in gene order
        assert kept == set(sorted(partners[gene])[:20]), gene
    off_diagonal = frame.to_numpy()[~np.eye(len(nodes), dtype=bool)]
    assert set(np.unique(off_diagonal)) <= {0.0, 1.0}
    assert "KLF1" not in adata.uns[KEY]["isolated"]  # a TF with targets among the genes


def test_matrix_and_anndata_sources_hand_computed():
    matrix = np.array([[5.0, 0.2, -0.8], [0.0, 1.0, 0.3], [0.9, 0.0, 0.0]])
    names = ["A", "B", "Z"]  # Z is not a node; C is a node the matrix does not know
    adata = _screen(["B", "C"], conditions=("ctrl", "A"))
    sg.pp.perturbation_graph(
        adata, all_genes=False, source=(sp.csr_matrix(matrix), names), threshold=0.1
    )
    expected = np.array([[1, 0.2, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    np.testing.assert_allclose(_dense(adata).to_numpy(), expected)  # direction kept
    # B only sends a message (to A): not isolated
    assert list(adata.uns[KEY]["isolated"]) == ["C"]
    sg.pp.perturbation_graph(adata, all_genes=False, source=(matrix, names), threshold=0.25)
    assert _dense(adata).loc["A", "B"] == 0

    knowledge = ad.AnnData(matrix, obs=pd.DataFrame(index=names), var=pd.DataFrame(index=names))
    sg.pp.perturbation_graph(adata, all_genes=False, source=knowledge)
    np.testing.assert_allclose(_dense(adata).to_numpy(), expected)
    assert "AnnData X" in adata.uns[KEY]["source"]

    cells = ad.AnnData(np.zeros((2, 3)), var=pd.DataFrame(index=names))
    cells.varp["net"] = matrix
    sg.pp.perturbation_graph(adata, all_genes=False, source=cells)
    np.testing.assert_allclose(_dense(adata).to_numpy(), expected)
    assert "varp['net']" in adata.uns[KEY]["source"]


# --- errors --------------------------------------------------------------------------------------


def test_errors_name_the_problem(tmp_path):
    adata = _screen(["B"])
    with pytest.raises(ValueError, match=r"Unknown source 'kegg'.*\.gmt.*edge list"):
        sg.pp.perturbation_graph(adata, all_genes=False, source="kegg")
    with pytest.raises(ValueError, match="Unknown source of type int"):
        sg.pp.perturbation_graph(adata, all_genes=False, source=3)
    missing = tmp_path / "nope.gmt"
    with pytest.raises(FileNotFoundError, match=r"nope\.gmt"):
        sg.pp.perturbation_graph(adata, all_genes=False, source=missing)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['target'\]"):
        sg.pp.perturbation_graph(
            adata, all_genes=False, source=pd.DataFrame({"source": ["A"], "tf": ["B"]})
        )
    with pytest.raises(ValueError, match="must be square"):
        sg.pp.perturbation_graph(adata, all_genes=False, source=(np.zeros((2, 3)), ["A", "B"]))
    with pytest.raises(ValueError, match="not unique"):
        sg.pp.perturbation_graph(adata, all_genes=False, source=(np.zeros((2, 2)), ["A", "A"]))
    with pytest.raises(ValueError, match="no square X"):
        sg.pp.perturbation_graph(adata, all_genes=False, source=ad.AnnData(np.zeros((2, 3))))
    with pytest.raises(ValueError, match="n_neighbors must be >= 0"):
        sg.pp.perturbation_graph(adata, all_genes=False, n_neighbors=-1)
    with pytest.raises(ValueError, match="threshold"):
        sg.pp.perturbation_graph(adata, all_genes=False, threshold=-0.1)
    unregistered = ad.AnnData(np.zeros((2, 2)))
    with pytest.raises(KeyError, match="register_perturbations"):
        sg.pp.perturbation_graph(unregistered, all_genes=False)
    assert KEY not in adata.uns


def test_all_genes_default_covers_the_go_table(norman):
    from scgears._resources import go_annotations

    sg.pp.register_perturbations(norman, "condition")
    sg.pp.perturbation_graph(norman)
    graph = norman.uns["scgears_perturbation_graph"]
    nodes = set(graph["genes"])
    assert set(go_annotations()) <= nodes
    assert set(norman.var_names) <= nodes
    assert graph["params"]["all_genes"] is True
    # KLF1's neighbours are now chosen among all annotated genes: weights are Jaccard indices
    terms = go_annotations()
    index = {g: i for i, g in enumerate(graph["genes"])}
    row = graph["graph"][index["KLF1"]]
    assert row.nnz == 21
    for j, weight in zip(row.indices, row.data, strict=True):
        other = graph["genes"][j]
        a, b = terms["KLF1"], terms[other]
        assert weight == pytest.approx(len(a & b) / len(a | b), abs=1e-6)

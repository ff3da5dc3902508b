"""The simulated screen (shapes, truth, planted interactions) and the loaders (cache, offline)."""

from __future__ import annotations

import dataclasses
import hashlib

import anndata as ad
import numpy as np
import pandas as pd
import pooch
import pytest
import requests
import scipy.sparse as sp

import scgears as sg
from scgears._conditions import condition_genes
from scgears._resources import go_annotations
from scgears.datasets import _loaders

SMALL = {"n_genes": 300, "n_perturbed_genes": 16, "n_doubles": 15, "n_cells_per_condition": 30}


@pytest.fixture(scope="module")
def _screen_cached() -> ad.AnnData:
    return sg.datasets.simulate_screen(seed=0)


@pytest.fixture
def screen(_screen_cached) -> ad.AnnData:
    """The default simulated screen (1,000 genes, 40 singles, 60 doubles, 50 cells each)."""
    return _screen_cached.copy()


def _truth(adata) -> pd.DataFrame:
    sim = adata.uns["simulation"]
    return pd.DataFrame(sim["true_means"], index=sim["conditions"], columns=adata.var_names)


def _measured_effects(adata) -> pd.DataFrame:
    """Mean X per perturbation name minus the control mean, indexed by canonical label."""
    x = adata.X.toarray()
    names = adata.obs["perturbation_name"].astype(str).to_numpy()
    labels = [n for n in adata.obs["perturbation_name"].cat.categories if n != "control"]
    control = x[names == "control"].mean(axis=0)
    rows = [x[names == n].mean(axis=0) - control for n in labels]
    return pd.DataFrame(rows, index=labels, columns=adata.var_names)


# --------------------------------------------------------------------------------------------------
# simulate_screen: layout


def test_simulate_shapes_slots_and_dtypes(screen):
    n_conditions = 40 + 60  # singles + doubles, control apart
    assert screen.shape == (5 * 50 + n_conditions * 50, 1000)
    assert sp.isspmatrix_csr(screen.X)
    assert screen.X.dtype == np.float32
    counts = screen.layers["counts"]
    assert sp.isspmatrix_csr(counts)
    assert counts.dtype == np.float32
    assert np.all(counts.data > 0)
    assert np.all(counts.data == np.round(counts.data))
    names = screen.obs["perturbation_name"]
    assert names.cat.categories[0] == "control"
    assert (names == "control").sum() == 250
    assert names.value_counts().drop("control").eq(50).all()
    assert set(screen.obs["perturbation_type"]) == {"CRISPRa"}
    np.testing.assert_allclose(screen.obs["total_counts"], counts.sum(axis=1).A1)
    assert screen.var_names.is_unique
    # pertpy's convention: "control", bare gene names, doubles as sorted "A+B"
    doubles = [c for c in names.cat.categories if "+" in c]
    assert len(doubles) == 60
    assert all(c == "+".join(sorted(c.split("+"))) for c in doubles)
    perturbed = {g for c in names.cat.categories if c != "control" for g in c.split("+")}
    assert len(perturbed) == 40
    assert perturbed <= set(screen.var_names)
    # sparse and mostly small values, like log-normalised UMI data
    assert 0.05 < counts.nnz / np.prod(counts.shape) < 0.6


def test_x_is_log1p_of_median_normalised_counts(screen):
    counts = screen.layers["counts"].toarray().astype(np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    expected = np.log1p(counts / totals * np.median(totals))
    np.testing.assert_allclose(screen.X.toarray(), expected, rtol=1e-5, atol=1e-5)
    assert screen.uns["simulation"]["params"]["target_sum"] == pytest.approx(np.median(totals))


def test_simulate_is_deterministic_per_seed():
    first = sg.datasets.simulate_screen(**SMALL, seed=7)
    again = sg.datasets.simulate_screen(**SMALL, seed=7)
    other = sg.datasets.simulate_screen(**SMALL, seed=8)
    assert (first.layers["counts"] != again.layers["counts"]).nnz == 0
    np.testing.assert_array_equal(first.X.toarray(), again.X.toarray())
    assert list(first.var_names) == list(again.var_names)
    assert first.obs["perturbation_name"].equals(again.obs["perturbation_name"])
    pd.testing.assert_frame_equal(first.uns["simulation"]["gi"], again.uns["simulation"]["gi"])
    assert list(first.var_names) != list(other.var_names)


def test_gene_symbols_are_real_and_perturbed_genes_have_go_neighbours(screen):
    go = go_annotations()
    assert all(g in go for g in screen.var_names)
    genes = screen.uns["simulation"]["genes"]
    perturbed = list(genes.index[genes["role"] == "perturbed"])

    def jaccard(a, b):
        return len(go[a] & go[b]) / len(go[a] | go[b])

    # every perturbed gene has a GO-graph neighbour (Jaccard > 0.1) among the perturbed genes
    assert all(any(jaccard(a, b) > 0.1 for b in perturbed if b != a) for a in perturbed)


def test_go_neighbours_have_similar_effects(screen):
    """The point of the simulation: genes sharing GO terms regulate the same genes alike."""
    go = go_annotations()
    truth = _truth(screen)
    genes = screen.uns["simulation"]["genes"]
    perturbed = list(genes.index[genes["role"] == "perturbed"])
    downstream = genes["role"] != "perturbed"
    effects = (truth.loc[perturbed] - truth.loc["ctrl"]).loc[:, downstream.to_numpy()].to_numpy()
    corr = np.corrcoef(effects)
    close, far = [], []
    for i, a in enumerate(perturbed):
        for j in range(i + 1, len(perturbed)):
            b = perturbed[j]
            overlap = len(go[a] & go[b]) / len(go[a] | go[b])
            (close if overlap > 0.2 else far).append(corr[i, j])
    assert np.mean(close) > np.mean(far) + 0.15


# --------------------------------------------------------------------------------------------------
# simulate_screen: ground truth and effects


def test_ground_truth_is_complete(screen):
    sim = screen.uns["simulation"]
    gi = sim["gi"]
    assert list(gi.columns) == ["subtype", "gene_a", "gene_b", "dominant", "factor"]
    doubles = [c for c in screen.obs["perturbation_name"].cat.categories if "+" in c]
    assert sorted(gi.index) == sorted(doubles)
    counts = gi["subtype"].value_counts()
    for subtype in ("synergy", "suppression", "neomorphism", "redundancy", "epistasis"):
        assert counts[subtype] == sim["params"]["n_interactions_per_subtype"] == 6
    assert counts["additive"] == 30
    epistatic = gi[gi["subtype"] == "epistasis"]
    assert all(d in (a, b) for d, a, b in epistatic[["dominant", "gene_a", "gene_b"]].values)
    assert gi.loc[gi["subtype"] == "synergy", "factor"].gt(1).all()
    assert gi.loc[gi["subtype"] == "suppression", "factor"].lt(1).all()

    conditions = list(sim["conditions"])
    assert conditions[0] == "ctrl"
    assert len(conditions) == 101
    names = [c for c in screen.obs["perturbation_name"].cat.categories if c != "control"]
    assert sorted(conditions[1:]) == sorted(names)
    assert sim["true_means"].shape == sim["true_log_fold"].shape == (101, screen.n_vars)
    np.testing.assert_array_equal(sim["true_log_fold"][0], 0)

    grn = sim["grn"]
    assert {"source", "target", "weight", "kind"} <= set(grn.columns)
    assert set(grn["kind"]) == {"programme", "mediator", "neomorphic"}
    assert set(grn["target"]) <= set(screen.var_names)
    assert (grn["weight"] != 0).all()


@pytest.mark.parametrize(("kind", "sign"), [("CRISPRa", 1), ("CRISPRi", -1)])
def test_perturbed_gene_moves_in_its_own_perturbation(kind, sign):
    adata = sg.datasets.simulate_screen(**SMALL, perturbation_type=kind, seed=1)
    effects = _measured_effects(adata)
    singles = [c for c in effects.index if "+" not in c]
    own = np.array([effects.loc[g, g] for g in singles])
    assert np.all(sign * own > 0.1)
    assert set(adata.obs["perturbation_type"]) == {kind}
    # and in doubles, each perturbed gene moves too (unless silenced by its epistatic partner)
    gi = adata.uns["simulation"]["gi"]
    for pair in gi.index[gi["subtype"] != "epistasis"]:
        assert all(sign * effects.loc[pair, g] > 0 for g in condition_genes(pair))


def test_effect_sizes_are_realistic(screen):
    truth = _truth(screen)
    effects = (truth - truth.loc["ctrl"]).drop(index="ctrl")
    genes = screen.uns["simulation"]["genes"]
    downstream = np.abs(effects.loc[:, (genes["role"] != "perturbed").to_numpy()].to_numpy())
    top = -np.sort(-downstream, axis=1)
    # most genes barely change; the top DE genes move by ~0.3-2 log units
    assert np.median((downstream > 0.1).mean(axis=1)) < 0.15
    assert 0.3 < np.median(top[:, 0]) < 3.0
    assert 0.1 < np.median(top[:, 19]) < 1.0


def test_measured_means_follow_the_truth(screen):
    truth = _truth(screen)
    true_effects = truth - truth.loc["ctrl"]
    measured = _measured_effects(screen)
    corr = [np.corrcoef(measured.loc[c], true_effects.loc[c])[0, 1] for c in measured.index]
    assert np.median(corr) > 0.8


def test_triples_are_simulated():
    adata = sg.datasets.simulate_screen(**SMALL, n_triples=4, seed=2)
    names = adata.obs["perturbation_name"].cat.categories
    assert sum(c.count("+") == 2 for c in names) == 4
    assert sum(c.count("+") == 2 for c in adata.uns["simulation"]["conditions"]) == 4


def _ols_scores(effects: pd.DataFrame, pair: str, n_top: int = 20) -> tuple[float, float]:
    """Least-squares (no intercept) magnitude and fit correlation on the pair's top genes."""
    a, b = condition_genes(pair)
    d_a, d_b, d_ab = effects.loc[a], effects.loc[b], effects.loc[pair]
    genes = set()
    for d in (d_a, d_b, d_ab):
        genes |= set(d.abs().sort_values(ascending=False).index[:n_top])
    genes = sorted(genes)
    design = np.column_stack([d_a[genes], d_b[genes]])
    coef, *_ = np.linalg.lstsq(design, d_ab[genes], rcond=None)
    fit = design @ coef
    return float(np.hypot(*coef)), float(np.corrcoef(fit, d_ab[genes])[0, 1])


def test_planted_interactions_show_in_measured_cells(screen):
    effects = _measured_effects(screen)
    gi = screen.uns["simulation"]["gi"]
    scores = pd.DataFrame(
        [_ols_scores(effects, pair) for pair in gi.index],
        index=gi.index,
        columns=["mag", "corr_fit"],
    ).join(gi["subtype"])
    median = scores.groupby("subtype").median()
    # synergy above additive (~1.4 without noise) above suppression; neomorphism fits worst
    assert median.loc["synergy", "mag"] > 1.15 * median.loc["additive", "mag"]
    assert median.loc["suppression", "mag"] < 0.8
    assert (scores.loc[scores["subtype"] == "suppression", "mag"] < 1.0).all()
    assert median.loc["neomorphism", "corr_fit"] < 0.88 < median.loc["additive", "corr_fit"]

    # redundancy: the two singles are alike; epistasis: the pair looks like its dominant single
    # (correlations over the genes that respond to any of the three, the perturbed genes apart)
    def corr(pair, first, second):
        genes = _top_genes(effects, [pair, *condition_genes(pair)])
        return np.corrcoef(effects.loc[first, genes], effects.loc[second, genes])[0, 1]

    for pair in gi.index[gi["subtype"] == "redundancy"]:
        assert corr(pair, *condition_genes(pair)) > 0.7
    for pair, row in gi[gi["subtype"] == "epistasis"].iterrows():
        masked = row["gene_b"] if row["dominant"] == row["gene_a"] else row["gene_a"]
        assert corr(pair, pair, row["dominant"]) > 0.8
        assert corr(pair, pair, masked) < 0.4


def _top_genes(effects: pd.DataFrame, labels, n_top: int = 20) -> list[str]:
    own = {g for label in labels for g in condition_genes(label)}
    genes: set[str] = set()
    for label in labels:
        ranked = effects.loc[label].drop(index=sorted(own)).abs().sort_values(ascending=False)
        genes |= set(ranked.index[:n_top])
    return sorted(genes)


# --------------------------------------------------------------------------------------------------
# simulate_screen: downstream use


def test_pp_pipeline_runs_on_the_simulation(screen):
    sg.pp.register_perturbations(screen, "perturbation_name", control="control")
    conditions = screen.obs["scgears_condition"]
    assert conditions.cat.categories[0] == "ctrl"
    assert conditions.nunique() == 101
    sg.pp.rank_perturbation_genes(screen)
    top = screen.uns["scgears_de"]["top_genes"]
    assert len(top) == 100
    assert all(len(v) == 20 for v in top.values())
    # a CRISPRa target is among the top DE genes of its own perturbation
    singles = [c for c in top if "+" not in c]
    assert np.mean([c in top[c] for c in singles]) > 0.9
    sg.pp.split_perturbations(screen, kind="simulation", seed=1)
    assert set(screen.obs["scgears_split"]) == {"train", "val", "test"}
    sg.pp.coexpression_graph(screen)
    assert screen.varp["scgears_coexpression"].shape == (1000, 1000)
    sg.pp.perturbation_graph(screen, source="go")
    graph = screen.uns["scgears_perturbation_graph"]
    perturbed = {g for c in screen.obs["scgears_condition"].cat.categories for g in c.split("+")}
    assert not perturbed & set(graph["isolated"])  # every perturbed gene has GO neighbours


def test_simulation_writes_to_h5ad(screen, tmp_path):
    path = tmp_path / "screen.h5ad"
    screen.write_h5ad(path)
    back = ad.read_h5ad(path)
    sim, original = back.uns["simulation"], screen.uns["simulation"]
    pd.testing.assert_frame_equal(sim["gi"], original["gi"])
    np.testing.assert_array_equal(sim["true_means"], original["true_means"])
    assert list(sim["conditions"]) == list(original["conditions"])
    assert sim["params"]["seed"] == 0
    assert len(sim["grn"]) == len(original["grn"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"perturbation_type": "CRISPRko"}, "perturbation_type must be one of"),
        ({"n_perturbed_genes": 5, "n_doubles": 11}, "more than the 10 pairs"),
        ({"n_genes": 50}, "n_genes=50 leaves too few target genes"),
        ({"n_doubles": 8, "n_interactions_per_subtype": 2}, "needs 10 doubles"),
        ({"n_cells_per_condition": 0}, "n_cells_per_condition must be a positive integer"),
        ({"go_consistency": 1.5}, "go_consistency must be between 0 and 1"),
        ({"synergy_factor": (0.5, 2.0)}, "synergy_factor must be a"),
        ({"suppression_factor": (0.4, 1.5)}, "suppression_factor must be a"),
        ({"interactions_on": "cells"}, "interactions_on must be 'activity' or 'expression'"),
    ],
)
def test_simulate_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sg.datasets.simulate_screen(**kwargs)


def test_no_interactions_when_too_few_doubles():
    adata = sg.datasets.simulate_screen(**{**SMALL, "n_doubles": 3}, seed=0)
    assert set(adata.uns["simulation"]["gi"]["subtype"]) == {"additive"}


# --------------------------------------------------------------------------------------------------
# Loaders: a tiny scPerturb-like file in the cache, the network blocked


def _block_network(monkeypatch):
    def refuse(self, url, output_file, pooch_instance, check_only=False):
        raise requests.exceptions.ConnectionError(f"network blocked in tests: {url}")

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", refuse)


def _tiny_screen(labels: list[str], genes: list[str], seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(2.0, size=(len(labels), len(genes))).astype(np.float32)
    counts[:, 0] += 1  # no empty cell
    obs = pd.DataFrame({"perturbation": pd.Categorical(labels)})
    obs.index = [f"c{i}" for i in range(len(labels))]
    return ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=genes))


GENES = ["CBL", "CNN1", "KLF1", "ATF6", "SPI1", "GAPDH", "ACTB", "MYC"]
SOURCES = {
    "norman2019": (
        ["control", "CBL", "CNN1_CBL", "KLF1", "control", "CBL"],
        ["control", "CBL", "CBL+CNN1", "KLF1", "control", "CBL"],
    ),
    "adamson2016": (
        ["63(mod)_pBA580", "ATF6_pDS255", "*", "SPI1_pDS031", "Gal4-4(mod)_pBA582", "ATF6_pDS255"],
        ["control", "ATF6", None, "SPI1", "control", "ATF6"],
    ),
    "replogle2022_k562_essential": (
        ["non-targeting", "MYC", "GAPDH", "non-targeting", "MYC", "ACTB"],
        ["control", "MYC", "GAPDH", "control", "MYC", "ACTB"],
    ),
}


def _cache_file(monkeypatch, tmp_path, name: str, adata: ad.AnnData, *, dense: bool = False):
    remote = _loaders.REGISTRY[name]
    path = tmp_path / remote.filename
    if dense:
        adata = adata.copy()
        adata.X = adata.X.toarray()
    adata.write_h5ad(path)
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    pinned = dataclasses.replace(remote, known_hash=f"md5:{digest}")
    monkeypatch.setitem(_loaders.REGISTRY, name, pinned)
    return path


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_loader_reads_the_cached_file_register_ready(monkeypatch, tmp_path, name):
    raw, expected = SOURCES[name]
    tiny = _tiny_screen(raw, GENES)
    _cache_file(monkeypatch, tmp_path, name, tiny, dense=name == "replogle2022_k562_essential")
    _block_network(monkeypatch)  # the verified local copy needs no network
    adata = getattr(sg.datasets, name)(data_dir=tmp_path, n_top_genes=None)

    kept = [e for e in expected if e is not None]
    assert list(adata.obs["perturbation_name"].astype(str)) == kept
    assert adata.obs["perturbation_name"].cat.categories[0] == "control"
    screen_type = "CRISPRa" if name == "norman2019" else "CRISPRi"
    assert set(adata.obs["perturbation_type"]) == {screen_type}
    rows = [i for i, e in enumerate(expected) if e is not None]
    counts = tiny.X.toarray()[rows]
    np.testing.assert_array_equal(adata.layers["counts"].toarray(), counts)
    totals = counts.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(
        adata.X.toarray(), np.log1p(counts / totals * np.median(totals)), rtol=1e-5
    )
    assert sp.isspmatrix_csr(adata.X)
    assert adata.X.dtype == np.float32
    sg.pp.register_perturbations(adata, "perturbation_name", control="control")
    assert "ctrl" in set(adata.obs["scgears_condition"])
    if name == "adamson2016":
        assert adata.obs["guide_identity"].iloc[1] == "ATF6_pDS255"


def test_loader_keeps_variable_and_perturbed_genes(monkeypatch, tmp_path):
    raw, _ = SOURCES["norman2019"]
    genes = [*GENES, *[f"G{i}" for i in range(40)]]
    _cache_file(monkeypatch, tmp_path, "norman2019", _tiny_screen(raw * 10, genes))
    _block_network(monkeypatch)
    monkeypatch.setattr(_loaders, "_READ_VALUES", 100)  # read the file in blocks of 2 cells
    adata = sg.datasets.norman2019(data_dir=tmp_path, n_top_genes=5)
    assert {"CBL", "CNN1", "KLF1"} <= set(adata.var_names)
    assert 5 <= adata.n_vars <= 8
    assert adata.layers["counts"].shape == adata.shape


def test_loader_keeps_log_normalised_data_without_counts(monkeypatch, tmp_path):
    raw, expected = SOURCES["replogle2022_k562_essential"]
    tiny = _tiny_screen(raw, GENES)
    tiny.X = tiny.X.log1p()
    _cache_file(monkeypatch, tmp_path, "replogle2022_k562_essential", tiny)
    _block_network(monkeypatch)
    adata = sg.datasets.replogle2022_k562_essential(data_dir=tmp_path, n_top_genes=None)
    assert "counts" not in adata.layers
    np.testing.assert_allclose(adata.X.toarray(), tiny.X.toarray())
    assert list(adata.obs["perturbation_name"]) == expected


def test_loader_offline_error_names_url_and_path(monkeypatch, tmp_path):
    _block_network(monkeypatch)
    remote = _loaders.REGISTRY["adamson2016"]
    with pytest.raises(sg.datasets.DatasetUnavailableError) as info:
        sg.datasets.adamson2016(data_dir=tmp_path)
    message = str(info.value)
    assert remote.urls[0] in message
    assert remote.urls[1] in message
    assert str(tmp_path / remote.filename) in message
    assert remote.known_hash in message
    assert isinstance(info.value, OSError)


def test_loader_reports_a_wrong_local_file(monkeypatch, tmp_path):
    _block_network(monkeypatch)
    remote = _loaders.REGISTRY["norman2019"]
    (tmp_path / remote.filename).write_bytes(b"not the real file")
    with pytest.raises(OSError, match="checksum is not md5:c870e6967d91c017d9da827bab183cd6"):
        sg.datasets.norman2019(data_dir=tmp_path)


def test_cache_folder_follows_argument_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SCGEARS_DATA_DIR", str(tmp_path / "env"))
    assert _loaders.data_dir() == tmp_path / "env"
    assert _loaders.data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("SCGEARS_DATA_DIR")
    assert _loaders.data_dir() == pooch.os_cache("scgears")


def test_registry_pins_every_file():
    assert set(_loaders.REGISTRY) == {"norman2019", "adamson2016", "replogle2022_k562_essential"}
    for remote in _loaders.REGISTRY.values():
        algorithm, digest = remote.known_hash.split(":")
        assert algorithm == "md5"
        assert set(digest) <= set("0123456789abcdef")
        assert len(digest) == 32
        assert remote.size > 100_000_000
        assert all(url.startswith("https://") for url in remote.urls)
        assert remote.filename in remote.urls[0]


def test_loader_rejects_bad_gene_count(tmp_path):
    with pytest.raises(ValueError, match="n_top_genes must be a positive integer"):
        sg.datasets.norman2019(n_top_genes=0, data_dir=tmp_path)


def test_interactions_on_expression_scale_the_pairs_downstream_change():
    kwargs = {"n_genes": 300, "n_cells_per_condition": 5, "seed": 4}
    planted_on = sg.datasets.simulate_screen(
        **kwargs,
        synergy_factor=(1.5, 2.0),
        suppression_factor=(0.4, 0.6),
        interactions_on="expression",
    )
    sim = planted_on.uns["simulation"]
    assert sim["params"]["interactions_on"] == "expression"
    gi = sim["gi"]
    fold = pd.DataFrame(sim["true_log_fold"], index=sim["conditions"], columns=planted_on.var_names)
    perturbed = sim["genes"].index[sim["genes"]["role"] == "perturbed"]
    for kind, (low, high) in (("synergy", (1.5, 2.0)), ("suppression", (0.4, 0.6))):
        pairs = gi.index[gi["subtype"] == kind]
        assert len(pairs) > 0
        assert gi.loc[pairs, "factor"].between(low, high).all()
    # the same screen with the interactions on activity differs only in the planted pairs
    on_activity = sg.datasets.simulate_screen(
        **kwargs, synergy_factor=(1.5, 2.0), suppression_factor=(0.4, 0.6)
    )
    other = pd.DataFrame(
        on_activity.uns["simulation"]["true_log_fold"],
        index=sim["conditions"],
        columns=planted_on.var_names,
    )
    for pair in gi.index[gi["subtype"].isin(["synergy", "suppression"])]:
        downstream = fold.columns.difference(perturbed)
        # expression: the double's network response, scaled by the factor downstream
        np.testing.assert_allclose(
            fold.loc[pair, downstream] / gi.loc[pair, "factor"],
            _unscaled(kwargs, pair)[downstream],
            rtol=1e-4,
            atol=1e-5,
        )
        assert not np.allclose(other.loc[pair, downstream], fold.loc[pair, downstream])
    additive = gi.index[gi["subtype"] == "additive"]
    pd.testing.assert_frame_equal(fold.loc[additive], other.loc[additive])


def _unscaled(kwargs, pair):
    """The double's response with its planted factor set to 1 (synergy of factor exactly 1)."""
    screen = sg.datasets.simulate_screen(
        **kwargs,
        synergy_factor=(1.0 + 1e-12, 1.0 + 1e-12),
        suppression_factor=(1.0 - 1e-12, 1.0 - 1e-12),
        interactions_on="expression",
    )
    sim = screen.uns["simulation"]
    fold = pd.DataFrame(sim["true_log_fold"], index=sim["conditions"], columns=screen.var_names)
    return fold.loc[pair]

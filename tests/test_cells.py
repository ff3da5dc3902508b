"""sg.tl.sample_cells: cells drawn from profiles with the noise of the measured cells."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

import scgears as sg

CONDITIONS = ["A", "B", "C", "A+B", "D", "E"]


def _nb_screen(seed: int = 0, n_genes: int = 60, n_cells: int = 150) -> tuple[AnnData, np.ndarray]:
    """Negative-binomial counts with known overdispersion, log-normalised as scanpy does."""
    rng = np.random.default_rng(seed)
    base = rng.lognormal(-0.5, 1.5, n_genes)  # mean counts per cell of a control cell
    base[:5] = 0.0  # genes no cell expresses
    phi = rng.uniform(0.05, 1.5, n_genes)
    labels, blocks, totals = [], [], []
    for i, condition in enumerate(["control", *CONDITIONS]):
        effect = np.ones(n_genes)
        if i:
            hit = rng.choice(np.arange(5, n_genes), 8, replace=False)
            effect[hit] = rng.choice([0.2, 4.0], 8)
        depth = rng.lognormal(0, 0.3, n_cells)
        mean = base[None, :] * effect[None, :] * depth[:, None]
        rate = rng.gamma(1 / phi[None, :], mean * phi[None, :])
        counts = rng.poisson(rate)
        blocks.append(counts)
        labels += [condition] * n_cells
    counts = np.vstack(blocks).astype(np.float32)
    totals = counts.sum(axis=1) + 200  # counts of the genes not measured
    x = sp.csr_matrix(np.log1p(counts * (1e4 / totals)[:, None]).astype(np.float32))
    obs = pd.DataFrame(
        {"perturbation_name": labels}, index=[f"cell{i}" for i in range(len(labels))]
    )
    adata = AnnData(x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))
    sg.pp.register_perturbations(adata, perturbation_key="perturbation_name")
    return adata, phi


@pytest.fixture(scope="module")
def screen():
    return _nb_screen()


@pytest.fixture
def adata(screen):
    return screen[0].copy()


def test_cells_have_the_layout_cell_eval_and_pertpy_read(adata):
    profiles = sg.tl.measured_profiles(adata, ["A", "A+B"])
    cells = sg.tl.sample_cells(adata, profiles, n_cells=40, n_control_cells=30, seed=0)
    counts = cells.obs["perturbation"].value_counts()
    assert counts.to_dict() == {"control": 30, "A": 40, "A+B": 40}
    assert list(cells.obs["scgears_condition"].cat.categories) == ["ctrl", "A", "A+B"]
    assert cells.obs.loc[cells.obs["perturbation"] == "A+B", "n_perturbed_genes"].eq(2).all()
    assert cells.obs_names.is_unique
    assert list(cells.var_names) == list(profiles.var_names)
    assert sp.issparse(cells.X)
    assert cells.X.dtype == np.float32
    assert cells.X.min() >= 0
    counts_layer = cells.layers["counts"].toarray()
    np.testing.assert_array_equal(counts_layer, np.round(counts_layer))
    # X is log1p of the scaled counts, zero exactly where the count is zero
    np.testing.assert_array_equal(cells.X.toarray() > 0, counts_layer > 0)
    assert cells.uns["scgears_cells"]["control_cells"] == "sampled"
    assert (cells.var["overdispersion"] >= 0).all()


def test_same_seed_same_cells_and_input_untouched(adata):
    profiles = sg.tl.measured_profiles(adata, ["B", "C"])
    before_x, before_obs = adata.X.copy(), adata.obs.copy()
    first = sg.tl.sample_cells(adata, profiles, n_cells=20, seed=3)
    second = sg.tl.sample_cells(adata, profiles, n_cells=20, seed=3)
    other = sg.tl.sample_cells(adata, profiles, n_cells=20, seed=4)
    assert (first.X != second.X).nnz == 0
    assert (first.X != other.X).nnz > 0
    assert (before_x != adata.X).nnz == 0
    pd.testing.assert_frame_equal(adata.obs, before_obs)
    assert "delta" in profiles.layers
    assert profiles.n_obs == 2


def test_mean_of_sampled_cells_is_the_profile(adata):
    profiles = sg.tl.measured_profiles(adata, ["A", "D"])
    cells = sg.tl.sample_cells(adata, profiles, n_cells=4000, n_control_cells=4000, seed=0)
    x = cells.X.toarray()
    for condition in ["A", "D"]:
        mean = x[(cells.obs["scgears_condition"] == condition).to_numpy()].mean(axis=0)
        target = profiles[condition].X.ravel()
        sd = x.std(axis=0) / np.sqrt(4000)
        # within 5 standard errors (plus the table's 1e-3), gene by gene
        assert np.all(np.abs(mean - target) <= 5 * sd + 1e-3), np.abs(mean - target).max()
    control = x[(cells.obs["perturbation"] == "control").to_numpy()]
    target = profiles.var["control_mean"].to_numpy()
    assert np.all(np.abs(control.mean(axis=0) - target) <= 5 * sd + 1e-3)
    # genes that no measured cell expresses stay exactly zero
    assert np.all(x[:, :5] == 0)


def test_overdispersion_is_recovered(screen):
    adata, phi = screen
    profiles = sg.tl.measured_profiles(adata, ["A"])
    cells = sg.tl.sample_cells(adata, profiles, n_cells=5, seed=0)
    fitted = cells.var["overdispersion"].to_numpy()
    expressed = np.asarray((adata.X > 0).sum(axis=0)).ravel() >= 300
    assert expressed.sum() >= 20
    r = np.corrcoef(fitted[expressed], phi[expressed])[0, 1]
    assert r > 0.8, r
    assert np.median(np.abs(fitted[expressed] - phi[expressed]) / phi[expressed]) < 0.3


def test_no_change_gives_no_de_genes(adata):
    """Cells sampled at the control mean are not called different from the control cells."""
    sc = pytest.importorskip("scanpy")
    profiles = sg.tl.measured_profiles(adata, ["A"])
    profiles.X = np.tile(profiles.var["control_mean"].to_numpy(np.float32), (1, 1))
    cells = sg.tl.sample_cells(adata, profiles, n_cells=150, n_control_cells=150, seed=1)
    sc.tl.rank_genes_groups(cells, "perturbation", reference="control", method="wilcoxon")
    assert (cells.uns["rank_genes_groups"]["pvals_adj"]["A"] < 0.05).sum() <= 1


def test_a_control_row_is_skipped(adata):
    with_control = sg.tl.measured_profiles(adata, ["ctrl", "A"])
    cells = sg.tl.sample_cells(adata, with_control, n_cells=10, n_control_cells=20, seed=0)
    assert cells.obs["perturbation"].value_counts().to_dict() == {"control": 20, "A": 10}
    assert with_control.n_obs == 2


def test_stored_zeros_are_not_counts(adata):
    profiles = sg.tl.measured_profiles(adata, ["A"])
    first = sg.tl.sample_cells(adata, profiles, n_cells=30, seed=0)
    x = adata.X.tocoo()
    dense = adata.X.toarray()
    rows, cols = np.nonzero(dense == 0)
    rows, cols = rows[::7], cols[::7]
    stored = sp.csr_matrix(
        (
            np.concatenate([x.data, np.zeros(len(rows), np.float32)]),
            (np.concatenate([x.row, rows]), np.concatenate([x.col, cols])),
        ),
        shape=x.shape,
    )
    assert stored.nnz > adata.X.nnz  # explicit zeros, as some writers leave them
    adata.X = stored
    second = sg.tl.sample_cells(adata, profiles, n_cells=30, seed=0)
    assert (first.X != second.X).nnz == 0


def test_test_cells_are_never_read(adata):
    sg.pp.split_perturbations(adata, kind="custom", test_conditions=["C", "D"])
    profiles = sg.tl.measured_profiles(adata, ["A", "B"])
    first = sg.tl.sample_cells(adata, profiles, n_cells=30, seed=0)
    changed = adata.copy()
    test = (changed.obs["scgears_split"] == "test").to_numpy()
    x = changed.X.toarray()
    x[test] = np.log1p(np.round(np.expm1(x[test]) * 3))  # other counts in every test cell
    changed.X = sp.csr_matrix(x)
    second = sg.tl.sample_cells(changed, profiles, n_cells=30, seed=0)
    assert (first.X != second.X).nnz == 0


def test_measured_control_cells_and_profile_columns(adata):
    profiles = sg.tl.measured_profiles(adata, ["A", "B"])
    profiles.obs["subgroup"] = ["unseen_single", "combo_seen1"]
    cells = sg.tl.sample_cells(
        adata, profiles, control_cells="measured", n_control_cells=25, seed=0
    )
    control = cells[cells.obs["perturbation"] == "control"]
    assert control.n_obs == 25
    # the real control cells themselves, their counts recovered
    real = adata[adata.obs["perturbation_name"] == "control"].X.toarray()
    rows = {tuple(np.round(r, 5)) for r in real}
    assert all(tuple(np.round(r, 5)) in rows for r in control.X.toarray())
    # default: as many cells as measured (profiles' n_cells), the subgroup copied to the cells
    assert (cells.obs["perturbation"] == "A").sum() == 150
    assert set(cells.obs.loc[cells.obs["perturbation"] == "B", "subgroup"]) == {"combo_seen1"}


def test_negative_profile_values_count_as_zero(adata, caplog):
    profiles = sg.tl.measured_profiles(adata, ["A"])
    profiles.X = profiles.X - 0.5
    with caplog.at_level("WARNING", logger="scgears"):
        cells = sg.tl.sample_cells(adata, profiles, n_cells=10, seed=0)
    assert "negative" in caplog.text
    assert cells.X.min() >= 0


def test_bad_input_errors(adata):
    profiles = sg.tl.measured_profiles(adata, ["A"])
    with pytest.raises(TypeError, match="profile AnnData"):
        sg.tl.sample_cells(adata, adata)
    with pytest.raises(ValueError, match="n_cells=0"):
        sg.tl.sample_cells(adata, profiles, n_cells=0)
    with pytest.raises(ValueError, match="control_cells='real'"):
        sg.tl.sample_cells(adata, profiles, control_cells="real")
    other = profiles.copy()
    other.var_names = [f"x{i}" for i in range(other.n_vars)]
    with pytest.raises(ValueError, match="not genes of adata"):
        sg.tl.sample_cells(adata, other)
    scaled = adata.copy()
    scaled.X = sp.csr_matrix(scaled.X.toarray() * 1.37)
    with pytest.raises(ValueError, match="not log1p of scaled counts"):
        sg.tl.sample_cells(scaled, profiles)


def test_norman_de_genes_in_the_measured_range(norman):
    """On real cells: DE genes per condition of cells sampled from measured profiles."""
    sc = pytest.importorskip("scanpy")
    sg.pp.register_perturbations(norman, perturbation_key="condition", control="control")
    sg.pp.split_perturbations(norman, kind="simulation", seed=1)
    split = norman.obs["scgears_split"].astype(str)
    test = sorted(set(norman.obs.loc[split == "test", "scgears_condition"].astype(str)))
    profiles = sg.tl.measured_profiles(norman, test)
    cells = sg.tl.sample_cells(norman, profiles, seed=0)
    real = norman[norman.obs["scgears_condition"].isin([*test, "ctrl"])].copy()

    def n_de(data, key):
        sc.tl.rank_genes_groups(
            data, key, reference=data.obs[key].cat.categories[0], method="wilcoxon"
        )
        adjusted = data.uns["rank_genes_groups"]["pvals_adj"]
        return pd.Series({g: int((adjusted[g] < 0.05).sum()) for g in adjusted.dtype.names})

    real.obs["scgears_condition"] = real.obs["scgears_condition"].cat.reorder_categories(
        ["ctrl", *[c for c in real.obs["scgears_condition"].cat.categories if c != "ctrl"]]
    )
    measured = n_de(real, "scgears_condition")
    sampled = n_de(cells, "scgears_condition")[measured.index]
    # measured: about 2 DE genes per condition (0-4); the pseudo-cells of before gave 290
    assert abs(sampled.mean() - measured.mean()) <= 1.0, (sampled.mean(), measured.mean())
    assert sampled.max() <= 2 * measured.max() + 2

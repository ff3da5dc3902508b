"""sg.pl: what each plot draws (boxes, markers, cells, bars, ticks), show/save handling, errors."""

from __future__ import annotations

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")  # never open a window; must precede pyplot

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from scipy.stats import spearmanr

import scgears as sg
from scgears._conditions import as_condition
from scgears._profiles import make_profiles, measured_profiles

GENES = ["g0", "g1", "g2", "g3", "g4"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _markers(ax) -> list[PathCollection]:
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def _ticks(labels) -> list[str]:
    return [t.get_text() for t in labels]


@pytest.fixture
def cells() -> ad.AnnData:
    """10 control cells, 6 cells of A and 6 of A+B over 5 genes, DE genes written by hand."""
    rng = np.random.default_rng(0)
    conditions = ["ctrl"] * 10 + ["A"] * 6 + ["A+B"] * 6
    X = rng.poisson(2.0, (len(conditions), len(GENES))).astype(np.float32)
    X[10:16, 1] += 3.0  # A raises g1
    X[16:, 3] += 4.0  # A+B raises g3
    adata = ad.AnnData(X=X, var=pd.DataFrame(index=GENES))
    adata.obs["scgears_condition"] = pd.Categorical(conditions)
    de = {"A": np.array(["g1", "g4", "g0", "g2"]), "A+B": np.array(["g3", "g1", "g0"])}
    adata.uns["scgears_de"] = {"top_genes": de, "top_non_dropout_genes": de}
    return adata


@pytest.fixture
def prediction(cells) -> ad.AnnData:
    """Measured means plus a known offset, with a known uncertainty per condition and gene."""
    measured = measured_profiles(cells, ["A", "A+B"])
    offset = np.array([[0.1, -0.2, 0.3, 0.0, 0.5], [0.4, 0.0, -0.1, 0.2, 0.0]])
    sd = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8, 0.9, 1.0]])
    return make_profiles(
        ["A", "A+B"],
        GENES,
        measured.X + offset,
        measured.var["control_mean"].to_numpy(),
        source="test",
        uncertainty=sd,
    )


def _control_baseline(profiles: ad.AnnData) -> ad.AnnData:
    control = profiles.var["control_mean"].to_numpy()
    return make_profiles(
        list(profiles.obs_names),
        profiles.var_names,
        np.tile(control, (profiles.n_obs, 1)),
        control,
        source="control",
    )


# ---------------------------------------------------------------------------- perturbation


@pytest.mark.parametrize("condition", ["A+B", "B+A", ["B", "A"], "A+B+ctrl"])
def test_perturbation_boxes_and_markers_match_the_data(cells, prediction, condition, tmp_path):
    path = tmp_path / "perturbation.png"
    ax = sg.pl.perturbation(cells, prediction, condition, show=False, save=path)
    assert isinstance(ax, Axes)
    assert path.stat().st_size > 5_000

    genes = ["g3", "g1", "g0"]
    assert _ticks(ax.get_xticklabels()) == genes
    columns = [GENES.index(g) for g in genes]
    control_mean = cells.X[:10].mean(axis=0)
    change = cells.X[16:][:, columns] - control_mean[columns]
    assert len(ax.patches) == len(genes)  # one box per gene
    for box, values in zip(ax.patches, change.T, strict=True):
        low, high = box.get_path().vertices[:, 1].min(), box.get_path().vertices[:, 1].max()
        np.testing.assert_allclose([low, high], np.percentile(values, [25, 75]), atol=1e-5)

    (predicted,) = _markers(ax)
    expected = prediction.layers["delta"][1, columns]
    np.testing.assert_allclose(predicted.get_offsets()[:, 1], expected, atol=1e-6)
    np.testing.assert_allclose(predicted.get_offsets()[:, 0], [1, 2, 3])
    assert ax.get_title() == "A+B (6 cells)"
    assert any(line.get_ydata()[0] == 0 for line in ax.lines)  # the zero line
    legend = _ticks(ax.get_legend().get_texts())
    assert legend == ["measured cells", "predicted (± s.d.)"]
    # the legend says what the boxes and the error bars are (issue 11 item 7)
    title = ax.get_legend().get_title().get_text()
    assert "quartiles, whiskers 1.5 IQR" in title
    assert "error bars: prediction ± 1 s.d." in title


def test_perturbation_draws_each_baseline_and_honours_n_genes(cells, prediction):
    baseline = _control_baseline(prediction)
    ax = sg.pl.perturbation(
        cells,
        prediction,
        "A",
        baselines={"no change": baseline, "copy": prediction},
        n_genes=2,
        show=False,
    )
    assert _ticks(ax.get_xticklabels()) == ["g1", "g4"]
    markers = _markers(ax)
    assert [len(m.get_offsets()) for m in markers] == [2, 2, 2]
    np.testing.assert_allclose(markers[1].get_offsets()[:, 1], [0.0, 0.0], atol=1e-6)
    legend = _ticks(ax.get_legend().get_texts())
    assert legend == ["measured cells", "predicted (± s.d.)", "no change", "copy"]


def test_perturbation_without_prediction_shows_measured_cells_only(cells):
    ax = sg.pl.perturbation(cells, None, "A", show=False)
    assert len(ax.patches) == 4
    assert _markers(ax) == []
    assert "error bars" not in ax.get_legend().get_title().get_text()  # none drawn


def test_perturbation_reads_only_the_condition_and_control_rows(cells, prediction, monkeypatch):
    import scgears.pl._perturbation as module

    requested = []
    real_read_rows = module.read_rows

    def spy(matrix, rows, **kwargs):
        requested.append(np.asarray(rows))
        return real_read_rows(matrix, rows, **kwargs)

    monkeypatch.setattr(module, "read_rows", spy)
    sg.pl.perturbation(cells, prediction, "A", show=False)
    assert sorted(np.concatenate(requested).tolist()) == list(range(16))


def test_perturbation_errors_name_the_problem(cells, prediction):
    with pytest.raises(ValueError, match=r"No cells of condition 'C'"):
        sg.pl.perturbation(cells, prediction, "C", show=False)
    with pytest.raises(ValueError, match="is the control"):
        sg.pl.perturbation(cells, prediction, "ctrl", show=False)
    with pytest.raises(KeyError, match=r"Condition 'A' is not in baselines\['mean'\]"):
        sg.pl.perturbation(
            cells, prediction, "A", baselines={"mean": prediction["A+B"].copy()}, show=False
        )
    with pytest.raises(TypeError, match="profile AnnData"):
        sg.pl.perturbation(cells, cells, "A", show=False)
    with pytest.raises(TypeError, match="save must be a file path"):
        sg.pl.perturbation(cells, prediction, "A", show=False, save=True)
    with pytest.raises(ValueError, match="n_genes must be at least 1"):
        sg.pl.perturbation(cells, prediction, "A", n_genes=0, show=False)
    del cells.uns["scgears_de"]
    with pytest.raises(KeyError, match="rank_perturbation_genes"):
        sg.pl.perturbation(cells, prediction, "A", show=False)


def test_perturbation_on_norman_accepts_a_bare_gene_name(norman, tmp_path):
    # GEARS issue #49: plot_perturbation("PARK7") raised KeyError; a single gene must just work
    sg.pp.register_perturbations(norman, "condition")
    sg.pp.rank_perturbation_genes(norman)
    predicted = measured_profiles(norman, ["KLF1", "CBL+CNN1"])
    for condition in ("KLF1", ["CNN1", "CBL"]):
        label = as_condition(condition)
        path = tmp_path / f"{label}.png"
        ax = sg.pl.perturbation(norman, predicted, condition, show=False, save=path)
        assert path.stat().st_size > 20_000
        assert len(ax.patches) == 20
        expected = list(norman.uns["scgears_de"]["top_non_dropout_genes"][label])
        assert _ticks(ax.get_xticklabels()) == expected
        assert ax.get_title() == f"{label} (100 cells)"


# ---------------------------------------------------------------------------- show / save


def test_show_and_save_follow_scanpy(cells, prediction, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(True))

    assert sg.pl.perturbation(cells, prediction, "A", show=True) is None
    assert shown == [True]
    # show=None: shown when the function made the figure and nothing is saved ...
    assert sg.pl.perturbation(cells, prediction, "A") is None
    assert len(shown) == 2
    # ... but not when drawing on the caller's axes or saving
    _, ax = plt.subplots()
    assert sg.pl.perturbation(cells, prediction, "A", ax=ax) is ax
    path = tmp_path / "new" / "folder" / "plot.pdf"
    assert isinstance(sg.pl.perturbation(cells, prediction, "A", save=path), Axes)
    assert len(shown) == 2
    assert path.read_bytes()[:4] == b"%PDF"


def test_import_scgears_does_not_import_matplotlib():
    code = "import sys, scgears; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------------- gi_map


@pytest.fixture
def gi() -> pd.DataFrame:
    """Four genes: A and C both synergise with B, everything else is additive."""
    table = pd.DataFrame(
        {
            "mag": [2.0, 1.0, 1.0, 2.0, 1.0, 0.6],
            "neomorphism": [True, False, False, False, False, False],
            "redundancy": [False, False, False, True, False, True],
            "epistasis": [False, False, False, False, False, False],
        },
        index=["A+B", "A+C", "A+D", "B+C", "B+D", "C+D"],
    )
    table["synergy"] = table["mag"] > 1.15
    table["suppression"] = table["mag"] < 1.0
    return table


def test_gi_map_draws_a_symmetric_map_centred_at_one(gi, tmp_path):
    path = tmp_path / "gi.png"
    ax = sg.pl.gi_map(gi, order="alphabetical", show=False, save=path)
    assert isinstance(ax, Axes)
    assert path.stat().st_size > 5_000
    assert _ticks(ax.get_xticklabels()) == ["A", "B", "C", "D"]
    assert _ticks(ax.get_yticklabels()) == ["A", "B", "C", "D"]

    (image,) = ax.get_images()
    values = np.ma.filled(image.get_array(), np.nan)
    expected = np.array(
        [
            [np.nan, 2.0, 1.0, 1.0],
            [2.0, np.nan, 2.0, 1.0],
            [1.0, 2.0, np.nan, 0.6],
            [1.0, 1.0, 0.6, np.nan],
        ]
    )
    np.testing.assert_allclose(values, expected)
    assert image.norm(1.0) == pytest.approx(0.5)  # the centre colour is "additive"
    assert image.norm(2.0) == pytest.approx(1.0)

    neomorphism, redundancy, epistasis = _markers(ax)
    assert len(neomorphism.get_offsets()) == 2  # one pair, both triangles
    assert len(redundancy.get_offsets()) == 4
    assert len(epistasis.get_offsets()) == 0
    rows = sorted(np.round(neomorphism.get_offsets()[:, 1]).astype(int).tolist())
    assert rows == [0, 1]  # A+B: rows A and B
    legend = _ticks(ax.get_legend().get_texts())
    assert legend == ["no data", "neomorphism", "redundancy", "epistasis"]
    assert len(ax.figure.axes) == 2  # the heatmap and its colour bar


def test_gi_map_clusters_genes_that_interact_alike(gi):
    ax = sg.pl.gi_map(gi, show=False)
    order = _ticks(ax.get_xticklabels())
    assert sorted(order) == ["A", "B", "C", "D"]
    assert abs(order.index("A") - order.index("C")) == 1  # identical magnitude profiles


def test_gi_map_restricts_to_genes_in_the_given_order(gi):
    ax = sg.pl.gi_map(gi, genes=["C", "A", "B"], order=None, show=False)
    assert _ticks(ax.get_xticklabels()) == ["C", "A", "B"]
    (image,) = ax.get_images()
    assert image.get_array().shape == (3, 3)


def test_gi_map_ignores_rows_that_are_not_pairs(gi):
    table = pd.concat([gi, pd.DataFrame({"mag": [1.2]}, index=["A"])])
    ax = sg.pl.gi_map(table, order="alphabetical", show=False)
    assert len(ax.get_xticklabels()) == 4


def test_gi_map_errors(gi):
    with pytest.raises(KeyError, match="'mag' column"):
        sg.pl.gi_map(gi.drop(columns="mag"), show=False)
    with pytest.raises(KeyError, match=r"Genes \['E'\] are in no pair"):
        sg.pl.gi_map(gi, genes=["A", "E"], show=False)
    with pytest.raises(ValueError, match="several rows for the pairs"):
        sg.pl.gi_map(pd.concat([gi, gi.iloc[:1].rename(index={"A+B": "B+A"})]), show=False)
    with pytest.raises(ValueError, match="order must be"):
        sg.pl.gi_map(gi, order="size", show=False)
    with pytest.raises(ValueError, match="no gene pairs"):
        sg.pl.gi_map(pd.DataFrame({"mag": [1.0]}, index=["A"]), show=False)


# ---------------------------------------------------------------------------- metrics


@pytest.fixture
def table() -> pd.DataFrame:
    rows = []
    values = {"GEARS": [0.9, 0.7, 0.5, 0.3, 0.1], "additive": [0.4, 0.2, 0.6, 0.0, np.nan]}
    subgroups = ["combo_seen2", "unseen_single", "unseen_single", "combo_seen2", "combo_seen0"]
    for method, scores in values.items():
        for i, (score, subgroup) in enumerate(zip(scores, subgroups, strict=True)):
            rows.append(
                {
                    "method": method,
                    "condition": f"C{i}",
                    "subgroup": subgroup,
                    "pearson_delta": score,
                    "mse_de": 1 - score,
                }
            )
    return pd.DataFrame(rows)


def test_metrics_bars_are_subgroup_means_with_condition_dots(table, tmp_path):
    path = tmp_path / "metrics.png"
    axes = sg.pl.metrics(table, show=False, save=path)
    assert list(axes) == ["pearson_delta"]  # one type (a dict by metric) whatever the input
    ax = axes["pearson_delta"]
    assert isinstance(ax, Axes)
    assert path.stat().st_size > 5_000
    assert _ticks(ax.get_xticklabels()) == [
        "unseen_single\n(n=2)",
        "combo_seen0\n(n=1)",
        "combo_seen2\n(n=2)",
    ]
    gears, additive = ax.containers
    np.testing.assert_allclose([b.get_height() for b in gears], [0.6, 0.1, 0.6])
    heights = [b.get_height() for b in additive]
    np.testing.assert_allclose(heights, [0.4, np.nan, 0.2])  # no value: no bar
    dots = _markers(ax)
    assert [len(d.get_offsets()) for d in dots] == [5, 4]
    assert gears[0].get_facecolor() != additive[0].get_facecolor()
    assert _ticks(ax.get_legend().get_texts()) == ["GEARS", "additive"]


def test_metrics_one_panel_per_metric(table):
    axes = sg.pl.metrics(table, metric=["pearson_delta", "mse_de"], show=False)
    assert list(axes) == ["pearson_delta", "mse_de"]
    assert all(isinstance(a, Axes) for a in axes.values())
    assert axes["mse_de"].get_ylabel() == "MSE (top-20 DE genes)"
    gears = axes["mse_de"].containers[0]
    np.testing.assert_allclose([b.get_height() for b in gears], [0.4, 0.9, 0.4])


def test_metrics_without_subgroups_and_with_chosen_methods(table):
    no_split = table.drop(columns="subgroup")
    ax = sg.pl.metrics(no_split, methods=["additive"], show=False)["pearson_delta"]
    assert _ticks(ax.get_xticklabels()) == ["all\n(n=4)"]
    (additive,) = ax.containers
    assert additive[0].get_height() == pytest.approx(0.3)


def test_metrics_errors(table):
    with pytest.raises(KeyError, match=r"Metric 'spearman' is not a column"):
        sg.pl.metrics(table, metric="spearman", show=False)
    with pytest.raises(KeyError, match=r"lacks the columns \['method'\]"):
        sg.pl.metrics(table.drop(columns="method"), show=False)
    with pytest.raises(KeyError, match=r"Methods \['linear'\] are not in"):
        sg.pl.metrics(table, methods=["linear"], show=False)
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="one axes per metric"):
        sg.pl.metrics(table, metric=["mse_de", "pearson_delta"], ax=ax, show=False)


# ---------------------------------------------------------------------------- uncertainty


def test_uncertainty_plots_mean_sd_against_mse_de(cells, prediction, tmp_path):
    path = tmp_path / "uncertainty.png"
    ax = sg.pl.uncertainty(cells, prediction, n_genes=3, show=False, save=path)
    assert isinstance(ax, Axes)
    assert path.stat().st_size > 5_000
    (dots,) = _markers(ax)
    sd = [np.mean([0.2, 0.5, 0.1]), np.mean([0.9, 0.7, 0.6])]  # A: g1 g4 g0; A+B: g3 g1 g0
    mse = [np.mean(np.square([-0.2, 0.5, 0.1])), np.mean(np.square([0.2, 0.0, 0.4]))]
    np.testing.assert_allclose(dots.get_offsets(), np.column_stack([sd, mse]), atol=1e-5)
    assert [t.get_text() for t in ax.texts] == ["A", "A+B"]
    assert ax.get_title() == "Spearman ρ not defined (2 conditions)"


def test_uncertainty_title_gives_spearman_and_colours_by_seen_genes(norman, tmp_path):
    sg.pp.register_perturbations(norman, "condition")
    sg.pp.rank_perturbation_genes(norman)
    measured = measured_profiles(norman)
    measured = measured[measured.obs_names != "ctrl"]
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.2, measured.shape)
    seen = np.arange(measured.n_obs) % 3
    predicted = make_profiles(
        list(measured.obs_names),
        measured.var_names,
        measured.X + noise,
        measured.var["control_mean"].to_numpy(),
        source="test",
        uncertainty=np.abs(noise),
        obs=pd.DataFrame({"n_seen_genes": seen}),
    )
    ax = sg.pl.uncertainty(norman, predicted, show=False, save=tmp_path / "u.png")
    dots = _markers(ax)
    assert [len(d.get_offsets()) for d in dots] == [11, 11, 11]  # 33 conditions, 0/1/2 seen
    offsets = np.concatenate([d.get_offsets() for d in dots])
    rho = spearmanr(offsets[:, 0], offsets[:, 1]).statistic
    assert ax.get_title() == f"Spearman ρ = {rho:.2f} (33 conditions)"
    assert rho > 0.5  # |noise| is both the error and the uncertainty here
    assert _ticks(ax.get_legend().get_texts()) == ["0", "1", "2"]


def test_uncertainty_errors(cells, prediction):
    del prediction.layers["uncertainty"]
    with pytest.raises(ValueError, match="uncertainty=True"):
        sg.pl.uncertainty(cells, prediction, show=False)
    unmeasured = make_profiles(
        ["Z"], GENES, np.zeros((1, 5)), np.zeros(5), source="test", uncertainty=np.ones((1, 5))
    )
    with pytest.raises(ValueError, match="has measured cells"):
        sg.pl.uncertainty(cells, unmeasured, show=False)

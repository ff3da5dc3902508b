"""GEARS' evaluation metrics (sg.tl.evaluate, sg.tl.summarize) against hand computations."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

import scgears as sg
from scgears._profiles import make_profiles

GENES = ["g0", "g1", "g2", "g3", "g4"]
CELLS = {
    "control": [[1, 2, 0, 1, 3], [3, 2, 0, 1, 1]],  # mean 2 2 0 1 2
    "A": [[4, 2, 1, 1, 2], [2, 2, 1, 1, 2]],  # mean 3 2 1 1 2
    "B": [[0, 3, 0, 2, 2]],
    "A+B": [[5, 1, 2, 0, 2], [3, 3, 0, 0, 2]],  # mean 4 2 1 0 2
    "C": [[2, 2, 0, 1, 4]],
}
CONTROL_MEAN = np.array([2, 2, 0, 1, 2.0])
TRUTH = {
    "A": np.array([3, 2, 1, 1, 2.0]),
    "B": np.array([0, 3, 0, 2, 2.0]),
    "A+B": np.array([4, 2, 1, 0, 2.0]),
    "C": np.array([2, 2, 0, 1, 4.0]),
}
DE = {
    "A": ["g0", "g2", "g3"],
    "B": ["g1", "g3", "g0"],
    "A+B": ["g0", "g3", "g2"],
    "C": ["g4", "g0"],
}
NON_DROPOUT = {"A": ["g0", "g2"], "B": ["g1", "g3"], "A+B": ["g0", "g3", "g4"], "C": ["g4"]}


@pytest.fixture
def cells() -> ad.AnnData:
    labels = [c for c, rows in CELLS.items() for _ in rows]
    x = np.array([r for rows in CELLS.values() for r in rows], dtype=np.float32)
    adata = ad.AnnData(
        X=x,
        obs=pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(len(x))]),
        var=pd.DataFrame(index=GENES),
    )
    sg.pp.register_perturbations(adata, "perturbation")
    adata.uns["scgears_de"] = {
        "params": {},
        "top_genes": {c: np.array(g) for c, g in DE.items()},
        "top_non_dropout_genes": {c: np.array(g) for c, g in NON_DROPOUT.items()},
    }
    return adata


def _prediction(rows: dict[str, list[float]], source="model") -> ad.AnnData:
    # the prediction's own control mean is deliberately off: evaluate uses adata's control cells
    return make_profiles(
        list(rows), GENES, np.array(list(rows.values())), np.zeros(5), source=source
    )


def _pearson(x, y) -> float:
    return float(pearsonr(x, y)[0])


def test_metrics_by_hand(cells):
    pred = {"A": [3, 1, 2, 2, 2], "A+B": [5, 2, 0, 1, 2]}
    table = sg.tl.evaluate(cells, _prediction(pred), conditions=["A", "A+B"])
    assert list(table.columns[:6]) == [
        "method",
        "condition",
        "subgroup",
        "n_perturbed_genes",
        "n_cells",
        "mse",
    ]
    assert table["subgroup"].tolist() == ["all", "all"]  # no split
    assert table["n_perturbed_genes"].tolist() == [1, 2]
    assert table["n_cells"].tolist() == [2, 2]
    row = table.set_index("condition").loc["A"]
    p, y, c = np.array(pred["A"], float), TRUTH["A"], CONTROL_MEAN
    de = [0, 2, 3]
    assert row["mse"] == pytest.approx((0 + 1 + 1 + 1 + 0) / 5)
    assert row["pearson"] == pytest.approx(_pearson(p, y))
    assert row["mse_de"] == pytest.approx((0 + 1 + 1) / 3)
    assert row["pearson_de"] == pytest.approx(_pearson(p[de], y[de]))
    assert row["pearson_delta"] == pytest.approx(_pearson(p - c, y - c))
    assert row["pearson_delta_de"] == pytest.approx(_pearson(p[de] - c[de], y[de] - c[de]))
    # non-dropout genes g0, g2: predicted changes +1, +2; measured +1, +1 -> none opposite
    assert row["frac_opposite_direction_top20_non_dropout"] == 0.0

    row = table.set_index("condition").loc["A+B"]
    # non-dropout genes g0, g3, g4: predicted changes +3, 0, 0; measured +2, -1, 0
    # -> g0 same sign, g3 zero vs negative (not opposite), g4 both zero
    assert row["frac_opposite_direction_top20_non_dropout"] == 0.0
    assert row["mse"] == pytest.approx((1 + 0 + 1 + 1 + 0) / 5)


def test_opposite_direction_and_constant_prediction(cells):
    pred = {"A+B": [1, 2, 0, 2, 2], "A": [2, 2, 0, 1, 2]}  # A: exactly the control
    table = sg.tl.evaluate(cells, _prediction(pred), conditions=["A+B", "A"]).set_index("condition")
    # A+B non-dropout g0, g3, g4: predicted -1, +1, 0 vs measured +2, -1, 0 -> 2 of 3 opposite
    assert table.loc["A+B", "frac_opposite_direction_top20_non_dropout"] == pytest.approx(2 / 3)
    # a prediction equal to the control has a constant delta: Pearson is NaN, set to 0 as GEARS
    assert table.loc["A", "pearson_delta"] == 0.0
    assert table.loc["A", "pearson_delta_de"] == 0.0


def test_split_subgroups_default_conditions_and_methods(cells):
    split = {"control": "train", "A": "train", "B": "val", "A+B": "test", "C": "test"}
    cells.obs["scgears_split"] = cells.obs["perturbation"].map(split).astype("category")
    cells.uns["scgears_split"] = {
        "conditions": {
            "train": np.array(["ctrl", "A"]),
            "val": np.array(["B"]),
            "test": np.array(["A+B", "C"]),
        },
        "subgroups": {"unseen_single": np.array(["C"]), "combo_seen1": np.array(["A+B"])},
    }
    model = _prediction({"C": [2, 2, 0, 1, 3], "A+B": [4, 2, 1, 0, 2]})
    control = sg.tl.baseline(cells, "control")
    table = sg.tl.evaluate(cells, {"model": model, "control": control})
    assert table["method"].tolist() == ["model", "model", "control", "control"]
    assert table["condition"].tolist() == ["A+B", "C"] * 2
    assert table["subgroup"].tolist() == ["combo_seen1", "unseen_single"] * 2
    assert table["mse"].iloc[0] == 0.0  # the model predicts A+B exactly
    assert table["pearson_delta"].iloc[0] == pytest.approx(1.0)
    assert table["mse"].iloc[3] == pytest.approx(4 / 5)  # control vs C: g4 off by 2
    # conditions of the train / val sets are labelled by their set
    labels = sg.tl.evaluate(cells, _prediction({"A": [0] * 5, "B": [0] * 5}), conditions=["A", "B"])
    assert labels["subgroup"].tolist() == ["train", "val"]

    summary = sg.tl.summarize(table)
    assert summary[["method", "subgroup"]].values.tolist() == [
        ["model", "unseen_single"],
        ["model", "combo_seen1"],
        ["model", "all"],
        ["control", "unseen_single"],
        ["control", "combo_seen1"],
        ["control", "all"],
    ]
    model_rows = table[table["method"] == "model"]
    all_row = summary[(summary["method"] == "model") & (summary["subgroup"] == "all")].iloc[0]
    assert all_row["n_conditions"] == 2
    assert all_row["mse"] == pytest.approx(model_rows["mse"].mean())
    by_method = sg.tl.summarize(table, by="method")
    assert by_method["mse"].tolist() == pytest.approx(
        [model_rows["mse"].mean(), table[table["method"] == "control"]["mse"].mean()]
    )


def test_errors_name_the_problem(cells):
    pred = _prediction({"A": [0] * 5, "A+B": [0] * 5})
    with pytest.raises(ValueError, match=r"lacks conditions \['B'\]"):
        sg.tl.evaluate(cells, pred, conditions=["A", "B"])
    with pytest.raises(ValueError, match=r"No measured cells .* \['D'\]"):
        sg.tl.evaluate(cells, pred, conditions=["A", "D"])
    with pytest.raises(ValueError, match="not profile AnnData"):
        sg.tl.evaluate(cells, {"raw": cells}, conditions=["A"])
    del cells.uns["scgears_de"]
    with pytest.raises(KeyError, match="rank_perturbation_genes"):
        sg.tl.evaluate(cells, pred)


def test_prediction_on_a_subset_of_genes(cells):
    pred = make_profiles(["A"], ["g0", "g2"], np.array([[3.0, 0.0]]), np.zeros(2), source="m")
    row = sg.tl.evaluate(cells, pred, conditions=["A"]).iloc[0]
    assert row["mse"] == pytest.approx((0 + 1) / 2)  # genes g0, g2 only
    assert row["mse_de"] == pytest.approx((0 + 1) / 2)  # DE g0, g2 (g3 not predicted)


def test_norman_control_baseline(norman):
    sg.pp.register_perturbations(norman, "condition")
    sg.pp.rank_perturbation_genes(norman)
    conditions = ["KLF1", "KLF1+MAP2K6"]
    control = sg.tl.baseline(norman, "control", conditions=conditions)
    table = sg.tl.evaluate(norman, control, conditions=conditions).set_index("condition")
    assert table["method"].unique().tolist() == ["baseline:control"]
    labels = norman.obs["scgears_condition"]
    x = norman.X.toarray()
    ctrl = x[(labels == "ctrl").to_numpy()].mean(axis=0)
    truth = x[(labels == "KLF1").to_numpy()].mean(axis=0)
    de = norman.var_names.get_indexer(norman.uns["scgears_de"]["top_genes"]["KLF1"])
    assert table.loc["KLF1", "mse"] == pytest.approx(np.mean((ctrl - truth) ** 2), rel=1e-5)
    assert table.loc["KLF1", "mse_de"] == pytest.approx(
        np.mean((ctrl[de] - truth[de]) ** 2), rel=1e-5
    )
    assert table.loc["KLF1", "pearson_de"] == pytest.approx(_pearson(ctrl[de], truth[de]), rel=1e-5)
    assert (table["pearson_delta"] == 0.0).all()  # no change: constant delta
    assert (table["frac_opposite_direction_top20_non_dropout"] == 0.0).all()


# ------------------------------------------------------------------ metrics a mean cannot win

# no split: the training mean is the mean of all measured perturbations A, B, A+B, C
TRAIN_MEAN = np.mean([TRUTH[c] for c in ("A", "B", "A+B", "C")], axis=0)  # 2.25 2.25 .5 1 2.5


def test_discriminating_metrics_by_hand(cells):
    pred = {"A": [3, 1, 2, 2, 2], "A+B": [5, 2, 0, 1, 2], "C": [3, 2, 1, 1, 2]}
    table = sg.tl.evaluate(cells, _prediction(pred), conditions=list(pred))
    assert list(table.columns[-4:]) == [
        "pds",
        "pearson_delta_pert",
        "pearson_delta_pert_de",
        "centroid_accuracy",
    ]
    table = table.set_index("condition")
    # pds, L1 to every measured perturbation (A, B, A+B, C; genes g* are no condition's target):
    # A   -> A 3 (own), B 7, A+B 5, C 7: all 3 others farther
    # A+B -> A 3, B 7, A+B 3 (own), C 5: B and C farther, A ties (not farther)
    # C   -> A 0, B 6, A+B 2, C 4 (own): only B farther
    assert table["pds"].tolist() == pytest.approx([1.0, 2 / 3, 1 / 3])
    # centroid accuracy among the evaluated A, A+B, C (squared Euclidean distances):
    # A -> 3 own vs 7, 9; A+B -> 3 own vs 5, 13; C predicts A's profile exactly: 6 own vs 0
    assert table["centroid_accuracy"].tolist() == [1.0, 1.0, 0.0]
    p, y, m = np.array(pred["A"], float), TRUTH["A"], TRAIN_MEAN
    de = [0, 2, 3]
    assert table.loc["A", "pearson_delta_pert"] == pytest.approx(_pearson(p - m, y - m))
    assert table.loc["A", "pearson_delta_pert_de"] == pytest.approx(
        _pearson(p[de] - m[de], y[de] - m[de])
    )
    # the control is not the reference: differs from pearson_delta
    assert table.loc["A", "pearson_delta_pert"] != pytest.approx(table.loc["A", "pearson_delta"])


def test_pds_leaves_out_the_condition_s_own_target_genes(cells):
    renamed = cells.copy()
    renamed.var_names = ["A", "g1", "g2", "g3", "g4"]  # gene A is the target of A and A+B
    de = renamed.uns["scgears_de"]
    for key in ("top_genes", "top_non_dropout_genes"):
        de[key] = {c: np.where(g == "g0", "A", g) for c, g in de[key].items()}
    pred = make_profiles(
        ["A", "A+B"],
        list(renamed.var_names),
        np.array([[3, 1, 2, 2, 2], [5, 2, 0, 1, 2.0]]),
        np.zeros(5),
        source="model",
    )
    table = sg.tl.evaluate(renamed, pred, conditions=["A", "A+B"]).set_index("condition")
    # without gene A: A -> A 3 (own), B 4, A+B 4, C 6: all farther;
    # A+B -> A 1, B 2, A+B 2 (own), C 2: none farther (with gene A it was 2/3)
    assert table["pds"].tolist() == [1.0, 0.0]


def test_mean_baseline_has_zero_pearson_delta_pert_and_control_half_pds(cells):
    conditions = ["A", "A+B", "C"]
    methods = {k: sg.tl.baseline(cells, k, conditions=conditions) for k in ("mean", "control")}
    np.testing.assert_allclose(methods["mean"].X[0], TRAIN_MEAN, rtol=1e-6)
    table = sg.tl.evaluate(cells, methods, conditions=conditions)
    mean = table[table["method"] == "baseline:mean"]
    # a constant change from the training mean: Pearson undefined, 0 as GEARS sets it
    assert (mean["pearson_delta_pert"] == 0.0).all()
    assert (mean["pearson_delta_pert_de"] == 0.0).all()
    # one prediction for every condition cannot single out more than one of them
    assert mean["centroid_accuracy"].sum() <= 1


def test_centroid_accuracy_is_nan_for_a_single_condition(cells):
    table = sg.tl.evaluate(cells, _prediction({"A": [3, 2, 1, 1, 2]}), conditions=["A"])
    assert np.isnan(table.loc[0, "centroid_accuracy"])
    assert table.loc[0, "pds"] == 1.0


def test_nan_prediction_gives_nan_metrics_a_warning_and_a_nan_summary(cells):
    pred = _prediction({"A": [3, np.nan, 2, 2, 2], "A+B": [5, 2, 0, 1, 2]}, source="broken")
    with pytest.warns(RuntimeWarning, match=r"'broken' holds NaN .* \['A'\]"):
        table = sg.tl.evaluate(cells, pred, conditions=["A", "A+B"])
    metrics = [c for c in table.columns if c not in ("method", "condition", "subgroup")]
    metrics = metrics[2:]  # after n_perturbed_genes, n_cells
    assert table.loc[0, metrics].isna().all()  # not 0.0: a broken method is not merely poor
    assert table.loc[1, metrics].notna().all()
    summary = sg.tl.summarize(table)
    assert summary["n_conditions"].tolist() == [2]  # no split: each condition counted once
    assert np.isnan(summary.loc[0, "pearson_delta"])  # the failure is not averaged away
    skipped = sg.tl.summarize(table, skipna=True)
    assert skipped["n_nan"].tolist() == [1]  # ... and skipping it says so
    assert skipped.loc[0, "mse"] == pytest.approx(table.loc[1, "mse"])


def test_duplicated_var_names_fail_early_with_the_fix(cells):
    pred = _prediction({"A": [3, 1, 2, 2, 2]})
    twice = pred.copy()
    twice.var_names = ["g0", "g0", "g2", "g3", "g4"]
    with pytest.raises(ValueError, match=r"predicted\['model'\]\.var_names has 1 duplicated"):
        sg.tl.evaluate(cells, {"model": twice}, conditions=["A"])
    cells.var_names = ["g0", "g1", "g1", "g3", "g4"]
    with pytest.raises(
        ValueError, match=r"1 duplicated gene names \(\[.g1.\]\).*var_names_make_unique"
    ):
        sg.tl.evaluate(cells, pred, conditions=["A"])
    with pytest.raises(ValueError, match="var_names_make_unique"):
        sg.tl.baseline(cells, "mean", conditions=["A"])
    with pytest.raises(ValueError, match="var_names_make_unique"):
        sg.tl.measured_profiles(cells)


# ------------------------------------------------------------------ the split-half ceiling


def test_duplicate_ceiling_is_scored_against_its_held_out_half():
    adata = sg.datasets.simulate_screen(n_genes=200, n_cells_per_condition=9, seed=3)
    sg.pp.register_perturbations(adata, "perturbation_name")
    sg.pp.rank_perturbation_genes(adata)
    labels = adata.obs["scgears_condition"]
    conditions = [c for c in labels.cat.categories if c != "ctrl"][:6]
    dup = sg.tl.baseline(adata, "duplicate", conditions=conditions, seed=0)
    assert dup.uns["scgears_profile"]["source"] == "baseline:duplicate"
    assert dup.obs["n_cells"].tolist() == [4] * 6  # 9 cells: 4 predict, 5 held out
    assert dup.obs["n_cells_held_out"].tolist() == [5] * 6
    x = np.asarray(adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X, float)
    for i, c in enumerate(conditions):
        full = x[(labels == c).to_numpy()].mean(axis=0)
        # the two halves are a partition of the condition's cells
        np.testing.assert_allclose(
            (4 * dup.X[i] + 5 * dup.layers["held_out_mean"][i]) / 9, full, rtol=1e-4, atol=1e-5
        )
    np.testing.assert_array_equal(
        dup.X, sg.tl.baseline(adata, "duplicate", conditions=conditions, seed=0).X
    )
    assert not np.array_equal(
        dup.X, sg.tl.baseline(adata, "duplicate", conditions=conditions, seed=1).X
    )
    table = sg.tl.evaluate(adata, dup, conditions=conditions)
    held = np.asarray(dup.layers["held_out_mean"], float)
    expected = np.mean((np.asarray(dup.X, float) - held) ** 2, axis=1)
    np.testing.assert_allclose(table["mse"], expected, rtol=1e-5)
    assert table["n_cells"].tolist() == [5] * 6


def test_duplicate_of_a_single_cell_is_nan_with_a_warning(cells):
    with pytest.warns(RuntimeWarning, match=r"\['B'\] have fewer than 2 cells"):
        dup = sg.tl.baseline(cells, "duplicate", conditions=["A", "B"])
    assert np.isnan(dup.X[1]).all()
    np.testing.assert_allclose(dup.X[0] + dup.layers["held_out_mean"][0], 2 * TRUTH["A"])
    with pytest.raises(ValueError, match=r"needs measured cells; conditions \['D'\]"):
        sg.tl.baseline(cells, "duplicate", conditions=["D"])


# ------------------------------------------------------------------ measured profiles, split


def test_measured_profiles_have_the_prediction_s_shape_and_split_labels(cells):
    split = {"control": "train", "A": "train", "B": "val", "A+B": "test", "C": "test"}
    cells.obs["scgears_split"] = cells.obs["perturbation"].map(split).astype("category")
    cells.uns["scgears_split"] = {
        "conditions": {
            "train": np.array(["ctrl", "A"]),
            "val": np.array(["B"]),
            "test": np.array(["A+B", "C"]),
        },
        "subgroups": {"unseen_single": np.array(["C"]), "combo_seen2": np.array(["A+B"])},
    }
    measured = sg.tl.measured_profiles(cells)
    assert list(measured.obs_names) == ["A", "A+B", "B", "C"]
    assert list(measured.obs.columns) == [
        "condition",
        "n_perturbed_genes",
        "n_cells",
        "split",
        "subgroup",
    ]
    assert measured.obs["split"].tolist() == ["train", "test", "val", "test"]
    assert measured.obs["subgroup"].tolist() == ["train", "combo_seen2", "val", "unseen_single"]
    assert measured.obs["n_cells"].tolist() == [2, 2, 1, 1]
    np.testing.assert_allclose(measured["A+B"].X[0], TRUTH["A+B"])
    np.testing.assert_allclose(measured["A+B"].layers["delta"][0], TRUTH["A+B"] - CONTROL_MEAN)
    # predictions take the same labels, and conditions outside the split get the paper's rule
    from scgears._profiles import add_split_info

    pred = _prediction({"A+B": [0] * 5, "B+D": [0] * 5, "D": [0] * 5, "B": [0] * 5})
    add_split_info(pred, cells.uns["scgears_split"])
    assert pred.obs["split"].isna().tolist() == [False, True, True, False]
    assert pred.obs["split"].dropna().tolist() == ["test", "val"]
    assert pred.obs["subgroup"].tolist() == ["combo_seen2", "combo_seen1", "unseen_single", "val"]
    add_split_info(pred, None)
    assert set(pred.obs["subgroup"]) == {"all"}
    assert pred.obs["split"].isna().all()
    # evaluate labels rows the same way
    table = sg.tl.evaluate(cells, measured, conditions=["A+B", "C", "B"])
    assert table["subgroup"].tolist() == ["combo_seen2", "unseen_single", "val"]


def test_norman_mean_cannot_win_the_new_metrics_and_the_ceiling_does(norman):
    sg.pp.register_perturbations(norman, "condition")
    sg.pp.rank_perturbation_genes(norman)
    sg.pp.split_perturbations(norman, kind="simulation", seed=1)
    methods = {k: sg.tl.baseline(norman, k) for k in ("control", "mean", "duplicate")}
    table = sg.tl.evaluate(norman, methods)
    summary = sg.tl.summarize(table, by="method").set_index("method")
    assert (table.loc[table["method"] == "mean", "pearson_delta_pert"] == 0.0).all()
    # the training mean ties GEARS-like methods on pearson_delta, but not on discrimination
    assert summary.loc["mean", "pearson_delta"] > 0.3
    assert 0.3 < summary.loc["mean", "pds"] < 0.6
    assert summary.loc["duplicate", "pds"] > 0.9
    assert summary.loc["duplicate", "pearson_delta_pert"] > 0.7
    assert summary.loc["duplicate", "centroid_accuracy"] > 0.8
    assert summary.loc["duplicate", "mse_de"] < summary.loc["mean", "mse_de"] / 5

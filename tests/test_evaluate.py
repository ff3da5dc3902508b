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

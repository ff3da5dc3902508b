"""Baselines (sg.tl.baseline): no change, training mean, additive and linear, by hand."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA

import scgears as sg

GENES = ["g0", "g1", "g2", "g3"]
CELLS = {  # condition: (split, cell rows)
    "control": ("train", [[1, 1, 0, 2], [3, 1, 2, 2]]),  # mean 2 1 1 2
    "A": ("train", [[4, 1, 1, 2], [4, 3, 1, 2], [4, 2, 1, 2]]),  # mean 4 2 1 2
    "B": ("train", [[2, 1, 3, 0]]),
    "C": ("val", [[1, 0, 1, 5], [3, 0, 1, 5]]),  # mean 2 0 1 5
    "A+C": ("train", [[5, 1, 1, 4]]),
    "A+B": ("test", [[9, 9, 9, 9]]),
    "D": ("test", [[0, 0, 0, 0]]),
}
CONTROL = np.array([2, 1, 1, 2.0])
MEANS = {
    "A": np.array([4, 2, 1, 2.0]),
    "B": np.array([2, 1, 3, 0.0]),
    "C": np.array([2, 0, 1, 5.0]),
    "A+C": np.array([5, 1, 1, 4.0]),
}


@pytest.fixture
def cells() -> ad.AnnData:
    labels = [c for c, (_, rows) in CELLS.items() for _ in rows]
    split = [s for _, (s, rows) in CELLS.items() for _ in rows]
    x = np.array([r for _, rows in CELLS.values() for r in rows], dtype=np.float32)
    adata = ad.AnnData(
        X=x,
        obs=pd.DataFrame(
            {"perturbation": labels, "scgears_split": split}, index=[f"c{i}" for i in range(len(x))]
        ),
        var=pd.DataFrame(index=GENES),
    )
    sg.pp.register_perturbations(adata, "perturbation")
    adata.uns["scgears_split"] = {
        "conditions": {
            "train": np.array(["ctrl", "A", "B", "A+C"]),
            "val": np.array(["C"]),
            "test": np.array(["A+B", "D"]),
        },
        "subgroups": {"combo_seen2": np.array(["A+B"]), "unseen_single": np.array(["D"])},
    }
    return adata


def test_control_and_mean(cells):
    control = sg.tl.baseline(cells, "control", conditions=["A+B", "D"])
    assert control.uns["scgears_profile"]["source"] == "baseline:control"
    assert list(control.obs_names) == ["A+B", "D"]
    np.testing.assert_allclose(control.X, np.tile(CONTROL, (2, 1)))
    np.testing.assert_allclose(control.var["control_mean"], CONTROL)
    np.testing.assert_allclose(control.layers["delta"], 0.0)
    mean = sg.tl.baseline(cells, "mean")  # default: the split's test conditions
    assert list(mean.obs_names) == ["A+B", "D"]
    # unweighted mean of the train + val perturbation means (A has 3 cells, B 1: equal weight)
    expected = (MEANS["A"] + MEANS["B"] + MEANS["C"] + MEANS["A+C"]) / 4
    np.testing.assert_allclose(mean.X, np.tile(expected, (2, 1)), rtol=1e-6)
    np.testing.assert_allclose(mean.layers["delta"], np.tile(expected - CONTROL, (2, 1)), rtol=1e-6)


def test_additive(cells):
    pred = sg.tl.baseline(cells, "additive", conditions=[["B", "A"], "C", "A+B+C"])
    assert list(pred.obs_names) == ["A+B", "C", "A+B+C"]
    d = {k: v - CONTROL for k, v in MEANS.items()}
    np.testing.assert_allclose(pred["A+B"].X.ravel(), CONTROL + d["A"] + d["B"], rtol=1e-6)
    np.testing.assert_allclose(pred["C"].X.ravel(), MEANS["C"], rtol=1e-6)  # a val single
    np.testing.assert_allclose(
        pred["A+B+C"].X.ravel(), CONTROL + d["A"] + d["B"] + d["C"], rtol=1e-6
    )
    with pytest.raises(ValueError, match=r"conditions \['D', 'A\+D'\] have a gene"):
        sg.tl.baseline(cells, "additive", conditions=["A+B", "D", "A+D"])


def test_test_cells_are_never_used(cells):
    before = {k: sg.tl.baseline(cells, k).X.copy() for k in ("control", "mean", "linear")}
    changed = cells.copy()
    test = (changed.obs["scgears_split"] == "test").to_numpy()
    changed.X[test] = 100.0
    for kind, x in before.items():
        np.testing.assert_array_equal(sg.tl.baseline(changed, kind).X, x)


def test_no_split_fits_on_everything(cells):
    del cells.obs["scgears_split"]
    del cells.uns["scgears_split"]
    pred = sg.tl.baseline(cells, "additive", conditions=["A+D"])
    d_a, d_d = MEANS["A"] - CONTROL, -CONTROL  # D's single is measured now: all zeros
    np.testing.assert_allclose(pred.X.ravel(), CONTROL + d_a + d_d, rtol=1e-6)
    assert sorted(sg.tl.baseline(cells, "control").obs_names) == ["A", "A+B", "A+C", "B", "C", "D"]


def _linear_by_hand(train: dict[str, np.ndarray], control, targets, k, ridge, var_names):
    """Ahlmann-Eltze et al.'s formula, written out with sklearn's PCA and explicit inverses."""
    labels = list(train)
    matrix = np.stack([train[c] for c in labels], axis=1)  # genes x conditions (ctrl included)
    embedding = PCA(n_components=k, svd_solver="full").fit_transform(matrix)  # genes x K
    row = {g: i for i, g in enumerate(var_names)}

    def emb(label):
        genes = [] if label == "ctrl" else label.split("+")
        return sum((embedding[row[g]] for g in genes if g in row), np.zeros(k))

    y = np.stack([train[c] - control for c in labels], axis=1)
    centre = y.mean(axis=1)
    p = np.stack([emb(c) for c in labels], axis=1)
    w = (
        np.linalg.inv(embedding.T @ embedding + ridge * np.eye(k))
        @ embedding.T
        @ (y - centre[:, None])
        @ p.T
        @ np.linalg.inv(p @ p.T + ridge * np.eye(k))
    )
    return np.stack([embedding @ w @ emb(t) + centre + control for t in targets])


def test_linear_by_hand():
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(12)]
    perturbed = genes[:6]
    conditions = ["control", *perturbed, "G0+G1", "G2+G3", "G4+G5", "G0+G5"]
    split = {"G4+G5": "test", "G0+G5": "test", "G5": "val"}
    labels, rows = [], []
    for c in conditions:
        centre = rng.normal(size=12) + 3
        for _ in range(3):
            labels.append(c)
            rows.append(centre + rng.normal(scale=0.1, size=12))
    adata = ad.AnnData(
        X=np.array(rows, dtype=np.float32),
        obs=pd.DataFrame(
            {"p": labels, "scgears_split": [split.get(c, "train") for c in labels]},
            index=[f"c{i}" for i in range(len(rows))],
        ),
        var=pd.DataFrame(index=genes),
    )
    sg.pp.register_perturbations(adata, "p")
    targets = ["G4+G5", "G0+G5", "G3", "NOTMEASURED"]
    pred = sg.tl.baseline(adata, "linear", conditions=targets, n_components=4, ridge=0.1)
    assert pred.uns["scgears_profile"]["source"] == "baseline:linear"

    x = adata.X.astype(np.float64)
    cond = adata.obs["scgears_condition"].astype(str).to_numpy()
    train = {
        c: x[cond == c].mean(axis=0) for c in ["ctrl", *perturbed, "G0+G1", "G2+G3"]
    }  # train + val (G5)
    expected = _linear_by_hand(train, train["ctrl"], targets, 4, 0.1, genes)
    np.testing.assert_allclose(pred.X, expected, rtol=1e-5, atol=1e-5)
    # a gene that is not measured has a zero embedding: the prediction is the centre
    centre = np.mean([train[c] - train["ctrl"] for c in train], axis=0) + train["ctrl"]
    np.testing.assert_allclose(pred["NOTMEASURED"].X.ravel(), centre, rtol=1e-5)


def test_bad_kind_and_parameters(cells):
    with pytest.raises(ValueError, match="Unknown baseline kind 'median'"):
        sg.tl.baseline(cells, "median")
    with pytest.raises(ValueError, match="n_components"):
        sg.tl.baseline(cells, "linear", n_components=0)


def test_norman_additive_doubles(norman):
    sg.pp.register_perturbations(norman, "condition")
    doubles = ["KLF1+MAP2K6", "MAPK1+TGFBR2"]
    pred = sg.tl.baseline(norman, "additive", conditions=doubles)
    x = norman.X.toarray()
    labels = norman.obs["scgears_condition"].astype(str).to_numpy()
    ctrl = x[labels == "ctrl"].mean(axis=0)
    for double in doubles:
        a, b = double.split("+")
        expected = x[labels == a].mean(axis=0) + x[labels == b].mean(axis=0) - ctrl
        np.testing.assert_allclose(pred[double].X.ravel(), expected, rtol=1e-5, atol=1e-6)
    linear = sg.tl.baseline(norman, "linear", conditions=doubles)
    assert linear.shape == (2, norman.n_vars)
    assert np.isfinite(linear.X).all()


def test_baselines_carry_split_and_subgroup_and_the_duplicate_uses_own_cells(cells):
    pred = sg.tl.baseline(cells, "mean", conditions=["A+B", "D", "C"])
    assert pred.obs["split"].tolist() == ["test", "test", "val"]
    assert pred.obs["subgroup"].tolist() == ["combo_seen2", "unseen_single", "val"]
    # the ceiling is the measurement itself: it reads the test condition's own cells
    dup = sg.tl.baseline(cells, "duplicate", conditions=["A"], seed=0)
    a_cells = np.array(CELLS["A"][1], dtype=float)  # three A cells: one predicts, two held out
    assert dup.obs["n_cells"].tolist() == [1]
    assert dup.obs["n_cells_held_out"].tolist() == [2]
    predicted = np.asarray(dup.X[0], dtype=float)
    assert any(np.allclose(predicted, row) for row in a_cells)
    np.testing.assert_allclose(
        predicted + 2 * np.asarray(dup.layers["held_out_mean"][0]), a_cells.sum(axis=0)
    )

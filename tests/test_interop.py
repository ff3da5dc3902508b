"""Sampled cells go into cell-eval and pertpy as they are (skipped when those are not installed).

cell-eval and pertpy are not scgears dependencies: run these in an environment that has them
(the docs page "Predicted cells" says how, with the pins pertpy 1.0.3 needs).
"""

from __future__ import annotations

import numpy as np
import pytest

import scgears as sg

CONDITIONS = ["CBL+CNN1", "KLF1+SET", "PTPN12+SAMD1"]


@pytest.fixture
def norman_cells(norman):
    sg.pp.register_perturbations(norman, perturbation_key="condition", control="control")
    sg.pp.split_perturbations(norman, kind="custom", test_conditions=CONDITIONS)
    labels = norman.obs["scgears_condition"].astype(str)
    keep = labels.isin([*CONDITIONS, "ctrl"]).to_numpy()
    real = norman[keep].copy()
    real.obs["perturbation"] = labels[keep].replace("ctrl", "control").to_numpy()
    measured = sg.tl.sample_cells(norman, sg.tl.measured_profiles(norman, CONDITIONS), seed=0)
    no_change = sg.tl.sample_cells(
        norman, sg.tl.baseline(norman, "control", conditions=CONDITIONS), seed=0
    )
    return real, measured, no_change


def test_cell_eval_metrics_evaluator_runs_on_sampled_cells(request, tmp_path):
    pytest.importorskip("cell_eval")
    from cell_eval import MetricsEvaluator

    real, measured, no_change = request.getfixturevalue("norman_cells")
    scores = {}
    for name, cells in {"measured": measured, "no_change": no_change}.items():
        evaluator = MetricsEvaluator(
            adata_pred=cells,
            adata_real=real,
            control_pert="control",
            pert_col="perturbation",
            num_threads=1,
            outdir=str(tmp_path / name),
        )
        results, agg = evaluator.compute(profile="full", write_csv=False)
        assert sorted(results["perturbation"].to_list()) == sorted(CONDITIONS)
        scores[name] = dict(zip(agg["statistic"], agg["pearson_delta"], strict=True))["mean"]
        counts = dict(zip(agg["statistic"], agg["de_nsig_counts_pred"], strict=True))["mean"]
        assert np.isfinite(counts)
        # realistic noise: a handful of DE genes per condition, not hundreds
        assert counts <= 20
    assert scores["measured"] > 0.8
    assert scores["measured"] > scores["no_change"]


def test_pertpy_distances_on_sampled_cells(request):
    pt = pytest.importorskip("pertpy")
    real, measured, no_change = request.getfixturevalue("norman_cells")
    for metric in ("edistance", "mse"):
        distance = pt.tools.Distance(metric=metric)
        for condition in CONDITIONS:
            y = real[real.obs["perturbation"] == condition].X.toarray()
            near = distance(measured[measured.obs["perturbation"] == condition].X.toarray(), y)
            far = distance(no_change[no_change.obs["perturbation"] == condition].X.toarray(), y)
            assert np.isfinite(near)
            assert near < far, (metric, condition, near, far)

"""``scgears demo``: every output file is written and readable, the summary, the CLI's errors."""

from __future__ import annotations

import contextlib
import io
import logging
import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from scgears._cli import format_summary, main
from scgears._demo import GI_SUBTYPES, OUTPUT_FILES, SCREEN_SIZES, _check_out, planted_recovery

SMALL = SCREEN_SIZES["small"]
METHODS = ("GEARS", "control", "mean", "additive", "linear")
N_PAIRS = SMALL["n_perturbed_genes"] * (SMALL["n_perturbed_genes"] - 1) // 2


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Run ``scgears demo --small`` once, in process; returns (out folder, stdout, exit code)."""
    out = tmp_path_factory.mktemp("demo") / "results"
    threads = torch.get_num_threads()
    handlers = list(logging.getLogger("scgears").handlers)
    stdout = io.StringIO()
    # one thread: fast whatever other processes share the CPU (and it exercises --threads)
    with contextlib.redirect_stdout(stdout):
        code = main(["demo", "--out", str(out), "--small", "--threads", "1", "--quiet"])
    assert torch.get_num_threads() == threads  # restored
    assert logging.getLogger("scgears").handlers == handlers  # the CLI's handler is removed
    return out, stdout.getvalue(), code


def test_demo_writes_every_file(demo):
    out, _, code = demo
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES.values())


def test_demo_prediction_is_a_profile_of_the_test_conditions(demo):
    out = demo[0]
    pred = ad.read_h5ad(out / "prediction.h5ad")
    metrics = pd.read_csv(out / "metrics.csv")
    test = metrics.loc[metrics["method"] == "GEARS", "condition"]
    assert list(pred.obs_names) == list(test)
    assert pred.n_vars == SMALL["n_genes"]
    assert set(pred.layers) == {"delta", "uncertainty"}
    control = pred.var["control_mean"].to_numpy()
    np.testing.assert_allclose(pred.layers["delta"], pred.X - control[None, :], atol=1e-5)
    assert (pred.layers["uncertainty"] > 0).all()


def test_demo_gi_profiles_and_table_cover_every_pair(demo):
    out = demo[0]
    grid = ad.read_h5ad(out / "gi_map.h5ad")
    assert grid.shape == (SMALL["n_perturbed_genes"] + N_PAIRS, SMALL["n_genes"])
    assert {"delta", "uncertainty"} <= set(grid.layers)
    gi = pd.read_csv(out / "gi_table.csv", index_col=0, keep_default_na=False)
    assert len(gi) == N_PAIRS
    assert set(gi.index) == set(grid.obs_names[grid.obs["n_perturbed_genes"] == 2])
    paper = [f"paper_{s}" for s in GI_SUBTYPES]
    for column in ("gene_a", "gene_b", "mag", "corr_fit", "dcor", "eq_contr", "subtype", *paper):
        assert column in gi.columns, column
    # the screen's measured pairs carry their split set and planted subtype
    assert gi["measured"].dtype == bool
    measured = gi[gi["measured"]]
    assert len(measured) == SMALL["n_doubles"]
    assert set(measured["split"]) <= {"train", "val", "test"}
    assert set(measured["planted"]) == {*GI_SUBTYPES, "additive"}
    assert (gi.loc[~gi["measured"], "planted"] == "").all()


def test_demo_tables_have_their_columns(demo):
    out = demo[0]
    metrics = pd.read_csv(out / "metrics.csv")
    assert {"method", "condition", "subgroup", "mse_de", "pearson_delta"} <= set(metrics.columns)
    assert set(metrics["method"]) == set(METHODS)
    gears = set(metrics.loc[metrics["method"] == "GEARS", "condition"])
    for method in ("control", "mean", "linear"):
        assert set(metrics.loc[metrics["method"] == method, "condition"]) == gears
    # additive is only defined where both singles were trained
    assert set(metrics.loc[metrics["method"] == "additive", "subgroup"]) == {"combo_seen2"}

    summary = pd.read_csv(out / "summary.csv")
    columns = ["method", "subgroup", "n_conditions", "mse_de", "pearson_delta"]
    assert list(summary.columns) == columns
    assert set(summary["method"]) == set(METHODS)
    recovery = pd.read_csv(out / "gi_recovery.csv")
    assert list(recovery["subtype"]) == list(GI_SUBTYPES)
    assert (recovery["planted"] == 1).all()  # one planted pair per subtype in the small screen
    assert (recovery[["gears", "measured"]].to_numpy() <= 1).all()
    timings = pd.read_csv(out / "timings.csv", index_col=0)
    assert "train GEARS" in timings.index
    assert (timings["seconds"] >= 0).all()


@pytest.mark.parametrize(
    "name", ["perturbation.png", "metrics.png", "gi_map.png", "uncertainty.png"]
)
def test_demo_figures_are_valid_images(demo, name):
    path = demo[0] / name
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) > 200


def test_demo_prints_the_summary(demo):
    _, stdout, _ = demo
    for text in (*METHODS, "mse_de", "pearson_delta", "unseen_single", "train GEARS", "synergy"):
        assert text in stdout, text


def test_same_seed_gives_the_same_numbers_and_overwrite_keeps_other_files(demo, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(
            ["demo", "--out", str(tmp_path), "--small", "--threads", "1", "--quiet", "--overwrite"]
        )
    assert code == 0
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    for name in ("metrics.csv", "gi_table.csv"):
        first = pd.read_csv(demo[0] / name)
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / name), first)


def test_module_help_runs_in_a_subprocess():
    for args in (["--help"], ["demo", "--help"]):
        result = subprocess.run(
            [sys.executable, "-m", "scgears", *args], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert "usage: scgears" in result.stdout
    assert "--out" in result.stdout
    assert "--small" in result.stdout


def test_non_empty_out_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--out", str(tmp_path), "--small"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "is not empty" in error
    assert "--overwrite" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_check_out_accepts_new_empty_or_overwritten_folders(tmp_path):
    assert _check_out(tmp_path / "new" / "nested", overwrite=False).is_dir()
    assert _check_out(tmp_path / "new" / "nested", overwrite=False).is_dir()  # empty: fine
    (tmp_path / "new" / "nested" / "x.csv").write_text("")
    assert _check_out(tmp_path / "new" / "nested", overwrite=True).is_dir()
    with pytest.raises(FileExistsError, match="not a folder"):
        _check_out(tmp_path / "new" / "nested" / "x.csv", overwrite=True)


def test_bad_epochs_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--out", str(tmp_path / "o"), "--epochs", "0"])
    assert "--epochs: must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_summary_leaves_out_all_of_a_method_scored_on_fewer_conditions():
    summary = pd.DataFrame(
        {
            "method": ["GEARS", "GEARS", "GEARS", "additive", "additive"],
            "subgroup": ["unseen_single", "combo_seen2", "all", "combo_seen2", "all"],
            "n_conditions": [3, 2, 5, 2, 2],
            "mse_de": [0.5, 0.25, 0.4, 0.125, 0.125],
            "pearson_delta": [0.5, 0.75, 0.6, 0.875, 0.875],
        }
    )
    recovery = pd.DataFrame({"subtype": ["synergy"], "planted": [2], "gears": [1]})
    text = format_summary(summary, recovery)
    mse = text.split("mse_de: lower is better")[1].split("pearson_delta")[0]
    assert mse.splitlines()[2].split() == ["GEARS", "0.500", "0.250", "0.400"]
    assert mse.splitlines()[3].split() == ["additive", "-", "0.125", "-"]
    assert "additive: combo_seen2 2" in text


def test_planted_recovery_counts_planted_pairs_ranked_first():
    pairs = ["A+B", "A+C", "B+C", "C+D", "A+D"]
    planted = pd.DataFrame(
        {"subtype": ["synergy", "synergy", "additive", "suppression", "additive"]}, index=pairs
    )
    scores = {"dcor": 0.5, "corr_fit": 0.9, "eq_contr": 0.5}
    # predicted: A+B and B+C have the highest mag, C+D the lowest; NaN ranks last
    predicted = pd.DataFrame({"mag": [3.0, np.nan, 2.0, 0.1, 1.0], **scores}, index=pairs)
    measured = pd.DataFrame({"mag": [3.0, 2.5, 1.0, 0.2, 1.1], **scores}, index=pairs)
    table = planted_recovery(predicted, measured, planted, test=["A+C", "C+D"]).set_index("subtype")
    assert table.loc["synergy", ["planted", "gears", "measured"]].tolist() == [2, 1, 2]
    assert table.loc["synergy", "random"] == pytest.approx(2 * 2 / 5)
    assert table.loc["suppression", ["planted", "gears", "measured"]].tolist() == [1, 1, 1]
    # among the test pairs only: A+C (synergy, NaN predicted mag) is not recovered
    assert table.loc["synergy", ["planted_test", "gears_test"]].tolist() == [1, 0]
    assert table.loc["suppression", ["planted_test", "gears_test"]].tolist() == [1, 1]
    assert table.loc["neomorphism", ["planted", "gears"]].tolist() == [0, 0]

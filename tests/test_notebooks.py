"""The tutorials in notebooks/ run top to bottom, and their stored copies (the docs) were run.

Each notebook is executed with nbclient on a temporary copy (the stored notebook is never
overwritten), with ``SCGEARS_TUTORIAL_SMALL`` set so that it trains for a few steps only. The Norman
tutorial reads the real Norman subset of ``../shared/data`` through ``SCGEARS_TUTORIAL_NORMAN``
instead of downloading the screen, and is skipped when that data is absent.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
NORMAN_NOTEBOOK = "02_norman2019.ipynb"
NORMAN_SUBSET = Path("perturbseq") / "perturbench_devel_norman19_mcfaline23.h5ad"
#: Seconds one cell may run; a whole notebook takes well under a minute at the small size.
CELL_TIMEOUT = 300


def test_every_tutorial_is_collected():
    if not NOTEBOOK_DIR.is_dir():
        pytest.skip(f"no notebooks folder at {NOTEBOOK_DIR} (running from an sdist?)")
    names = {path.name for path in NOTEBOOKS}
    tutorials = {
        "01_quickstart.ipynb",
        "02_norman2019.ipynb",
        "03_gi_map.ipynb",
        "04_custom_graph_triples.ipynb",
        "05_experiment_design.ipynb",
    }
    assert tutorials <= names, f"missing tutorials: {sorted(tutorials - names)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_stored_notebook_is_executed_without_errors(path):
    """The docs render the stored outputs: every code cell ran, in order, and none failed."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["language"] == "python"
    cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in cells]
    assert None not in counts, f"{path.name} has code cells that were not executed"
    assert counts == sorted(counts), f"{path.name} was not executed top to bottom"
    errors = [o for cell in cells for o in cell.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} stores an error: {errors[0].get('ename')}"
    images = [o for cell in cells for o in cell.outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name} stores no plot"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs(path, tmp_path, monkeypatch, request, record_property):
    monkeypatch.setenv("SCGEARS_TUTORIAL_SMALL", "1")
    if path.name == NORMAN_NOTEBOOK:
        norman = request.getfixturevalue("shared_data") / NORMAN_SUBSET
        if not norman.exists():
            pytest.skip(f"real data not available: {norman}")
        monkeypatch.setenv("SCGEARS_TUTORIAL_NORMAN", str(norman))
    shutil.copyfile(path, tmp_path / path.name)
    nb = nbformat.read(tmp_path / path.name, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the failing cell, on any error
    elapsed = time.perf_counter() - start
    record_property("execution_seconds", round(elapsed, 1))
    # the docs build executes notebooks in notebooks/: they must not leave files behind
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]

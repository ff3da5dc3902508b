"""Shared fixtures: real data from ../shared/data (skipped when absent) and small screens."""

from __future__ import annotations

import os
from pathlib import Path

# OpenMP threads that spin while waiting make torch up to 10x slower on a busy 2-core machine;
# set before torch is imported by any test module
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import anndata as ad
import pytest

#: ``../shared/data`` beside the checkout; CI has it, a user's machine does not.
SHARED_DATA = Path(
    os.environ.get("SCGEARS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
NORMAN_FILE = SHARED_DATA / "perturbseq" / "perturbench_devel_norman19_mcfaline23.h5ad"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(
            f"real data not available: {path} (it lives in ../shared/data beside the checkout)"
        )
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ``../shared/data`` folder; tests using it skip when it is absent."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def _norman_cached() -> ad.AnnData:
    adata = ad.read_h5ad(_require(NORMAN_FILE))
    return adata[adata.obs["dataset"] == "norman19"].copy()


@pytest.fixture
def norman(_norman_cached) -> ad.AnnData:
    """The real Norman 2019 subset: 3,375 cells x 500 genes, labels in ``obs['condition']``."""
    return _norman_cached.copy()


def _prepared_screen(*, seed, split_seed=1, all_genes=True, graph_genes=None, **size):
    """A simulated screen through every ``sg.pp`` step, ready for ``GEARS.setup_anndata``."""
    import scgears as sg

    adata = sg.datasets.simulate_screen(seed=seed, **size)
    sg.pp.register_perturbations(adata, "perturbation_name")
    sg.pp.rank_perturbation_genes(adata)
    sg.pp.split_perturbations(adata, kind="simulation", seed=split_seed)
    sg.pp.coexpression_graph(adata)
    sg.pp.perturbation_graph(adata, genes=graph_genes, all_genes=all_genes)
    return adata


@pytest.fixture(scope="session")
def prepared_screen():
    """The pp pipeline on a simulated screen: ``prepared_screen(seed=1, n_genes=100, ...)``."""
    return _prepared_screen

"""What the benchmark scripts share: screen-size arguments, a quiet torch, the Norman subset."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The real Norman 2019 subset of the development data (absent on users' machines).
NORMAN_SUBSET = HERE.parents[1] / "shared" / "data" / "perturbseq"
NORMAN_SUBSET = NORMAN_SUBSET / "perturbench_devel_norman19_mcfaline23.h5ad"


def add_screen_arguments(parser: argparse.ArgumentParser) -> None:
    """The size of the simulated screen; the defaults are Norman et al. 2019's shape."""
    parser.add_argument("--genes", type=int, default=5000)
    parser.add_argument("--perturbed-genes", type=int, default=105)
    parser.add_argument("--doubles", type=int, default=130)
    parser.add_argument("--cells-per-condition", type=int, default=420)


def prepare_run(threads: int) -> None:
    """Limit torch to ``threads`` threads and silence warnings and Lightning's info lines.

    Idle OpenMP threads must not spin (``OMP_WAIT_POLICY=PASSIVE``): on a busy 2-core machine
    spinning makes torch many times slower, and the timings would measure the contention.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    import torch

    torch.set_num_threads(threads)


def load_norman_subset(path: Path = NORMAN_SUBSET):
    """The Norman 2019 cells of the development subset; exits with a message when it is missing."""
    import anndata as ad

    if not Path(path).exists():
        sys.exit(f"Norman subset not found at {path}; pass --data.")
    adata = ad.read_h5ad(path)
    return adata[adata.obs["dataset"] == "norman19"].copy()

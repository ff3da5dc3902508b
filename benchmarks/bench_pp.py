"""Time and peak memory of each ``sg.pp`` step and of the whole preprocessing pipeline.

The screen is simulated at the size of Norman et al. 2019 (about 100,000 cells x 5,000 genes,
sparse, ~105 single genes and ~130 doubles). Each step is timed with ``time.perf_counter`` and its
peak resident memory (RSS) is sampled by a background thread every 10 ms (``psutil``; without it,
``resource.getrusage``, which only knows the process-wide peak). Targets: the whole pipeline in
under 2 minutes and under 6 GB on 2 CPU cores.

Run from the repository root::

    python benchmarks/bench_pp.py                       # the full-size screen
    python benchmarks/bench_pp.py --cells-per-condition 40 --genes 1000   # a quick smoke run
    python benchmarks/bench_pp.py --profile coexpression_graph            # where the time goes

Thread pools are limited to ``--threads`` (default 2) cores before numpy is imported.
"""

from __future__ import annotations

import argparse
import os
import sys

from _setup import add_screen_arguments


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_screen_arguments(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads")
    parser.add_argument(
        "--profile", default=None, help="cProfile this step (e.g. coexpression_graph)"
    )
    parser.add_argument("--skip", nargs="*", default=[], help="steps to leave out")
    return parser.parse_args(argv)


ARGS = _parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, str(ARGS.threads))

import cProfile  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import resource  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from anndata import AnnData  # noqa: E402

import scgears as sg  # noqa: E402

try:
    import psutil
except ImportError:  # pragma: no cover - psutil ships with most scientific stacks
    psutil = None

TARGET_SECONDS = 120
TARGET_MB = 6 * 1024


def rss_mb() -> float:
    """Current resident memory in MB (the process-wide peak when psutil is missing)."""
    if psutil is not None:
        return psutil.Process().memory_info().rss / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


class PeakSampler:
    """Sample RSS in a background thread; ``peak`` is the largest value since ``reset``."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_mb())

    def reset(self) -> float:
        self.peak = rss_mb()
        return self.peak

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def simulate(args) -> AnnData:
    """The screen: ``sg.datasets.simulate_screen`` when it exists, a plain fallback otherwise."""
    simulate_screen = getattr(getattr(sg, "datasets", None), "simulate_screen", None)
    if simulate_screen is not None:
        return simulate_screen(
            n_genes=args.genes,
            n_perturbed_genes=args.perturbed_genes,
            n_doubles=args.doubles,
            n_cells_per_condition=args.cells_per_condition,
            seed=args.seed,
        )
    return fallback_screen(args)


def fallback_screen(args) -> AnnData:
    """Sparse log1p Poisson counts with a random shift per condition; no biology, only size."""
    rng = np.random.default_rng(args.seed)
    genes = np.array([f"GENE{i}" for i in range(args.genes)])
    singles = list(genes[: args.perturbed_genes])
    doubles = set()
    while len(doubles) < args.doubles:
        a, b = sorted(rng.choice(singles, 2, replace=False))
        doubles.add(f"{a}+{b}")
    conditions = ["control", *singles, *sorted(doubles)]
    labels = np.repeat(conditions, args.cells_per_condition)
    base = rng.gamma(0.3, 1.0, args.genes)
    shift = np.exp(rng.normal(0, 0.3, (len(conditions), args.genes)))
    codes = np.repeat(np.arange(len(conditions)), args.cells_per_condition)
    blocks = []
    for start in range(0, len(labels), 10_000):
        rate = base * shift[codes[start : start + 10_000]]
        blocks.append(sp.csr_matrix(np.log1p(rng.poisson(rate)).astype(np.float32)))
    return AnnData(
        X=sp.vstack(blocks, format="csr"),
        obs=pd.DataFrame(
            {"perturbation_name": labels}, index=[f"c{i}" for i in range(len(labels))]
        ),
        var=pd.DataFrame(index=genes),
    )


STEPS = {
    "register_perturbations": lambda a: sg.pp.register_perturbations(
        a, "perturbation_name", control="control"
    ),
    "rank_perturbation_genes": lambda a: sg.pp.rank_perturbation_genes(a),
    "split_perturbations": lambda a: sg.pp.split_perturbations(a, kind="simulation", seed=1),
    "coexpression_graph": lambda a: sg.pp.coexpression_graph(a),
    "perturbation_graph": lambda a: sg.pp.perturbation_graph(a, source="go"),
}


@contextmanager
def maybe_profile(enabled: bool, top: int = 25):
    if not enabled:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
        print(out.getvalue())


def main(args) -> int:
    load = os.getloadavg()
    print(
        f"scgears {sg.__version__}; {os.cpu_count()} CPUs visible, {args.threads} BLAS threads; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    rows = []
    with PeakSampler() as sampler:
        start_mb = sampler.reset()
        t0 = time.perf_counter()
        adata = simulate(args)
        rows.append(("(simulate screen)", time.perf_counter() - t0, sampler.peak, start_mb))
        n_cond = adata.obs["perturbation_name"].nunique()
        density = adata.X.nnz / (adata.n_obs * adata.n_vars) if sp.issparse(adata.X) else 1.0
        print(
            f"screen: {adata.n_obs:,} cells x {adata.n_vars:,} genes, {n_cond} conditions, "
            f"X {type(adata.X).__name__} {adata.X.dtype} (density {density:.2f})"
        )

        pipeline_start_mb = sampler.reset()
        pipeline_peak = pipeline_start_mb
        total = 0.0
        for name, step in STEPS.items():
            if name in args.skip:
                continue
            before = sampler.reset()
            t0 = time.perf_counter()
            with maybe_profile(args.profile == name):
                step(adata)
            seconds = time.perf_counter() - t0
            total += seconds
            pipeline_peak = max(pipeline_peak, sampler.peak)
            rows.append((name, seconds, sampler.peak, before))
        rows.append(("pp pipeline (total)", total, pipeline_peak, pipeline_start_mb))

    print()
    print(f"{'step':<26} {'seconds':>9} {'peak MB':>9} {'+MB':>8}")
    for name, seconds, peak, before in rows:
        print(f"{name:<26} {seconds:>9.2f} {peak:>9.0f} {peak - before:>8.0f}")
    print()
    ok_time = total < TARGET_SECONDS
    ok_mem = pipeline_peak < TARGET_MB
    print(
        f"targets: pipeline < {TARGET_SECONDS} s: {total:.1f} s "
        f"({'met' if ok_time else 'MISSED'}); "
        f"peak RSS < {TARGET_MB / 1024:.0f} GB: {pipeline_peak / 1024:.2f} GB "
        f"({'met' if ok_mem else 'MISSED'}; includes the screen itself)"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if ok_time and ok_mem else 1


if __name__ == "__main__":
    sys.exit(main(ARGS))

"""Time a 4,950-pair predicted GI map with an uncertainty layer (issue 10's speed target).

Synthetic predicted profiles, as the previous measurement: a 100-gene panel over 1,000 genes, each
single a N(0, 0.3) effect on a random 10% of the genes, additive doubles, per-gene s.d. 0.05 in
``layers["uncertainty"]``. Prints the seconds of ``sg.tl.genetic_interactions`` with its defaults
and the load average. Run at normal priority from the repository root::

    python benchmarks/_gi_map_timing.py
"""

from __future__ import annotations

import itertools
import os
import sys
import time

import numpy as np


def main(n_panel: int = 100, n_genes: int = 1000, seed: int = 0) -> None:
    import scgears as sg
    from scgears._profiles import make_profiles

    rng = np.random.default_rng(seed)
    panel = [f"P{i:03d}" for i in range(n_panel)]
    singles = np.stack(
        [rng.normal(0.0, 0.3, n_genes) * (rng.random(n_genes) < 0.1) for _ in range(n_panel)]
    )
    pairs = list(itertools.combinations(range(n_panel), 2))
    doubles = np.stack([singles[i] + singles[j] for i, j in pairs])
    control = np.ones(n_genes)
    labels = panel + [f"{panel[i]}+{panel[j]}" for i, j in pairs]
    delta = np.concatenate([singles, doubles])
    profiles = make_profiles(
        labels,
        [f"g{i}" for i in range(n_genes)],
        control + delta,
        control,
        source="synthetic",
        uncertainty=np.full(delta.shape, 0.05),
    )
    load = os.getloadavg()
    start = time.perf_counter()
    gi = sg.tl.genetic_interactions(profiles, key_added=None)
    seconds = time.perf_counter() - start
    print(
        f"{len(gi)} predicted pairs with uncertainty: {seconds:.1f} s "
        f"({1000 * seconds / len(gi):.1f} ms per pair); load average before "
        f"{load[0]:.1f}, after {os.getloadavg()[0]:.1f}; calls "
        f"{gi['subtype'].value_counts().to_dict()}"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))

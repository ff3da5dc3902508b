"""A second planted-truth generator of genetic interactions, independent of ``simulate_screen``.

``simulate_screen`` plants interactions inside a saturating regulatory network, so its "additive"
pairs are themselves a little sub-additive and its planted subtypes carry the network's side
effects. Calls tuned on it alone could learn its quirks; this generator is deliberately simple
and shares no code with it. Each single perturbation has a sparse log-fold effect on genes (its
target knocked down, a few modules of affected genes, some modules shared between singles so that
singles are correlated as in real screens); each double's log-fold effect is built from its
singles' by the definitions of the subtypes (Norman et al. 2019, GEARS; docs/metrics.md):

``additive``     ``l_AB = l_A + l_B``
``synergy``      ``l_AB = f (l_A + l_B)``, ``f`` in ``synergy`` (stronger, same direction)
``suppression``  ``l_AB = f (l_A + l_B)``, ``f`` in ``suppression`` (weaker, both contributing)
``neomorphism``  ``l_AB = l_A + l_B + r``, ``r`` on genes neither single changes, of norm
                 ``neo * ||l_A + l_B||``
``epistasis``    ``l_AB = l_A + e l_B`` with ``e`` in ``masked`` (A masks B; dissimilar singles)
``redundancy``   ``l_B = s l_A + small noise`` (the singles do the same thing), ``l_AB = l_A``

Counts are negative binomial around ``depth_c * exp(base_g + l_cg)`` (cell depths log-normal,
gene-wise dispersion), then ``normalize_total`` and ``log1p`` as a user would, so the log1p of low
counts makes even an additive pair slightly non-linear, as in real data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

SUBTYPES = ("additive", "synergy", "suppression", "neomorphism", "redundancy", "epistasis")


def _single_effects(rng, n_genes, n_singles, n_modules, module_size, effect_sd):
    """Sparse log-fold effects: each single hits 1-3 of the shared modules plus its own genes."""
    modules = [rng.choice(n_genes, size=module_size, replace=False) for _ in range(n_modules)]
    module_effect = [rng.normal(0.0, effect_sd, module_size) for _ in range(n_modules)]
    effects = np.zeros((n_singles, n_genes))
    for i in range(n_singles):
        for m in rng.choice(n_modules, size=rng.integers(1, 4), replace=False):
            effects[i, modules[m]] += rng.uniform(0.5, 1.5) * module_effect[m]
        own = rng.choice(n_genes, size=module_size // 2, replace=False)
        effects[i, own] += rng.normal(0.0, effect_sd, len(own))
    return effects


def _cosine(x, y):
    return float(x @ y / np.sqrt((x @ x) * (y @ y) + 1e-12))


def planted_screen(
    *,
    n_genes: int = 1000,
    n_per_subtype: int = 8,
    n_additive: int = 40,
    n_cells: int = 100,
    synergy: tuple[float, float] = (1.5, 2.0),
    suppression: tuple[float, float] = (0.4, 0.6),
    neo: tuple[float, float] = (0.5, 1.0),
    masked: tuple[float, float] = (0.0, 0.2),
    effect_sd: float = 0.6,
    depth: float = 8000.0,
    dispersion: float = 0.2,
    seed: int = 0,
) -> AnnData:
    """Cells of a planted screen; ``uns["planted"]`` holds the truth (index ``"A+B"``).

    Returns log1p-normalised X, ``obs["perturbation_name"]`` (``"control"``, ``"G001"``,
    ``"G001+G002"``), ``uns["planted"]`` (DataFrame: ``subtype``, ``factor``) and
    ``uns["true_delta"]`` (noise-free log1p-normalised change of every condition from control,
    DataFrame conditions x genes).
    """
    rng = np.random.default_rng(seed)
    n_pairs = 5 * n_per_subtype + n_additive
    n_singles = 2 * n_pairs  # every pair has its own two singles: pairs are independent
    module_size = max(10, n_genes // 40)
    effects = _single_effects(rng, n_genes, n_singles, 12, module_size, effect_sd)
    names = [f"G{i:03d}" for i in range(n_singles)]
    kinds = ["additive"] * n_additive + [k for k in SUBTYPES[1:] for _ in range(n_per_subtype)]
    rng.shuffle(kinds)
    singles, doubles, truth = {}, {}, []
    for p, kind in enumerate(kinds):
        a, b = 2 * p, 2 * p + 1
        l_a, l_b = effects[a].copy(), effects[b].copy()
        if kind == "redundancy":
            l_b = rng.uniform(0.8, 1.2) * l_a + rng.normal(0.0, 0.05 * effect_sd, n_genes) * (
                l_a != 0
            )
        elif kind in ("epistasis", "suppression", "synergy", "neomorphism"):
            # dissimilar singles: redraw B until its effect is not aligned with A's
            tries = 0
            while abs(_cosine(l_a, l_b)) > 0.3 and tries < 50:
                l_b = _single_effects(rng, n_genes, 1, 12, module_size, effect_sd)[0]
                tries += 1
        factor = 1.0
        if kind == "additive":
            l_ab = l_a + l_b
        elif kind == "synergy":
            factor = rng.uniform(*synergy)
            l_ab = factor * (l_a + l_b)
        elif kind == "suppression":
            factor = rng.uniform(*suppression)
            l_ab = factor * (l_a + l_b)
        elif kind == "neomorphism":
            factor = rng.uniform(*neo)
            quiet = np.flatnonzero((l_a == 0) & (l_b == 0))
            new = rng.choice(quiet, size=min(len(quiet), module_size), replace=False)
            r = np.zeros(n_genes)
            r[new] = rng.normal(0.0, 1.0, len(new))
            base = l_a + l_b
            r *= factor * np.linalg.norm(base) / np.linalg.norm(r)
            l_ab = base + r
        elif kind == "epistasis":
            factor = rng.uniform(*masked)
            l_ab = l_a + factor * l_b
        else:  # redundancy
            l_ab = l_a.copy()
        ga, gb = names[a], names[b]
        singles[ga], singles[gb] = l_a, l_b
        doubles[f"{ga}+{gb}"] = l_ab
        truth.append({"pair": f"{ga}+{gb}", "subtype": kind, "factor": factor})
    conditions = {"control": np.zeros(n_genes), **singles, **doubles}

    base = rng.normal(np.log(0.5), 1.2, n_genes)  # log mean count at depth 1 / fraction
    base = np.log(np.exp(base) / np.exp(base).sum())
    theta = 1.0 / (dispersion * rng.lognormal(0.0, 0.5, n_genes))
    blocks, labels, true_means = [], [], {}
    n_ctrl = max(n_cells, 4 * n_cells)
    for label, lfc in conditions.items():
        n = n_ctrl if label == "control" else n_cells
        frac = np.exp(base + lfc)
        frac /= frac.sum()
        cell_depth = depth * rng.lognormal(0.0, 0.3, n)
        mu = cell_depth[:, None] * frac[None, :]
        counts = rng.negative_binomial(theta[None, :], theta[None, :] / (theta[None, :] + mu))
        blocks.append(sp.csr_matrix(counts.astype(np.float32)))
        labels += [label] * n
        # noise-free log1p-normalised mean at the median depth (for the gene-level truth)
        true_means[label] = np.log1p(1e4 * frac)
    counts = sp.vstack(blocks).tocsr()
    totals = np.asarray(counts.sum(axis=1)).ravel()
    x = sp.diags(1e4 / np.maximum(totals, 1.0)) @ counts
    x.data = np.log1p(x.data)
    adata = AnnData(
        X=x.astype(np.float32).tocsr(),
        obs=pd.DataFrame(
            {"perturbation_name": labels}, index=[f"c{i}" for i in range(len(labels))]
        ),
        var=pd.DataFrame(index=[f"g{i:04d}" for i in range(n_genes)]),
    )
    adata.layers["counts"] = counts
    planted = pd.DataFrame(truth).set_index("pair")
    adata.uns["planted"] = planted
    means = pd.DataFrame(true_means, index=adata.var_names).T
    adata.uns["true_delta"] = means - means.loc["control"]
    return adata

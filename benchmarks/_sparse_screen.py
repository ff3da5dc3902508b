"""A second screen generator for the design benchmark, independent of ``scgears``' simulator.

``sg.datasets.simulate_screen`` derives every effect from one regulatory network and plants its
interactions on pairs of genes with visible single effects. A method tuned on it could learn that
network's quirks, so the design benchmark also runs on this much simpler generator:

* single effects are sparse log fold changes: a quarter of the perturbed genes move nothing but
  themselves (a guide that does not work, a gene without a programme), the others move 10-60
  random genes by ``N(0, s)`` with a per-gene ``s`` in 0.3-1.0;
* doubles are a random set of pairs, and the interactions are planted on a *uniformly random*
  subset of them (or favouring a few hub genes, ``n_hub_genes``), whatever their singles look
  like (so some planted interactions cannot be seen):
  ``synergy`` (the sum of the singles times 1.6-2.2), ``suppression`` (times 0.15-0.45),
  ``epistasis`` (one single dominates: ``dominant + 0.15 * other``) and ``neomorphism`` (the sum
  plus a new programme on 25-50 genes that neither single moves);
* counts are negative binomial around ``exp(log baseline + effect)`` times a per-cell size
  factor, and ``X`` is log1p of counts normalised to 10,000.

No regulatory network, no GO structure in the effects, no saturation: only the gene names are real
(GO-annotated symbols, so that ``sg.pp.perturbation_graph`` has something to connect).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

SUBTYPES = ("synergy", "suppression", "epistasis", "neomorphism")


def sparse_screen(
    *,
    n_genes: int = 400,
    n_perturbed_genes: int = 24,
    n_doubles: int = 80,
    n_interactions_per_subtype: int = 4,
    n_cells_per_condition: int = 60,
    n_hub_genes: int = 0,
    seed: int = 0,
) -> tuple[AnnData, pd.Series]:
    """Return the screen (registered-ready, ``obs["perturbation_name"]``) and the planted truth.

    With ``n_hub_genes``, that many perturbed genes are interaction hubs: a double with a hub is
    eight times as likely to carry a planted interaction as one without (as in Norman et al.'s
    map, where a few genes interact with many partners).
    """
    from scgears._resources import go_annotations

    rng = np.random.default_rng(10_000 + seed)
    symbols = np.array(sorted(s for s, terms in go_annotations().items() if len(terms) >= 5))
    names = rng.choice(symbols, size=n_genes, replace=False)
    perturbed = np.arange(n_perturbed_genes)  # the first genes are the perturbed ones

    log_base = rng.normal(np.log(2.0), 1.0, n_genes)
    effects = np.zeros((n_perturbed_genes, n_genes))
    for i in perturbed:
        effects[i, i] = -1.5  # CRISPRi lowers the gene itself
        if rng.random() < 0.25:
            continue
        targets = rng.choice(np.arange(n_perturbed_genes, n_genes), rng.integers(10, 61), False)
        effects[i, targets] = rng.normal(0.0, rng.uniform(0.3, 1.0), len(targets))

    all_pairs = [(a, b) for a in perturbed for b in perturbed if a < b]
    doubles = [all_pairs[k] for k in rng.choice(len(all_pairs), n_doubles, replace=False)]
    hubs = rng.choice(perturbed, n_hub_genes, replace=False)
    weight = np.array([1.0 + 7.0 * (a in hubs or b in hubs) for a, b in doubles])
    n_planted = len(SUBTYPES) * n_interactions_per_subtype
    planted = rng.choice(n_doubles, n_planted, replace=False, p=weight / weight.sum())
    subtype = {doubles[k]: SUBTYPES[j % len(SUBTYPES)] for j, k in enumerate(planted)}

    conditions: list[tuple[str, np.ndarray]] = [("control", np.zeros(n_genes))]
    conditions += [(names[i], effects[i]) for i in perturbed]
    truth = {}
    for a, b in doubles:
        kind = subtype.get((a, b), "additive")
        total = effects[a] + effects[b]
        own = np.zeros(n_genes, dtype=bool)
        own[[a, b]] = True
        if kind == "synergy":
            total = np.where(own, total, rng.uniform(1.6, 2.2) * total)
        elif kind == "suppression":
            total = np.where(own, total, rng.uniform(0.15, 0.45) * total)
        elif kind == "epistasis":
            dom, other = (a, b) if rng.random() < 0.5 else (b, a)
            total = np.where(own, total, effects[dom] + 0.15 * effects[other])
        elif kind == "neomorphism":
            quiet = np.flatnonzero((effects[[a, b]] == 0).all(0))
            quiet = quiet[quiet >= n_perturbed_genes]
            new = rng.choice(quiet, rng.integers(25, 51), replace=False)
            total = total.copy()
            total[new] += rng.choice([-1, 1]) * rng.uniform(0.6, 1.2, len(new))
        label = "+".join(sorted((names[a], names[b])))
        truth[label] = kind
        conditions.append((label, total))

    n_control = 5 * n_cells_per_condition
    sizes = [n_control] + [n_cells_per_condition] * (len(conditions) - 1)
    labels = np.repeat([c for c, _ in conditions], sizes)
    lfc = np.repeat(np.stack([e for _, e in conditions]), sizes, axis=0)
    size_factor = rng.lognormal(0.0, 0.3, len(labels))[:, None]
    mu = np.exp(log_base + lfc) * size_factor
    theta = 4.0
    counts = rng.poisson(rng.gamma(theta, mu / theta)).astype(np.float32)
    totals = counts.sum(1, keepdims=True)
    x = np.log1p(counts / np.maximum(totals, 1) * 1e4).astype(np.float32)

    obs = pd.DataFrame({"perturbation_name": pd.Categorical(labels)})
    obs.index = [f"cell{i}" for i in range(len(labels))]
    adata = AnnData(sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=names.astype(str)))
    adata.layers["counts"] = sp.csr_matrix(counts)
    return adata, pd.Series(truth, name="subtype").sort_index()

"""Evidence from measured cells behind sg.tl.recommend's "interactions" objective."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

import scgears as sg
from scgears.tl._recommend_evidence import gene_propensity, single_detectability


def _cells(effects: dict[str, np.ndarray], n_cells: int = 40, seed: int = 0) -> AnnData:
    rng = np.random.default_rng(seed)
    labels, rows = [], []
    for label, effect in {"control": np.zeros(50), **effects}.items():
        labels += [label] * n_cells
        rows.append(5.0 + effect + rng.normal(0, 1, (n_cells, 50)))
    adata = AnnData(
        np.vstack(rows).astype(np.float32),
        obs=pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(len(labels))]),
        var=pd.DataFrame(index=[f"g{i}" for i in range(50)]),
    )
    sg.pp.register_perturbations(adata, "perturbation", control="control")
    return adata


def test_detectability_separates_a_silent_guide_from_a_strong_one():
    strong = np.zeros(50)
    strong[:10] = 2.0
    adata = _cells({"KLF1": strong, "CEBPA": np.zeros(50)})
    table = single_detectability(adata, "scgears_condition", "scgears_split", None)
    assert set(table.index) == {"KLF1", "CEBPA"}
    # noise of the difference: sqrt(50 genes * (1/40 + 1/40)) = 1.58
    assert table.loc["KLF1", "noise"] == pytest.approx(np.sqrt(50 * 2 / 40), rel=0.2)
    assert table.loc["KLF1", "size"] == pytest.approx(np.sqrt(10 * 4.0), rel=0.15)
    assert table.loc["KLF1", "detectability"] > 0.9
    assert table.loc["CEBPA", "detectability"] < 0.3


def test_detectability_uses_training_cells_only():
    effect = np.zeros(50)
    effect[:10] = 2.0
    adata = _cells({"KLF1": effect})
    adata.obs["scgears_split"] = np.where(adata.obs["scgears_condition"] == "KLF1", "test", "train")
    table = single_detectability(adata, "scgears_condition", "scgears_split", None)
    assert "KLF1" not in table.index


def test_gene_propensity_shrinks_to_the_screen_rate_without_hubs():
    # every gene interacts in half of its pairs: no gene stands out
    pairs = {f"G{i}+G{j}": float((i + j) % 2) for i in range(8) for j in range(i + 1, 8)}
    propensity, p0, strength = gene_propensity(pd.Series(pairs))
    assert np.isinf(strength)
    assert set(propensity.values()) == {p0}


def test_gene_propensity_finds_a_hub():
    genes = [f"G{i}" for i in range(10)]
    evidence = {
        "+".join(sorted((a, b))): float("G0" in (a, b))
        for i, a in enumerate(genes)
        for b in genes[i + 1 :]
    }
    propensity, p0, strength = gene_propensity(pd.Series(evidence))
    assert np.isfinite(strength)
    assert propensity["G0"] > 0.6 > p0 > propensity["G5"]

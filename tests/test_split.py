"""split_perturbations: disjoint condition-level sets, the paper's subgroups, errors that help."""

from __future__ import annotations

import itertools

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scgears as sg

KEY = "scgears_split"
KINDS = ("simulation", "simulation_single", "combo_seen0", "combo_seen1", "combo_seen2", "single")


def genes_of(condition: str) -> tuple[str, ...]:
    return () if condition == "ctrl" else tuple(condition.split("+"))


def make_screen(conditions, cells: int = 2) -> ad.AnnData:
    """Labels only (the split never reads X): ``cells`` cells per condition plus 3 controls."""
    labels = ["control"] * 3 + [c for c in conditions for _ in range(cells)]
    adata = ad.AnnData(obs=pd.DataFrame({"p": labels}, index=[f"c{i}" for i in range(len(labels))]))
    sg.pp.register_perturbations(adata, "p")
    return adata


def full_screen(n_genes: int = 20, n_doubles: int = 40, seed: int = 0) -> list[str]:
    """Every gene's single plus random doubles: every gene can be seen."""
    genes = [f"G{i:02d}" for i in range(n_genes)]
    pairs = list(itertools.combinations(genes, 2))
    rng = np.random.default_rng(seed)
    doubles = [f"{a}+{b}" for a, b in (pairs[i] for i in rng.choice(len(pairs), n_doubles, False))]
    return genes + doubles


def check_split(adata: ad.AnnData, key: str = KEY) -> dict[str, set[str]]:
    """The invariants every kind must satisfy; returns the three sets of conditions."""
    cond = adata.obs["scgears_condition"].astype(str)
    split = adata.obs[key]
    assert isinstance(split.dtype, pd.CategoricalDtype)
    assert split.cat.categories.tolist() == ["train", "val", "test"]
    assert split.notna().all()
    # every cell of a condition is in the same set
    per_condition = split.astype(str).groupby(cond).agg(set)
    assert (per_condition.map(len) == 1).all()
    per_condition = per_condition.map(lambda s: next(iter(s)))

    uns = adata.uns[key]
    sets = {name: set(uns["conditions"][name]) for name in ("train", "val", "test")}
    for name, conditions in sets.items():
        assert len(conditions) == len(uns["conditions"][name])  # no duplicates
        assert conditions, f"{name} is empty"
        assert conditions == set(per_condition.index[per_condition == name])
    # disjoint and covering every condition, control in train
    assert sum(map(len, sets.values())) == len(set(cond))
    assert set().union(*sets.values()) == set(cond)
    assert "ctrl" in sets["train"]

    # the paper's rule: a gene is seen when its single is in train or val
    seen = {genes_of(c)[0] for c in sets["train"] | sets["val"] if len(genes_of(c)) == 1}
    seen_train = {genes_of(c)[0] for c in sets["train"] if len(genes_of(c)) == 1}
    for name, members, seen_genes in (
        ("subgroups", sets["test"], seen),
        ("val_subgroups", sets["val"], seen_train),
    ):
        groups = {k: list(v) for k, v in uns[name].items()}
        assert {"unseen_single", "combo_seen0", "combo_seen1", "combo_seen2"} <= set(groups)
        flat = [c for v in groups.values() for c in v]
        assert len(flat) == len(set(flat))
        assert set(flat) == members  # an exact partition
        for group, conditions in groups.items():
            for c in conditions:
                genes = genes_of(c)
                if len(genes) == 1:
                    assert group == "unseen_single"
                    assert genes[0] not in seen_genes
                else:
                    assert group == f"combo_seen{sum(g in seen_genes for g in genes)}"
    assert uns["kind"] in (*KINDS, "custom")
    return sets


def check_kind(sets: dict[str, set[str]], kind: str, all_singles: bool) -> None:
    """What distinguishes the kinds (without forced test conditions)."""
    kept = sets["train"] | sets["val"]
    singles = {c for c in set().union(*sets.values()) if len(genes_of(c)) == 1}
    combos = {c for c in set().union(*sets.values()) if len(genes_of(c)) > 1}
    seen = {genes_of(c)[0] for c in kept & singles}
    if kind in ("simulation", "simulation_single"):
        if all_singles:  # the training genes are the seen genes
            assert all(set(genes_of(c)) <= seen for c in kept)
            if kind == "simulation_single":
                assert all(not set(genes_of(c)) <= seen for c in sets["test"])
    elif kind in ("single", "combo_seen0", "combo_seen1"):
        test_genes = {genes_of(c)[0] for c in sets["test"] & singles}
        assert len(test_genes) == max(1, int(len(singles) * 0.1))
        assert all(not set(genes_of(c)) & test_genes for c in kept)
        assert sets["test"] == {c for c in singles | combos if set(genes_of(c)) & test_genes}
    elif kind == "combo_seen2":
        assert sets["test"] <= combos
        assert len(sets["test"]) == max(1, int(len(combos) * 0.1))
        assert singles <= sets["train"]


# --------------------------------------------------------------------------------------------------
# every kind, several seeds, synthetic and real screens


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_kinds_on_a_full_screen(kind, seed):
    adata = make_screen(full_screen())
    assert sg.pp.split_perturbations(adata, kind=kind, seed=seed) is None
    sets = check_split(adata)
    check_kind(sets, kind, all_singles=True)
    uns = adata.uns[KEY]
    assert uns["kind"] == kind
    assert uns["seed"] == seed


@pytest.mark.parametrize("seed", [0, 3])
def test_simulation_gene_and_combo_fractions(seed):
    adata = make_screen(full_screen(n_genes=20, n_doubles=60, seed=seed))
    sg.pp.split_perturbations(adata, kind="simulation", seed=seed, train_gene_fraction=0.6)
    sets = check_split(adata)
    kept = sets["train"] | sets["val"]
    seen = {c for c in kept if len(genes_of(c)) == 1}
    assert len(seen) == int(20 * 0.6)  # without replacement: exactly 12 distinct training genes
    both_seen = [c for c in full_screen(20, 60, seed)[20:] if set(genes_of(c)) <= seen]
    assert len(kept & set(both_seen)) == int(len(both_seen) * 0.75)
    groups = adata.uns[KEY]["subgroups"]
    assert len(groups["combo_seen2"]) == len(both_seen) - int(len(both_seen) * 0.75)
    assert len(groups["unseen_single"]) == 20 - 12


@pytest.mark.parametrize("kind", KINDS)
def test_kinds_on_norman(norman, kind):
    sg.pp.register_perturbations(norman, "condition", control="control")
    tests = set()
    for seed in range(4):
        sg.pp.split_perturbations(norman, kind=kind, seed=seed)
        sets = check_split(norman)
        check_kind(sets, kind, all_singles=False)
        tests.add(tuple(sorted(sets["test"])))
    assert len(tests) > 1  # different seeds give different splits


def test_deterministic_per_seed():
    adata = make_screen(full_screen())
    for kind in KINDS:
        first = sg.pp.split_perturbations(adata, kind=kind, seed=5, copy=True)
        second = sg.pp.split_perturbations(adata, kind=kind, seed=5, copy=True)
        pd.testing.assert_series_equal(first.obs[KEY], second.obs[KEY])
        for name in ("train", "val", "test"):
            assert list(first.uns[KEY]["conditions"][name]) == list(
                second.uns[KEY]["conditions"][name]
            )


@pytest.mark.parametrize("kind", KINDS)
def test_different_seeds_differ(kind):
    adata = make_screen(full_screen())
    tests = []
    for seed in (0, 1):
        sg.pp.split_perturbations(adata, kind=kind, seed=seed)
        tests.append(set(adata.uns[KEY]["conditions"]["test"]))
    assert tests[0] != tests[1]


# --------------------------------------------------------------------------------------------------
# custom and forced test conditions


def test_custom_list_and_dict(norman):
    sg.pp.register_perturbations(norman, "condition", control="control")
    sg.pp.split_perturbations(norman, kind="custom", test_conditions=["CNN1+CBL", "KLF1"])
    sets = check_split(norman)
    assert sets["test"] == {"CBL+CNN1", "KLF1"}

    sg.pp.split_perturbations(
        norman, kind="custom", test_conditions={"test": ["CNN1+CBL"], "val": ["MAP2K6", "SET+KLF1"]}
    )
    sets = check_split(norman)
    assert sets["test"] == {"CBL+CNN1"}
    assert sets["val"] == {"MAP2K6", "KLF1+SET"}
    assert adata_subgroup(norman, "CBL+CNN1") == "combo_seen0"  # neither CBL nor CNN1 is measured


def adata_subgroup(adata, condition):
    return next(k for k, v in adata.uns[KEY]["subgroups"].items() if condition in set(v))


def test_forced_test_conditions_in_simulation(norman):
    sg.pp.register_perturbations(norman, "condition", control="control")
    sg.pp.split_perturbations(norman, kind="simulation", seed=0, test_conditions=["KLF1+MAP2K6"])
    sets = check_split(norman)
    assert {"KLF1+MAP2K6", "KLF1", "MAP2K6"} <= sets["test"]
    kept = sets["train"] | sets["val"]
    assert not any({"KLF1", "MAP2K6"} & set(genes_of(c)) for c in kept)


def test_forced_test_conditions_in_combo_seen2():
    adata = make_screen(full_screen())
    forced = full_screen()[20:23]
    sg.pp.split_perturbations(adata, kind="combo_seen2", test_conditions=forced)
    sets = check_split(adata)
    assert sets["test"] == set(forced)
    assert set(adata.uns[KEY]["subgroups"]["combo_seen2"]) == set(forced)


# --------------------------------------------------------------------------------------------------
# errors


def test_too_few_conditions_says_what_to_change():
    adata = make_screen(["A"])
    with pytest.raises(
        ValueError, match=r"1 perturbed conditions \(1 singles, 0 combinations"
    ) as e:
        sg.pp.split_perturbations(adata, kind="simulation")
    message = str(e.value)
    assert "without any perturbation" in message
    assert "train_gene_fraction" in message
    assert "kind='custom'" in message
    assert KEY not in adata.obs
    assert KEY not in adata.uns


def test_singles_only_screen_has_no_combo_to_test():
    adata = make_screen([f"G{i}" for i in range(12)])
    with pytest.raises(ValueError, match=r"test set.*12 singles, 0 combinations"):
        sg.pp.split_perturbations(adata, kind="combo_seen2")
    sg.pp.split_perturbations(adata, kind="simulation_single")
    check_split(adata)


def test_argument_errors():
    adata = make_screen(full_screen())
    with pytest.raises(ValueError, match="Unknown split kind 'random'"):
        sg.pp.split_perturbations(adata, kind="random")
    with pytest.raises(ValueError, match=r"train_gene_fraction must be in \(0, 1\], got 0"):
        sg.pp.split_perturbations(adata, train_gene_fraction=0)
    with pytest.raises(ValueError, match=r"combo_seen2_train_fraction must be in \(0, 1\]"):
        sg.pp.split_perturbations(adata, combo_seen2_train_fraction=1.5)
    with pytest.raises(ValueError, match="kind='custom' needs test_conditions"):
        sg.pp.split_perturbations(adata, kind="custom")
    with pytest.raises(ValueError, match=r"not found in the data: \['NOPE'\]"):
        sg.pp.split_perturbations(adata, kind="custom", test_conditions=["G00", "NOPE"])
    with pytest.raises(ValueError, match="control condition 'ctrl' is among the test"):
        sg.pp.split_perturbations(adata, kind="custom", test_conditions=["G00", "ctrl"])
    with pytest.raises(ValueError, match="control condition 'ctrl' is among the val"):
        sg.pp.split_perturbations(
            adata, kind="custom", test_conditions={"test": ["G00"], "val": ["ctrl"]}
        )
    with pytest.raises(ValueError, match="only accepted with kind='custom'"):
        sg.pp.split_perturbations(adata, kind="simulation", test_conditions={"test": ["G00"]})
    with pytest.raises(ValueError, match=r"both the 'test' and 'val' lists: \['G01'\]"):
        sg.pp.split_perturbations(
            adata, kind="custom", test_conditions={"test": ["G00", "G01"], "val": ["G01"]}
        )
    with pytest.raises(KeyError, match="register_perturbations"):
        sg.pp.split_perturbations(adata, condition_key="nope")
    assert KEY not in adata.obs
    assert KEY not in adata.uns


# --------------------------------------------------------------------------------------------------
# AnnData conventions


def test_copy_leaves_input_unchanged():
    adata = make_screen(full_screen())
    out = sg.pp.split_perturbations(adata, copy=True, key_added="s")
    assert out is not adata
    assert "s" not in adata.obs
    assert "s" not in adata.uns
    check_split(out, "s")


def test_h5ad_round_trip(tmp_path):
    adata = make_screen(full_screen())
    sg.pp.split_perturbations(adata, kind="combo_seen2", seed=2)  # some subgroups are empty
    adata.write_h5ad(tmp_path / "s.h5ad")
    back = ad.read_h5ad(tmp_path / "s.h5ad")
    pd.testing.assert_series_equal(back.obs[KEY], adata.obs[KEY])
    check_split(back)
    for name in ("conditions", "subgroups", "val_subgroups"):
        for k, v in adata.uns[KEY][name].items():
            assert list(back.uns[KEY][name][k]) == list(v)
    assert back.uns[KEY]["kind"] == "combo_seen2"
    assert back.uns[KEY]["seed"] == 2


# --------------------------------------------------------------------------------------------------
# property test over random screens


@st.composite
def random_screens(draw):
    n_genes = draw(st.integers(1, 14))
    genes = [f"G{i}" for i in range(n_genes)]
    singles = draw(st.lists(st.sampled_from(genes), unique=True))
    pairs = [f"{a}+{b}" for a, b in itertools.combinations(genes, 2)]
    doubles = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=30)) if pairs else []
    triples = [f"{a}+{b}+{c}" for a, b, c in itertools.combinations(genes, 3)][:2]
    triples = draw(st.lists(st.sampled_from(triples), unique=True)) if triples else []
    conditions = singles + doubles + triples
    return conditions if conditions else ["G0"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    conditions=random_screens(),
    kind=st.sampled_from(KINDS),
    seed=st.integers(0, 2**16),
    fraction=st.sampled_from([0.5, 0.75, 1.0]),
)
def test_property_random_screens(conditions, kind, seed, fraction):
    adata = make_screen(conditions, cells=1)
    message = ""
    try:
        sg.pp.split_perturbations(adata, kind=kind, seed=seed, train_gene_fraction=fraction)
    except ValueError as err:  # too small a screen: the helpful error, nothing written
        message = str(err)
    if message:
        assert "without any perturbation" in message
        assert f"data has {len(conditions)} perturbed conditions" in message
        assert KEY not in adata.obs
        return
    sets = check_split(adata)
    n_singles = sum(len(genes_of(c)) == 1 for c in conditions)
    all_singles = n_singles == len({g for c in conditions for g in genes_of(c)})
    if fraction == 0.75:
        check_kind(sets, kind, all_singles=all_singles)
    again = sg.pp.split_perturbations(
        adata, kind=kind, seed=seed, train_gene_fraction=fraction, copy=True
    )
    pd.testing.assert_series_equal(again.obs[KEY], adata.obs[KEY])

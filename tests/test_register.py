"""register_perturbations: every accepted label convention maps to the canonical condition."""

from __future__ import annotations

import logging

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scgears as sg
from scgears.pp._register import DEFAULT_GUIDE_THRESHOLD

KEY = "scgears_condition"


def make_adata(labels, column="perturbation", seed=0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    n = len(labels)
    adata = ad.AnnData(
        X=sp.random(n, 5, density=0.5, format="csr", random_state=seed, dtype=np.float32),
        obs=pd.DataFrame({column: labels}, index=[f"cell{i}" for i in range(n)]),
    )
    adata.obs["batch"] = rng.integers(0, 2, n).astype(str)
    return adata


def registered(labels, **kwargs) -> list:
    adata = make_adata(labels)
    sg.pp.register_perturbations(adata, "perturbation", **kwargs)
    return adata.obs[KEY].tolist()


# --------------------------------------------------------------------------------------------------
# the accepted conventions


def test_pertpy_labels():
    adata = make_adata(["control", "CBL", "CNN1+CBL", "CBL+CNN1", "control", "KLF1"])
    out = sg.pp.register_perturbations(adata, "perturbation", control="control")
    assert out is None
    cond = adata.obs[KEY]
    assert isinstance(cond.dtype, pd.CategoricalDtype)
    assert cond.tolist() == ["ctrl", "CBL", "CBL+CNN1", "CBL+CNN1", "ctrl", "KLF1"]
    assert cond.cat.categories.tolist() == ["ctrl", "CBL", "CBL+CNN1", "KLF1"]
    assert cond.index.equals(adata.obs_names)


def test_gears_labels_with_ctrl_filler_on_either_side():
    labels = ["ctrl", "CBL+ctrl", "ctrl+CBL", "CNN1+CBL", "ctrl+KLF1", "KLF1+ctrl"]
    assert registered(labels, control="ctrl") == ["ctrl", "CBL", "CBL", "CBL+CNN1", "KLF1", "KLF1"]


def test_gears_filler_with_pertpy_control_label():
    # GEARS' filler "ctrl" inside a label is no gene, even when the control label is "control"
    assert registered(["control", "CBL+ctrl", "ctrl+CNN1"], control="control") == [
        "ctrl",
        "CBL",
        "CNN1",
    ]


@pytest.mark.parametrize("delimiter", ["_", "|", ","])
def test_other_delimiters_are_detected(delimiter):
    labels = ["NT", f"CNN1{delimiter}CBL", "KLF1", f"A{delimiter}B{delimiter}C"]
    assert registered(labels, control="NT") == ["ctrl", "CBL+CNN1", "KLF1", "A+B+C"]


def test_explicit_delimiter_resolves_ambiguity():
    labels = ["control", "MT_CO1+CBL", "CNN1"]
    with pytest.raises(ValueError, match=r"delimiter=") as err:
        registered(labels)
    assert "'_'" in str(err.value)
    assert "'+'" in str(err.value)
    assert registered(labels, delimiter="+") == ["ctrl", "CBL+MT_CO1", "CNN1"]


def test_any_number_of_genes():
    labels = ["control", "D+C+B+A", "E+A+C", "B"]
    assert registered(labels) == ["ctrl", "A+B+C+D", "A+C+E", "B"]


def test_duplicate_genes_and_whitespace_collapse():
    assert registered(["control", "CBL + CBL", " KLF1"]) == ["ctrl", "CBL", "KLF1"]


def test_empty_guide_list_as_control():
    # pertpy's guide lists leave control cells empty: control="" accepts them
    assert registered(["", "CBL,CNN1", "KLF1"], control="") == ["ctrl", "CBL+CNN1", "KLF1"]


def test_categorical_input_column():
    adata = make_adata(pd.Categorical(["control", "B+A", "A"]))
    sg.pp.register_perturbations(adata, "perturbation")
    assert adata.obs[KEY].tolist() == ["ctrl", "A+B", "A"]


def test_key_added():
    adata = make_adata(["control", "A"])
    sg.pp.register_perturbations(adata, "perturbation", key_added="cond")
    assert "cond" in adata.obs
    assert KEY not in adata.obs


# --------------------------------------------------------------------------------------------------
# errors, raised before anything is written


def assert_untouched(adata, before: pd.DataFrame):
    pd.testing.assert_frame_equal(adata.obs, before)


def test_missing_column():
    adata = make_adata(["control", "A"])
    before = adata.obs.copy()
    with pytest.raises(KeyError, match=r"'guide'.*not found.*'perturbation'.*'batch'"):
        sg.pp.register_perturbations(adata, "guide")
    assert_untouched(adata, before)


def test_unknown_control_label_names_it_and_lists_frequent_labels():
    adata = make_adata(["ctrl"] * 3 + ["CBL"] * 2 + ["KLF1"])
    before = adata.obs.copy()
    with pytest.raises(ValueError, match=r"'control' not found") as err:
        sg.pp.register_perturbations(adata, "perturbation", control="control")
    message = str(err.value)
    assert "'ctrl' (3 cells)" in message
    assert "'CBL' (2 cells)" in message
    assert "control='ctrl'" in message  # the hint
    assert_untouched(adata, before)


def test_no_control_cells():
    adata = make_adata(["CBL", "KLF1", "CBL+KLF1"])
    before = adata.obs.copy()
    with pytest.raises(ValueError, match=r"Control label 'non-targeting' not found.*'CBL'"):
        sg.pp.register_perturbations(adata, "perturbation", control="non-targeting")
    assert_untouched(adata, before)


def test_nan_labels():
    adata = make_adata(["control", None, "A", np.nan])
    before = adata.obs.copy()
    with pytest.raises(ValueError, match=r"2 cells have a missing \(NaN\) label.*rows \[1, 3\]"):
        sg.pp.register_perturbations(adata, "perturbation")
    assert_untouched(adata, before)


def test_empty_labels():
    adata = make_adata(["control", "", "A", "  "])
    before = adata.obs.copy()
    with pytest.raises(ValueError, match=r"2 cells have an empty label.*control=''"):
        sg.pp.register_perturbations(adata, "perturbation")
    assert_untouched(adata, before)


def test_rejects_other_types():
    with pytest.raises(TypeError, match="AnnData or a MuData"):
        sg.pp.register_perturbations(pd.DataFrame({"p": ["control"]}), "p")


# --------------------------------------------------------------------------------------------------
# copy, X, h5ad round trip, real data


def test_copy_leaves_input_unchanged():
    adata = make_adata(["control", "B+A"])
    before = adata.obs.copy()
    out = sg.pp.register_perturbations(adata, "perturbation", copy=True)
    assert out is not adata
    assert_untouched(adata, before)
    assert out.obs[KEY].tolist() == ["ctrl", "A+B"]


def test_x_is_never_changed():
    adata = make_adata(["control", "B+A", "A"])
    x = adata.X
    values = x.toarray()
    sg.pp.register_perturbations(adata, "perturbation")
    assert adata.X is x
    np.testing.assert_array_equal(adata.X.toarray(), values)


def test_h5ad_round_trip(tmp_path):
    adata = make_adata(["control", "B+A", "A", "control"])
    sg.pp.register_perturbations(adata, "perturbation")
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    pd.testing.assert_series_equal(back.obs[KEY], adata.obs[KEY])


def test_norman(norman):
    raw = norman.obs["condition"].astype(str)
    sg.pp.register_perturbations(norman, "condition", control="control")
    cond = norman.obs[KEY]
    assert len(cond.cat.categories) == 34
    assert cond.cat.categories[0] == "ctrl"
    assert (cond == "ctrl").sum() == (raw == "control").sum() == 100
    # Norman writes some pairs unsorted; the canonical label sorts them
    assert set(cond[raw == "SET+KLF1"]) == {"KLF1+SET"}
    assert set(cond[raw == "SAMD1+PTPN12"]) == {"PTPN12+SAMD1"}
    expected = raw.map(lambda s: "ctrl" if s == "control" else "+".join(sorted(s.split("+"))))
    assert (cond.astype(str) == expected).all()


# --------------------------------------------------------------------------------------------------
# property tests: random screens written in random conventions

gene_symbols = st.from_regex(r"[A-Z][A-Z0-9.\-]{0,7}", fullmatch=True)
CONVENTIONS = ("pertpy", "gears", "_", "|", ",")


@st.composite
def screens(draw):
    """A screen in one convention: its raw labels (one per cell) and the expected conditions."""
    convention = draw(st.sampled_from(CONVENTIONS))
    control = {
        "pertpy": "control",
        "gears": "ctrl",
        "_": draw(st.sampled_from(["control", "non-targeting", "NT"])),
        "|": "non-targeting",
        ",": draw(st.sampled_from(["", "control"])),
    }[convention]
    gene_sets = draw(
        st.lists(st.sets(gene_symbols, min_size=1, max_size=4), min_size=1, max_size=6)
    )
    labels, expected = [control], ["ctrl"]
    for genes in gene_sets:
        for _ in range(draw(st.integers(1, 3))):  # cells of one condition, each in its own order
            order = draw(st.permutations(sorted(genes)))
            if convention == "gears" and len(order) == 1:
                label = f"ctrl+{order[0]}" if draw(st.booleans()) else f"{order[0]}+ctrl"
            else:
                label = ("+" if convention in ("pertpy", "gears") else convention).join(order)
            labels.append(label)
            expected.append("+".join(sorted(genes)))
    permutation = draw(st.permutations(range(len(labels))))
    return (
        [labels[i] for i in permutation],
        [expected[i] for i in permutation],
        control,
    )


# random symbols are no genes: the warning about them is expected here
@pytest.mark.filterwarnings("ignore:.*perturbed gene names:UserWarning")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(screen=screens())
def test_property_canonical_label_is_sorted_join(screen):
    labels, expected, control = screen
    adata = make_adata(labels)
    x_before = adata.X.toarray()
    obs_before = adata.obs.copy()

    copied = sg.pp.register_perturbations(adata, "perturbation", control=control, copy=True)
    assert_untouched(adata, obs_before)  # copy=True leaves the input unchanged
    assert copied.obs[KEY].tolist() == expected

    sg.pp.register_perturbations(adata, "perturbation", control=control)
    assert adata.obs[KEY].tolist() == expected
    assert adata.obs[KEY].cat.categories[0] == "ctrl"
    np.testing.assert_array_equal(adata.X.toarray(), x_before)

    # idempotence: the canonical labels register to themselves
    sg.pp.register_perturbations(adata, KEY, control="ctrl", key_added="again")
    assert adata.obs["again"].tolist() == expected
    assert adata.obs["again"].cat.categories.tolist() == adata.obs[KEY].cat.categories.tolist()


# --------------------------------------------------------------------------------------------------
# MuData with a guide-count modality


# mudata < 0.4 warns about its own future default whenever a MuData is built or copied
mudata_warning = pytest.mark.filterwarnings("ignore:From 0.4 .update:FutureWarning")


def make_mudata(counts, targets, guide_names=None, with_target_column=True) -> md.MuData:
    counts = np.asarray(counts, dtype=np.float32)
    obs_names = [f"cell{i}" for i in range(counts.shape[0])]
    rna = ad.AnnData(
        np.arange(counts.shape[0] * 3, dtype=np.float32).reshape(-1, 3),
        obs=pd.DataFrame(index=obs_names),
    )
    guides = ad.AnnData(sp.csr_matrix(counts), obs=pd.DataFrame(index=obs_names))
    guides.var_names = guide_names or [f"{t}_g{i}" for i, t in enumerate(targets)]
    if with_target_column:
        guides.var["target_gene"] = targets
    return md.MuData({"rna": rna, "guides": guides})


GUIDE_COUNTS = [
    # CBL  CNN1  NT
    [9, 0, 0],  # CBL
    [0, 5, 0],  # CNN1, exactly at the threshold
    [7, 6, 0],  # CBL+CNN1
    [0, 0, 12],  # control
    [4, 0, 0],  # below the threshold: unassigned
    [0, 0, 5],  # control
]


@mudata_warning
def test_mudata_threshold_and_both_obs(caplog):
    assert DEFAULT_GUIDE_THRESHOLD == 5
    mdata = make_mudata(GUIDE_COUNTS, ["CBL", "CNN1", "non-targeting"])
    with caplog.at_level(logging.WARNING, logger="scgears"):
        sg.pp.register_perturbations(mdata, "guides", control="non-targeting")
    expected = ["CBL", "CNN1", "CBL+CNN1", "ctrl", None, "ctrl"]
    for obs in (mdata.obs, mdata["rna"].obs):
        values = obs[KEY]
        assert isinstance(values.dtype, pd.CategoricalDtype)
        assert [None if pd.isna(v) else v for v in values] == expected
    assert "1 of 6 cells have no guide with >= 5" in caplog.text


@mudata_warning
def test_mudata_custom_threshold():
    mdata = make_mudata(GUIDE_COUNTS, ["CBL", "CNN1", "non-targeting"])
    sg.pp.register_perturbations(mdata, "guides", control="non-targeting", guide_threshold=4)
    assert mdata["rna"].obs[KEY].iloc[4] == "CBL"
    sg.pp.register_perturbations(mdata, "guides", control="non-targeting", guide_threshold=6)
    assert pd.isna(mdata["rna"].obs[KEY].iloc[1])
    assert mdata["rna"].obs[KEY].iloc[2] == "CBL+CNN1"


@mudata_warning
def test_mudata_targets_from_guide_names():
    mdata = make_mudata(
        GUIDE_COUNTS,
        ["CBL", "CNN1", "NT"],
        guide_names=["CBL_1", "CNN1-2", "NT_7"],
        with_target_column=False,
    )
    sg.pp.register_perturbations(mdata, "guides", control="NT")
    assert mdata["rna"].obs[KEY].iloc[:4].tolist() == ["CBL", "CNN1", "CBL+CNN1", "ctrl"]


@mudata_warning
def test_mudata_errors_write_nothing():
    mdata = make_mudata(GUIDE_COUNTS, ["CBL", "CNN1", "non-targeting"])
    with pytest.raises(KeyError, match=r"'sgRNA' not found.*'rna', 'guides'"):
        sg.pp.register_perturbations(mdata, "sgRNA", control="non-targeting")
    with pytest.raises(KeyError, match=r"'gex' not found"):
        sg.pp.register_perturbations(mdata, "guides", control="non-targeting", rna_modality="gex")
    with pytest.raises(ValueError, match=r"No guide targets 'control'.*CBL"):
        sg.pp.register_perturbations(mdata, "guides", control="control")
    with pytest.raises(ValueError, match=r"no control cells.*guide_threshold"):
        sg.pp.register_perturbations(mdata, "guides", control="non-targeting", guide_threshold=20)
    assert KEY not in mdata.obs
    assert KEY not in mdata["rna"].obs


@mudata_warning
def test_mudata_copy():
    mdata = make_mudata(GUIDE_COUNTS, ["CBL", "CNN1", "non-targeting"])
    out = sg.pp.register_perturbations(mdata, "guides", control="non-targeting", copy=True)
    assert out is not mdata
    assert KEY not in mdata.obs
    assert KEY not in mdata["rna"].obs
    assert out["rna"].obs[KEY].iloc[2] == "CBL+CNN1"
